"""The group-commit writer's statements on the driver's cursor (db.execute_many, db.fetch_all) store
and read exactly what SQLAlchemy's own execute would, on both databases; errors come back as
SQLAlchemy's exceptions; the SQLite writer's WAL is checkpointed by its own thread."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from sscard.db import execute_many, fetch_all, is_duplicate
from sscard.models.foundation import AuditRecord, IdempotencyRecord
from sscard.services import banking, batching
from sscard.services.banking import _PREFETCH
from sscard.services.book import _SELECT_ACCOUNTS

from .helpers import PIN, activated, terminal

AUDITS = AuditRecord.__table__
KEYS = IdempotencyRecord.__table__


def _audit_rows(n: int, tag: str) -> list[dict]:
    at = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
    return [{
        "at": at + timedelta(seconds=i), "actor_kind": "terminal", "actor_id": str(i), "actor_role": "terminal",
        "on_behalf_of": None, "attorney_id": i if i % 2 else None, "channel": "terminal", "place": "POS-1",
        "operation": "bank.purchase", "object_type": "bank_account", "object_id": f"{tag}-{i}",
        "person_id": None, "before": "", "after": "", "result": "ok", "idempotency_key": f"{tag}-key-{i}",
        "detail": {"amount_fen": 100 + i, "to": "622202*********0001", "nested": {"list": [1, 2], "cn": "西湖"}},
    } for i in range(n)]


def _stored(app, tag: str) -> list[tuple]:
    with app.db.session() as s:
        rows = s.scalars(select(AuditRecord).where(AuditRecord.object_id.like(f"{tag}-%"))
                         .order_by(AuditRecord.object_id)).all()
        return [(r.at, r.attorney_id, r.operation, r.object_id.split("-", 1)[1], r.idempotency_key.split("-", 1)[1],
                 r.detail) for r in rows]


@pytest.mark.parametrize("n", [1, 3, 17])
def test_rows_written_on_the_cursor_are_the_rows_sqlalchemy_writes(app, n):
    with app.db.session() as s:
        execute_many(s.connection(), insert(AUDITS).inline(), _audit_rows(n, "fast"))
        s.execute(insert(AUDITS).inline(), _audit_rows(n, "orm"))
    fast, orm = _stored(app, "fast"), _stored(app, "orm")
    assert len(fast) == n and fast == orm
    assert fast[0][0] == datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)  # microseconds and zone kept
    assert fast[0][5]["nested"] == {"list": [1, 2], "cn": "西湖"}


def test_a_duplicate_key_on_the_cursor_is_sqlalchemys_integrity_error_and_writes_nothing(app):
    now = datetime(2026, 3, 1, tzinfo=UTC)
    row = {"scope": "terminal:1", "key": "k-1", "request_hash": "h", "status": 200, "response": "{}", "created_at": now}
    with app.db.session() as s:
        execute_many(s.connection(), insert(KEYS).inline(), [row])
    with pytest.raises(IntegrityError) as caught, app.db.session() as s:
        execute_many(s.connection(), insert(KEYS).inline(), [{**row, "key": "k-2"}, row, {**row, "key": "k-3"}])
    assert is_duplicate(caught.value)
    with app.db.session() as s:
        assert s.scalars(select(IdempotencyRecord.key).order_by(IdempotencyRecord.key)).all() == ["k-1"]
        s.execute(delete(IdempotencyRecord))


def test_a_statement_with_defaults_to_compute_goes_through_sqlalchemy(app):
    """Rows without `place`, `detail`... (column defaults SQLAlchemy fills in) are still stored right."""
    row = {k: v for k, v in _audit_rows(1, "dflt")[0].items() if k not in ("place", "detail", "result")}
    with app.db.session() as s:
        execute_many(s.connection(), insert(AUDITS).inline(), [row, {**row, "object_id": "dflt-1"}])
    with app.db.session() as s:
        stored = s.scalars(select(AuditRecord).where(AuditRecord.object_id.like("dflt-%"))).all()
    assert [(r.place, r.detail, r.result) for r in stored] == [("", {}, "ok")] * 2


def test_reads_on_the_cursor_are_the_rows_sqlalchemy_reads(city, app):
    holders = [activated(city, name=f"读{i}", opening_fen=1000 * (i + 1)) for i in range(3)]
    pans = sorted(h.pan for h in holders)
    day = date(2026, 3, 1)
    with app.db.session() as s:
        for wanted in (pans[:1], pans):
            fast = fetch_all(s.connection(), _PREFETCH, {"day": day, "pans": wanted})
            orm = s.execute(_PREFETCH, {"day": day, "pans": wanted}).all()
            assert sorted(r._asdict().items() for r in fast) == sorted(r._asdict().items() for r in orm)
            assert len(fast) == len(wanted)
        row = fetch_all(s.connection(), _PREFETCH, {"day": day, "pans": pans[:1]})[0]
        assert isinstance(row.activated_at, datetime) and row.activated_at.tzinfo is not None
        assert row.no_overdraft is True and row.window_extended is False
        ids = [r.ledger_account_id for r in fast]
        accounts = fetch_all(s.connection(), _SELECT_ACCOUNTS, {"ids": ids})
        assert sorted(a.credits_posted for a in accounts) == [1000, 2000, 3000]


def test_the_sqlite_writer_leaves_checkpoints_to_its_own_thread(city, app):
    if app.db.dialect != "sqlite":
        pytest.skip("a SQLite write-ahead log")
    card = activated(city, opening_fen=100_000)
    pos = terminal(city, "POS-1")
    writer = batching.batcher(app)
    writer._checkpointer.every = 2  # poke the checkpointer every second commit
    for i in range(6):
        batching.call(app, banking.purchase, pos, card.pan, 100, PIN, idempotency_key=f"ck-{i}")
    conn = writer._conn.connection.driver_connection
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    deadline = time.monotonic() + 10
    while not writer._checkpointer.checkpoints and time.monotonic() < deadline:
        time.sleep(0.02)
    assert writer._checkpointer.checkpoints >= 1
    writer._close_connections()  # the connection goes back to the pool as it came
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000


def test_rows_with_different_keys_are_refused_before_anything_is_written(app):
    rows = _audit_rows(2, "mixed")
    del rows[1]["detail"]
    with pytest.raises(ValueError), app.db.session() as s:
        execute_many(s.connection(), insert(AUDITS).inline(), rows)
    assert _stored(app, "mixed") == []


def test_every_statement_of_a_batchs_commit_takes_the_fast_path_on_postgresql():
    """The writer's commit statements bind only their rows' values, so db.execute_many sends them on the
    driver's cursor: one that binds a value of its own (a sequence's name written as a bound string) fell
    back to SQLAlchemy's execute for every batch (6% of the writer's time in (f), session 31)."""
    from sqlalchemy.dialects import postgresql

    from sscard.db import _fast_entry
    from sscard.models.events import Event
    from sscard.services import outbox
    from sscard.services.operation import INSERT_AUDITS, INSERT_KEYS

    dialect = postgresql.psycopg.dialect()
    event_keys = tuple(c.key for c in Event.__table__.columns if c.key not in ("id", "audit_id"))
    assert _fast_entry(outbox._INSERT_AFTER_AUDIT, dialect, event_keys) is not None
    assert _fast_entry(outbox._INSERT_INLINE, dialect, (*event_keys, "audit_id")) is not None
    assert _fast_entry(INSERT_AUDITS, dialect, tuple(_audit_rows(1, "fast")[0])) is not None
    assert _fast_entry(INSERT_KEYS, dialect, ("scope", "key", "request_hash", "status", "response",
                                              "created_at")) is not None
