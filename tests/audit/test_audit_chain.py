"""The tamper-evident audit chain: sealed records verify; an edited, deleted or late record is caught or
sealed in its turn; concurrent writers all end up sealed exactly once; the database queues every record it
is given, and sealing never rewrites one."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select, text, update
from typer.testing import CliRunner

from sscard.core.audit_chain import GENESIS, canonical, link
from sscard.core.identifiers import make_citizen_id
from sscard.models.foundation import AuditRecord, AuditSeal, AuditUnsealed, Bank
from sscard.services import audit_chain, enrolment, loss
from tests.conftest import TEST_KEY

AUDITS = AuditRecord.__table__
SEALS = AuditSeal.__table__


def _seals(app) -> list[tuple[int, int]]:
    """(seal_seq, record_id) of every seal, in chain order."""
    with app.db.session() as s:
        return [tuple(r) for r in s.execute(select(AuditSeal.seal_seq, AuditSeal.record_id).order_by(AuditSeal.seal_seq))]


def _values(**values) -> dict:
    """A system's audit record's columns, with `values` (at and operation at least) over them."""
    return {"actor_kind": "system", "actor_id": "system", "actor_role": "system", "channel": "system", "place": "",
            "object_type": "", "object_id": "", "before": "", "after": "", "result": "ok", "detail": {}, **values}


def _record(**values) -> AuditRecord:
    return AuditRecord(**_values(**values))


def _ids(app) -> list[int]:
    with app.db.session() as s:
        return list(s.scalars(select(AuditRecord.id).order_by(AuditRecord.id)))


@contextmanager
def _tampering(app):
    """A connection of someone who owns the tables and switches the log's immutability off (migrations 0022
    and 0024: records and seals): what the chain is there to catch. PostgreSQL: triggers off for the
    transaction; SQLite (which cannot switch one off): the four triggers dropped, and made again before
    commit."""
    with app.db.engine.begin() as conn:
        if app.db.dialect == "postgresql":
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            yield conn
            return
        guards = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN "
                                      "('audit_records_no_change', 'audit_records_no_delete', "
                                      "'audit_seals_no_change', 'audit_seals_no_delete')").all()
        assert len(guards) == 4
        for name, _sql_text in guards:
            conn.exec_driver_sql(f"DROP TRIGGER {name}")
        yield conn
        for _name, sql_text in guards:
            conn.exec_driver_sql(sql_text)


def _sql(app, statement: str, **params) -> None:
    with _tampering(app) as conn:
        conn.execute(text(statement), params)


def test_a_sealed_chain_verifies_and_counts_what_is_not_yet_sealed(city, app):
    card = city.issued_card()
    before = audit_chain.verify(app)
    assert before["ok"] and before["checked"] == 0 and before["unsealed"] == len(_ids(app)) > 5
    assert audit_chain.seal(app) == before["unsealed"]
    loss.report_formal_loss(app, city.actor("clerk"), card.card_number, presented_citizen_id=card.citizen_id)
    out = audit_chain.verify(app)
    assert out["ok"] and out["checked"] == before["unsealed"] and out["unsealed"] == 1
    out = audit_chain.verify(app, seal_first=True)
    assert out["ok"] and out["checked"] == len(_ids(app)) and out["unsealed"] == 0
    seals = _seals(app)
    assert [seq for seq, _id in seals] == list(range(1, len(seals) + 1))
    assert [record_id for _seq, record_id in seals] == _ids(app)  # one writer here: seal order is id order
    with app.db.session() as s:
        seal = s.execute(select(SEALS).where(SEALS.c.seal_seq == 1)).mappings().one()
        first = s.execute(select(AUDITS).where(AUDITS.c.id == seal["record_id"])).mappings().one()
    assert seal["record_at"] == first["at"]
    assert seal["prev_hash"] == GENESIS and seal["hash"] == link(GENESIS, {**first, "seal_seq": 1})
    with app.db.session() as s:
        last = s.scalar(select(AuditSeal.hash).where(AuditSeal.seal_seq == len(seals)))
    assert out["head"] == {"seal_seq": len(seals), "hash": last}
    assert audit_chain.seal(app) == 0  # nothing left: sealing again changes nothing


@pytest.mark.parametrize("column,value", [
    ("result", "'ok-but-not'"), ("actor_id", "'999'"), ("actor_role", "'teller'"), ("person_id", "424242"),
    ("object_id", "'X'"), ("idempotency_key", "'k'"), ("place", "'C02'"),
])
def test_editing_a_column_of_a_sealed_record_with_sql_makes_verify_name_that_record(city, app, column, value):
    city.issued_card()
    audit_chain.seal(app)
    ids = _ids(app)
    with app.db.session() as s:  # a clerk's record about the person, in the middle of the chain
        victim = s.scalar(select(func.max(AuditRecord.id)).where(AuditRecord.person_id.is_not(None),
                                                                 AuditRecord.place == "C01"))
    _sql(app, f"UPDATE audit_records SET {column} = {value} WHERE id = :id", id=victim)  # noqa: S608 (test constants)
    out = audit_chain.verify(app)
    assert not out["ok"] and out["broken"]["id"] == victim and out["broken"]["reason"] == "hash"
    assert out["checked"] == ids.index(victim) + 1


def test_editing_the_detail_or_the_time_of_a_sealed_record_is_caught(city, app):
    city.issued_card()
    audit_chain.seal(app)
    ids = _ids(app)
    with _tampering(app) as conn:
        detail = conn.execute(select(AUDITS.c.detail).where(AUDITS.c.id == ids[2])).scalar_one()
        conn.execute(update(AUDITS).where(AUDITS.c.id == ids[2]).values(detail={**detail, "note": "x"}))
    assert audit_chain.verify(app)["broken"]["id"] == ids[2]
    with _tampering(app) as conn:
        conn.execute(update(AUDITS).where(AUDITS.c.id == ids[2]).values(detail=detail))  # put it back
    assert audit_chain.verify(app)["ok"]
    with _tampering(app) as conn:
        at = conn.execute(select(AUDITS.c.at).where(AUDITS.c.id == ids[1])).scalar_one()
        conn.execute(update(AUDITS).where(AUDITS.c.id == ids[1]).values(at=at.replace(microsecond=at.microsecond ^ 1)))
    assert audit_chain.verify(app)["broken"]["id"] == ids[1]


def test_deleting_a_sealed_record_makes_verify_name_it_missing(city, app):
    city.issued_card()
    audit_chain.seal(app)
    ids = _ids(app)
    _sql(app, "DELETE FROM audit_records WHERE id = :id", id=ids[4])
    out = audit_chain.verify(app)
    assert not out["ok"] and out["broken"] == {"id": ids[4], "seal_seq": 5, "reason": "missing"}
    assert out["checked"] == 5


def test_deleting_a_seal_in_the_middle_makes_verify_name_the_record_after_the_gap(city, app):
    city.issued_card()
    audit_chain.seal(app)
    ids = _ids(app)
    _sql(app, "DELETE FROM audit_seals WHERE seal_seq = 5")
    out = audit_chain.verify(app)
    assert not out["ok"] and out["broken"]["id"] == ids[5] and out["broken"]["reason"] == "gap"
    assert out["checked"] == 5


def test_a_rehashed_record_still_breaks_the_link_to_the_next_one(city, app):
    city.issued_card()
    audit_chain.seal(app)
    ids = _ids(app)
    with _tampering(app) as conn:
        row = conn.execute(select(AUDITS).where(AUDITS.c.id == ids[2])).mappings().one()
        seal = conn.execute(select(SEALS).where(SEALS.c.record_id == ids[2])).mappings().one()
        forged = {**row, "result": "forged", "seal_seq": seal["seal_seq"]}
        conn.execute(update(AUDITS).where(AUDITS.c.id == ids[2]).values(result="forged"))
        conn.execute(update(SEALS).where(SEALS.c.record_id == ids[2]).values(hash=link(seal["prev_hash"], forged)))
    out = audit_chain.verify(app)
    assert out["broken"] == {"id": ids[3], "seal_seq": 4, "reason": "prev_hash"}


def test_a_record_neither_sealed_nor_queued_is_counted_and_the_command_line_says_so(city, app, cli):
    """A record that reached the log around its trigger (here: its queue entry taken away) would never be
    sealed: verify counts it and fails."""
    city.issued_card()
    audit_chain.seal(app)
    city.new_person("孙八")
    _sql(app, "DELETE FROM audit_unsealed")
    out = audit_chain.verify(app)
    assert not out["ok"] and out["broken"] == {"id": None, "seal_seq": None, "reason": "unaccounted", "count": 1}
    result = cli("audit", "verify")
    assert result.exit_code == 1 and "1 audit records are neither sealed nor queued" in result.output


def test_the_database_queues_every_record_whoever_inserts_it(city, app):
    """The ORM, a Core multi-row insert and plain SQL: each record is queued in its own statement, with the
    bank columns already derived, before any sealer runs."""
    now = app.clock.now()
    with app.db.session() as s:
        s.add(_record(at=now, operation="x.orm"))
    with app.db.engine.begin() as conn:
        conn.execute(AUDITS.insert(), [_values(at=now, operation="x.core.1"), _values(at=now, operation="x.core.2")])
        conn.execute(text("INSERT INTO audit_records (at, actor_kind, actor_id, actor_role, channel, place, operation, "
                          "object_type, object_id, before, after, result, detail) VALUES (:at, 'system', 'system', "
                          "'system', 'system', 'bank:GSB', 'x.sql', '', '', '', '', 'ok', '{}')"),
                     {"at": now.replace(tzinfo=None) if app.db.dialect == "sqlite" else now})
    with app.db.session() as s:
        records = dict(s.execute(select(AuditRecord.operation, AuditRecord.id).where(AuditRecord.operation.like("x.%"))).all())
        queued = set(s.scalars(select(AuditUnsealed.record_id)))
        bank = s.scalar(select(AuditRecord.maker_bank_id).where(AuditRecord.operation == "x.sql"))
        gsb = s.scalar(select(Bank.id).where(Bank.code == "GSB"))
    assert set(records) == {"x.orm", "x.core.1", "x.core.2", "x.sql"} and set(records.values()) <= queued
    assert bank == gsb  # a record made on the bank's hotline is the bank's
    assert audit_chain.seal(app) == len(queued)
    out = audit_chain.verify(app)
    assert out["ok"], out


def test_the_database_refuses_to_change_or_delete_an_audit_record(city, app):
    """Migration 0022: whatever connection of the application's asks, and the queue and the seals still work."""
    city.issued_card()
    victim = _ids(app)[2]
    for statement in ("UPDATE audit_records SET result = 'forged' WHERE id = :id",
                      "UPDATE audit_records SET detail = '{}' WHERE id = :id",
                      "DELETE FROM audit_records WHERE id = :id"):
        with pytest.raises(Exception, match="audit records are never changed or deleted"):
            with app.db.engine.begin() as conn:
                conn.execute(text(statement), {"id": victim})
    with pytest.raises(Exception, match="never changed"), app.db.session() as s:
        s.get(AuditRecord, victim).result = "forged"
        s.commit()
    assert audit_chain.seal(app) == len(_ids(app))
    assert audit_chain.verify(app)["ok"]


