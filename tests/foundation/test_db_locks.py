"""db.Database.run(locks=...): on PostgreSQL the advisory locks are taken before the transaction's
snapshot (so transactions on one hot row wait for each other instead of failing), and they are let go
however the transaction ends: committed, refused, retried, failed while locking, with its connection
killed or its release failing. A pooled connection never keeps one. On SQLite `locks` is ignored."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from sscard import db as dbmod
from sscard.db import HOLDS_LOCKS, Database
from sscard.models.foundation import Bank

KEY = 0x5353_5445_5354_0001  # this test's advisory lock key
LOCK = ("SELECT pg_advisory_lock(%s)", [KEY])


@pytest.fixture
def db(db_url):
    database = Database(db_url, pool_size=4)
    database.migrate()
    with database.session() as s:
        s.add(Bank(code="B0", name="0", bin="620000", hotline="1"))
    yield database
    database.dispose()


def _held(db: Database) -> int:
    """Advisory locks of KEY held by any session (asked on a connection of its own)."""
    with db.engine.connect() as conn:
        found = conn.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = :hi AND objid = :lo AND objsubid = 1"), {"hi": KEY >> 32, "lo": KEY & 0xFFFFFFFF}).scalar()
        conn.rollback()
    return int(found or 0)


def _eventually_free(db: Database) -> None:
    deadline = time.monotonic() + 5
    while _held(db) and time.monotonic() < deadline:  # a closed session's locks go when its backend exits
        time.sleep(0.05)
    assert _held(db) == 0


def _no_pooled_connection_marked(db: Database) -> None:
    pool = db.engine.pool
    records = list(pool._pool.queue)  # type: ignore[attr-defined]
    assert all(not r.info.get(HOLDS_LOCKS) for r in records)


def _increment(session) -> None:
    """Read a row, wait a little (another transaction could slip in here), write it."""
    hotline = session.scalar(select(Bank.hotline).where(Bank.code == "B0"))
    time.sleep(0.005)
    session.execute(update(Bank).where(Bank.code == "B0").values(hotline=str(int(hotline) + 1)))


def test_transactions_that_lock_first_on_one_hot_row_wait_for_each_other_and_never_retry(db, backend):
    threads, each = 6, 15
    failures: list[str] = []
    before = db.retries

    def worker() -> None:
        try:
            for _ in range(each):
                db.run(_increment, locks=LOCK)
        except Exception as exc:  # noqa: BLE001
            failures.append(repr(exc)[:300])

    runners = [threading.Thread(target=worker) for _ in range(threads)]
    for t in runners:
        t.start()
    for t in runners:
        t.join()
    assert not failures
    with db.session() as s:
        assert s.scalar(select(Bank.hotline).where(Bank.code == "B0")) == str(1 + threads * each)
    # PostgreSQL: each one's snapshot is taken after the previous holder committed (no "could not
    # serialize access due to concurrent update"); SQLite: its writers take turns anyway
    assert db.retries == before
    if backend.name == "postgres":
        _eventually_free(db)
        _no_pooled_connection_marked(db)


def test_without_the_locks_the_same_transactions_do_conflict(db, backend):
    """The control of the test above: the conflicts it no longer has are real."""
    if backend.name != "postgres":
        pytest.skip("SQLite's writers take turns: no conflict either way")
    before = db.retries
    done = []

    def worker() -> None:
        for _ in range(15):
            try:
                db.run(_increment)
            except DBAPIError:  # on a loaded host some use up their 30 attempts
                continue
            done.append(1)

    runners = [threading.Thread(target=worker) for _ in range(6)]
    for t in runners:
        t.start()
    for t in runners:
        t.join()
    with db.session() as s:
        assert s.scalar(select(Bank.hotline).where(Bank.code == "B0")) == str(1 + len(done))
    assert db.retries > before


@pytest.fixture
def pg_db(db, backend):
    if backend.name != "postgres":
        pytest.skip("advisory locks are PostgreSQL's")
    return db


def test_the_locks_are_released_after_a_commit(pg_db):
    seen = []
    pg_db.run(lambda s: seen.append(_held(pg_db)), locks=LOCK)
    assert seen == [1]  # held while the transaction runs
    assert _held(pg_db) == 0
    _no_pooled_connection_marked(pg_db)


def test_the_locks_are_released_after_an_error_in_the_transaction(pg_db):
    def fails(session):
        _increment(session)
        raise ValueError("refused")

    with pytest.raises(ValueError):
        pg_db.run(fails, locks=LOCK)
    assert _held(pg_db) == 0
    _no_pooled_connection_marked(pg_db)
    with pg_db.session() as s:
        assert s.scalar(select(Bank.hotline).where(Bank.code == "B0")) == "1"  # rolled back


def test_the_locks_are_released_between_the_attempts_of_a_retried_transaction(pg_db):
    held_at_each_attempt = []

    def conflict_once(session):
        held_at_each_attempt.append(_held(pg_db))
        _increment(session)
        if len(held_at_each_attempt) == 1:
            raise DBAPIError("UPDATE ...", {}, _DriverError("40001"))

    before = pg_db.retries
    pg_db.run(conflict_once, locks=LOCK)
    assert held_at_each_attempt == [1, 1] and pg_db.retries == before + 1
    assert _held(pg_db) == 0
    _no_pooled_connection_marked(pg_db)


def test_a_lock_statement_that_fails_half_way_leaves_no_lock_behind(pg_db):
    # locks KEY, then divides by zero on the next row: the first lock is taken and kept by the session
    half = ("SELECT pg_advisory_lock(k) FROM unnest(ARRAY[%s, %s]::bigint[]) WITH ORDINALITY AS t(k, n)"
            " WHERE 1 / (2 - n) >= 0", [KEY, KEY + 1])
    with pytest.raises(DBAPIError):
        pg_db.run(lambda s: None, locks=half)
    assert _held(pg_db) == 0
    _no_pooled_connection_marked(pg_db)


def test_a_killed_connection_leaves_no_lock_and_is_not_pooled_again(pg_db):
    def killed(session):
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar()
        with pg_db.engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            other.commit()
        time.sleep(0.1)
        session.execute(text("SELECT 1"))

    with pytest.raises(DBAPIError):
        pg_db.run(killed, locks=LOCK)
    _eventually_free(pg_db)
    _no_pooled_connection_marked(pg_db)
    pg_db.run(_increment, locks=LOCK)  # and the pool still works
    assert _held(pg_db) == 0


def _gone(db: Database, pid: int) -> bool:
    deadline = time.monotonic() + 5
    while True:
        with db.engine.connect() as conn:
            alive = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}).scalar()
            conn.rollback()
        if not alive or time.monotonic() > deadline:
            return not alive
        time.sleep(0.05)


def test_when_the_release_fails_the_connection_is_closed_instead(pg_db, monkeypatch):
    monkeypatch.setattr(dbmod, "_UNLOCK_ALL", "SELECT no_such_function()")
    pids = []

    def refused(session):
        pids.append(session.execute(text("SELECT pg_backend_pid()")).scalar())
        raise ValueError("refused")

    with pytest.raises(ValueError):  # the transaction's own error, not the release's
        pg_db.run(refused, locks=LOCK)
    monkeypatch.undo()
    assert _gone(pg_db, pids[0])  # closed, not pooled: the server let go of its locks
    _eventually_free(pg_db)
    _no_pooled_connection_marked(pg_db)


def test_a_connection_checked_in_still_marked_as_holding_locks_is_closed(pg_db):
    with pg_db.engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_advisory_lock(%s)", (KEY,))
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        conn.commit()
        conn.connection.info[HOLDS_LOCKS] = True  # as if its release had been interrupted
    assert _gone(pg_db, pid)
    _eventually_free(pg_db)
    _no_pooled_connection_marked(pg_db)


class _DriverError(Exception):
    def __init__(self, sqlstate: str):
        super().__init__(f"driver error {sqlstate}")
        self.sqlstate = sqlstate
