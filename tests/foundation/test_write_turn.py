"""SQLite: every write transaction of the process takes the write turn (db.WriteTurn) before its BEGIN
IMMEDIATE and lets it go at its COMMIT or ROLLBACK, whichever path opened it: so writers of one process
wait for each other on the turn (woken when it is let go), never in SQLite's busy handler (which polls,
sleeping up to 100 ms). The tests turn the busy handler off (busy_timeout 0): a writer that reached
BEGIN IMMEDIATE while another held the lock would fail at once with "database is locked"."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event, text

from sscard.db import Database, WriteTurn


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'turn.db'}", pool_size=4)

    @event.listens_for(database.engine, "connect")
    def _no_busy_handler(dbapi_conn, _record):
        dbapi_conn.execute("PRAGMA busy_timeout=0")

    with database.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    yield database
    database.engine.dispose()


def _paths(db):
    """Each way a write transaction is opened in sscard, as a function that inserts one row."""
    def run(x):
        db.run(lambda s: s.execute(text("INSERT INTO t VALUES (:x)"), {"x": x}))

    def session(x):
        with db.session() as s:  # the audit sealer's path on SQLite
            s.execute(text("INSERT INTO t VALUES (:x)"), {"x": x})

    def engine_begin(x):
        with db.engine.begin() as conn:  # the demo's loaders
            conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": x})

    return {"run": run, "session": session, "engine_begin": engine_begin}


@pytest.mark.parametrize("holder", ["run", "session", "engine_begin"])
@pytest.mark.parametrize("waiter", ["run", "session", "engine_begin"])
def test_a_writer_waits_for_another_on_the_turn_not_in_the_busy_handler(db, holder, waiter):
    paths = _paths(db)
    inside, go = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold():
        def work(s):
            s.execute(text("INSERT INTO t VALUES (1)"))
            inside.set()
            assert go.wait(10)

        try:
            if holder == "run":
                db.run(work)
            elif holder == "session":
                with db.session() as s:
                    work(s)
            else:
                with db.engine.begin() as conn:
                    conn.execute(text("INSERT INTO t VALUES (1)"))
                    inside.set()
                    assert go.wait(10)
        except BaseException as exc:  # noqa: BLE001  reported below
            errors.append(exc)

    def wait():
        try:
            paths[waiter](2)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    a = threading.Thread(target=hold)
    a.start()
    assert inside.wait(10)
    b = threading.Thread(target=wait)
    b.start()
    time.sleep(0.2)
    assert b.is_alive() and not errors  # waiting, not failed with "database is locked"
    go.set()
    a.join(10)
    b.join(10)
    assert not errors, errors
    with db.engine.connect() as conn:
        assert sorted(conn.exec_driver_sql("SELECT x FROM t").scalars()) == [1, 2]


def test_a_failed_or_rolled_back_write_lets_the_turn_go(db):
    with pytest.raises(RuntimeError), db.session() as s:
        s.execute(text("INSERT INTO t VALUES (1)"))
        raise RuntimeError("refused")
    done = threading.Event()
    threading.Thread(target=lambda: (_paths(db)["session"](2), done.set())).start()
    assert done.wait(5)
    assert db.turn._owner is None


def test_a_connection_thrown_away_mid_transaction_lets_the_turn_go(db, monkeypatch):
    monkeypatch.setattr(WriteTurn, "TIMEOUT", 5.0)
    conn = db.engine.connect()
    conn.begin()
    conn.execute(text("INSERT INTO t VALUES (1)"))
    assert db.turn._owner == threading.get_ident()
    conn.invalidate()  # the driver's connection closed: SQLite drops its transaction and lock
    conn.close()
    started = time.perf_counter()
    done = threading.Event()
    threading.Thread(target=lambda: (_paths(db)["run"](2), done.set())).start()
    assert done.wait(4)
    assert time.perf_counter() - started < 2  # not the turn's timeout
    with db.engine.connect() as c:
        assert list(c.exec_driver_sql("SELECT x FROM t").scalars()) == [2]


def test_reads_take_no_turn(db):
    with db.session() as s:
        s.execute(text("INSERT INTO t VALUES (1)"))
        seen = []
        reader = threading.Thread(target=lambda: seen.append(db.run(
            lambda r: r.execute(text("SELECT count(*) FROM t")).scalar(), readonly=True)))
        reader.start()
        reader.join(5)
        assert seen == [0]  # answered while the writer holds the turn (WAL: the last committed state)


def test_the_turn_goes_to_the_longest_waiter_not_to_whoever_asks_again_first():
    """First come, first served: a writer that lets the turn go and asks again at once queues behind
    those already waiting (a condition variable let it take the turn again: (d)'s p99 rose past 1 s)."""
    turn = WriteTurn()
    order: list[str] = []
    me = turn.acquire()

    def writer(name: str) -> None:
        owner = turn.acquire()
        order.append(name)
        turn.release(owner)

    waiting = []
    for name in ("b", "c", "d"):
        t = threading.Thread(target=writer, args=(name,))
        t.start()
        waiting.append(t)
        deadline = time.perf_counter() + 5
        while len(turn._queue) < len(waiting) and time.perf_counter() < deadline:
            time.sleep(0.001)
    assert len(turn._queue) == 3
    turn.release(me)
    again = turn.acquire()  # at once: behind b, c and d
    order.append("a")
    turn.release(again)
    for t in waiting:
        t.join(5)
    assert order == ["b", "c", "d", "a"]
    assert turn._owner is None and not turn._queue


def test_a_waiter_that_times_out_leaves_the_queue(monkeypatch):
    monkeypatch.setattr(WriteTurn, "TIMEOUT", 0.1)
    turn = WriteTurn()
    me = turn.acquire()
    got = []
    t = threading.Thread(target=lambda: got.append(turn.acquire()))
    t.start()
    t.join(5)
    assert got == [None] and not turn._queue  # it goes on to the busy handler, as before
    turn.release(me)
    assert turn._owner is None