def test_the_database_refuses_to_change_or_delete_a_seal(city, app):
    """Migration 0024: the chain, like the log, is only ever inserted into; the sealer goes on sealing."""
    city.issued_card()
    assert audit_chain.seal(app) > 3
    for statement in ("UPDATE audit_seals SET hash = prev_hash WHERE seal_seq = 2",
                      "UPDATE audit_seals SET seal_seq = 99 WHERE seal_seq = 3",
                      "DELETE FROM audit_seals WHERE seal_seq = 2",
                      "DELETE FROM audit_seals"):
        with pytest.raises(Exception, match="audit seals are never changed or deleted"):
            with app.db.engine.begin() as conn:
                conn.execute(text(statement))
    with pytest.raises(Exception, match="never changed"), app.db.session() as s:
        s.delete(s.get(AuditSeal, 1))
        s.commit()
    city.new_person("赵六")
    assert audit_chain.seal(app) > 0
    out = audit_chain.verify(app)
    assert out["ok"] and out["unsealed"] == 0, out


def test_sealing_never_rewrites_an_audit_record(city, app):
    """The seal is a row of its own: the records' values, and on PostgreSQL their row versions (xmin: an
    UPDATE writes a new version), are the same after sealing as before."""
    city.issued_card()
    versions = "xmin::text, " if app.db.dialect == "postgresql" else ""
    before = _rows(app, versions)
    assert audit_chain.seal(app) == len(before) > 5
    assert _rows(app, versions) == before


def _rows(app, versions: str) -> list[tuple]:
    with app.db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT {versions}* FROM audit_records ORDER BY id"))]  # noqa: S608


def test_canonical_bytes_are_the_same_on_every_database(app):
    """A record written and read back hashes to a constant: SQLite and PostgreSQL give the same bytes."""
    at = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    with app.db.session() as s:
        s.add(AuditRecord(at=at, actor_kind="staff", actor_id="7", actor_role="clerk", on_behalf_of=None,
                          attorney_id=None, channel="window", place="", operation="x.y", object_type="card",
                          object_id="", person_id=3, before="", after="normal", result="ok", idempotency_key=None,
                          detail={"z": [1, "二"], "a": {"n": None, "t": True}}))
    audit_chain.seal(app)
    with app.db.session() as s:
        row = {**s.execute(select(AUDITS)).mappings().one(), "seal_seq": 1}
        sealed = s.scalar(select(AuditSeal.hash))
    assert canonical(row) == (
        '[1,1,"2026-03-04T05:06:07.890123Z","staff","7","clerk",null,null,"window","","x.y","card","",3,"",'
        '"normal","ok",null,{"a":{"n":null,"t":true},"z":[1,"二"]}]').encode()
    assert sealed == "0bf9d2e1bac7e37f5b1f991b476ef0f01102276c14aa6f25d2c4683aebbab521"  # as before 0021


def test_a_record_committed_late_with_a_lower_id_is_sealed_after_the_others(city, app):
    if app.db.dialect != "postgresql":
        pytest.skip("SQLite has one writer: a lower id cannot commit after a higher one")
    city.issued_card()
    audit_chain.seal(app)
    with app.db.session() as late:
        late.add(_record(at=app.clock.now(), operation="x.late"))
        late.flush()  # its id is taken now; it commits at the end of the block
        city.new_person("赵六")  # a later id, committed first
        assert audit_chain.seal(app) == 1
    assert audit_chain.seal(app) == 1
    out = audit_chain.verify(app)
    last_two = select(AuditRecord.operation, AuditRecord.id).join(AuditSeal, AuditSeal.record_id == AuditRecord.id)
    with app.db.session() as s:
        order, ids = zip(*s.execute(last_two.order_by(AuditSeal.seal_seq.desc()).limit(2)).all(), strict=True)
    assert out["ok"] and out["unsealed"] == 0
    assert order == ("x.late", "person.register") and ids[0] < ids[1]


def test_concurrent_writers_are_all_sealed_exactly_once_while_a_sealer_runs(city, app):
    clerk = city.actor("clerk")
    sealer = audit_chain.Sealer(app, every=0.02, idle=0.02)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(12):
                cid = make_citizen_id("330106", date(1970 + n, 1, 1 + i), 100 + i * 2)
                enrolment.register_person(app, clerk, cid, f"王{n}{i}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sealer.close()
    assert not errors
    out = audit_chain.verify(app, seal_first=True)
    with app.db.session() as s:
        total = s.scalar(select(func.count()).select_from(AuditRecord))
    seals = _seals(app)
    assert out["ok"] and out["checked"] == total and out["unsealed"] == 0
    assert [seq for seq, _id in seals] == list(range(1, total + 1))
    assert sorted(record_id for _seq, record_id in seals) == _ids(app)  # each record once
    assert sealer.sealed > 0  # the background sealer did part of it


def test_the_server_seals_in_the_background(client, city, app):
    import time

    city.issued_card()
    deadline = time.monotonic() + 10
    while audit_chain.verify(app)["unsealed"] and time.monotonic() < deadline:
        time.sleep(0.1)
    out = audit_chain.verify(app)
    assert out["ok"] and out["unsealed"] == 0 and out["checked"] > 5


@pytest.fixture
def cli(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SSCARD_DATABASE_URL", db_url)
    monkeypatch.setenv("SSCARD_SECRET_KEY", TEST_KEY.hex())
    monkeypatch.setenv("SSCARD_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("SSCARD_CONFIG", "")
    monkeypatch.setenv("COLUMNS", "200")
    from sscard import cli as cli_pkg

    if not any(g.name == "audit" for g in cli_pkg.app.registered_groups):
        cli_pkg._register_area_commands()
    return lambda *args: CliRunner().invoke(cli_pkg.app, list(args))


def test_audit_verify_on_the_command_line_exits_non_zero_naming_the_broken_record(city, app, cli):
    city.issued_card()
    total = len(_ids(app))
    out = cli("audit", "verify")
    assert out.exit_code == 0, out.output
    assert f"checked 0 sealed records; {total} not yet sealed" in out.output
    out = cli("audit", "seal")
    assert out.exit_code == 0 and f"sealed {total} records in " in out.output
    city.new_person("李四")  # one more record, unsealed
    out = cli("audit", "verify", "--seal")
    assert out.exit_code == 0 and f"checked {total + 1} sealed records; 0 not yet sealed" in out.output
    victim = _ids(app)[2]
    _sql(app, "UPDATE audit_records SET actor_id = 'someone' WHERE id = :id", id=victim)
    out = cli("audit", "verify")
    assert out.exit_code == 1 and f"audit record id {victim}" in out.output


def test_a_rounds_read_of_its_records_plans_only_the_partitions_they_are_in(city, app):
    """PostgreSQL: the sealer reads a chunk's records between their first and last `at`, so the planner
    prunes the monthly partitions to those (it planned and locked every one, with all its indexes, every
    round); and records of two months in one round are both sealed. The statement explained is the one
    the sealer sent, with its values."""
    if app.db.dialect != "postgresql":
        pytest.skip("SQLite's audit log has no partitions")
    from sqlalchemy import event

    city.issued_card()
    sent: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(app.db.engine, "before_cursor_execute", keep)
    try:
        assert audit_chain.seal(app) > 0
    finally:
        event.remove(app.db.engine, "before_cursor_execute", keep)
    order = [i for i, (statement, _p) in enumerate(sent) if "seal_seq DESC" in statement or
             "plan_cache_mode = force_custom_plan" in statement or "JOIN audit_records" in statement]
    # the chain's head read first, under the plan PostgreSQL keeps for it (the seals' months are partitions:
    # a plan per run would plan every one); then custom plans, for the records' read (below)
    assert ["DESC" in sent[i][0] for i in order] == [True, False, False]
    assert "force_custom_plan" in sent[order[1]][0] and "JOIN audit_records" in sent[order[2]][0]
    sent = [sent[order[2]]]
    with app.db.session() as s:
        parts = s.scalar(text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit_records'::regclass"))
    (statement, parameters), = sent
    with app.db.engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute("EXPLAIN " + statement, parameters)
        plan = [r[0] for r in cursor.fetchall()]
    scanned = [line for line in plan if "on audit_records_" in line]
    assert parts > 3 and len(scanned) == 1, plan
    # and planned so for every round's values, never by a generic plan made for none (psycopg prepares a
    # statement after five runs): found by `id IN (...)` under a generic plan, a year of history at
    # 20,000 people (390,670 records) took 870 s to seal against 41 s (the SET LOCAL above)
    now = app.clock.now()
    with app.db.session() as s:  # a record of last month and one of now, sealed in one round
        for at in (datetime(now.year - 1, 12, 15, 4, tzinfo=UTC), now):
            s.add(_record(at=at, operation="x.months"))
    assert audit_chain.seal(app) == 2
    assert audit_chain.verify(app)["ok"]


def test_a_servers_sealer_vacuums_its_queue_while_it_seals(city, app):
    """PostgreSQL: the queue's deletes leave dead rows and index entries that only VACUUM reclaims, so a
    server's rounds vacuum the queue at most every VACUUM_EVERY seconds while they seal (and not when
    nothing was sealed)."""
    if app.db.dialect != "postgresql":
        pytest.skip("SQLite reclaims a deleted row's space at once")
    count = text("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'audit_unsealed'")

    def vacuums() -> int:
        with app.db.engine.connect() as conn:
            conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
            return conn.scalar(count)

    sweeper = audit_chain._Sweeper()
    start = vacuums()
    city.issued_card()
    assert audit_chain._round(app, 0.1, 1.0, sweeper)[0] > 0 and vacuums() == start  # not yet due
    sweeper.last -= audit_chain.VACUUM_EVERY
    assert audit_chain._round(app, 0.1, 1.0, sweeper)[0] == 0 and vacuums() == start  # nothing sealed
    city.new_person("周九")
    assert audit_chain._round(app, 0.1, 1.0, sweeper)[0] == 1
    assert vacuums() == start + 1 and sweeper.sweeps == 1


def test_a_sweep_that_fails_is_logged_as_such_and_the_round_still_counts_its_seals(city, app, caplog, monkeypatch):
    """A role that may not VACUUM (or any other failure of the sweep): the round's seals are committed, and
    the log says the sweep failed, not the sealing."""
    if app.db.dialect != "postgresql":
        pytest.skip("the sweep is PostgreSQL's")
    sweeper = audit_chain._Sweeper()
    sweeper.last -= audit_chain.VACUUM_EVERY
    city.issued_card()
    from sqlalchemy.engine import Connection

    real = Connection.exec_driver_sql

    def refusing(self, statement, *args, **kwargs):
        if statement.startswith("VACUUM"):
            raise RuntimeError("permission denied to vacuum audit_unsealed")
        return real(self, statement, *args, **kwargs)

    monkeypatch.setattr(Connection, "exec_driver_sql", refusing)
    with caplog.at_level("WARNING", logger="sscard.audit_chain"):
        done, _wait = audit_chain._round(app, 0.1, 1.0, sweeper)
    monkeypatch.undo()
    assert done and done > 5 and sweeper.sweeps == 0
    assert "vacuuming the audit chain's queue failed" in caplog.text
    assert "sealing the audit chain failed" not in caplog.text
    assert audit_chain.verify(app)["ok"] and audit_chain.verify(app)["unsealed"] == 0
