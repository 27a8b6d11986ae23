"""After a failover the connections to the old primary are dead: keyed work runs again on a new
connection and is applied once (its idempotency key answers a commit whose answer was lost; run on its
own through `one_by_one`, as a payment declared batched would go through the writer), and the
group-commit writer opens new connections of its own. PostgreSQL only (SQLite has no failover)."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError

from sscard.models.ledger import LedgerTransfer
from sscard.services import banking, batching
from sscard.services.operation import one_by_one

from .helpers import PIN, activated, balance_of, invariants, terminal


@pytest.fixture
def pos(app, city):
    if app.db.dialect != "postgresql":
        pytest.skip("failover and reconnection are PostgreSQL's")
    return terminal(city, "POS-1")


def _payments(app) -> int:
    with app.db.session() as s:
        return s.scalar(select(func.count()).select_from(LedgerTransfer).where(LedgerTransfer.code == "payment"))


def _kill_backend(app, pid: int) -> None:
    with app.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as other:
        other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})


@pytest.mark.parametrize("which", ["key lookup", "payment"])
def test_a_keyed_payment_whose_connection_dies_before_commit_runs_again_on_a_new_connection(app, city, pos, which):
    card = activated(city, opening_fen=10_000)
    killed = []

    def mark_writes(conn, _cursor, statement, *_args):
        if statement.startswith("INSERT"):
            conn.info["test_wrote"] = True

    def kill_first_commit(conn):
        wrote = conn.info.pop("test_wrote", False)
        if not killed and wrote == (which == "payment"):
            killed.append(conn.connection.driver_connection.info.backend_pid)
            _kill_backend(app, killed[0])

    event.listen(app.db.engine, "before_cursor_execute", mark_writes)
    event.listen(app.db.engine, "commit", kill_first_commit)
    try:
        out = one_by_one(app, banking.purchase, pos, card.pan, 700, PIN, idempotency_key="pay-failover-1")
    finally:
        event.remove(app.db.engine, "commit", kill_first_commit)
        event.remove(app.db.engine, "before_cursor_execute", mark_writes)
    assert killed
    assert out["balance_fen"] == 9_300
    assert _payments(app) == 1
    assert invariants(app)["ok"]


def test_a_keyed_payment_whose_commit_answer_was_lost_gets_its_first_answer_not_a_second_payment(app, city, pos):
    card = activated(city, opening_fen=10_000)
    lost = []

    def lose_first_answer(session):
        if not lost:  # committed, then the connection "broke" before the answer came back
            lost.append(1)
            raise OperationalError("COMMIT", None, psycopg.OperationalError("server closed the connection"),
                                   connection_invalidated=True)

    event.listen(app.db.sessions, "after_commit", lose_first_answer)
    try:
        out = one_by_one(app, banking.purchase, pos, card.pan, 700, PIN, idempotency_key="pay-failover-2")
    finally:
        event.remove(app.db.sessions, "after_commit", lose_first_answer)
    assert lost
    assert out["balance_fen"] == 9_300
    assert balance_of(app, card.pan) == 9_300
    assert _payments(app) == 1
    assert invariants(app)["ok"]


def test_work_without_an_idempotency_key_whose_connection_breaks_at_its_commit_is_looked_up_then_run_once(
        app, city, pos):
    """No key to answer a rerun: the commit marker written with the COMMIT tells that it did not commit
    (the backend was killed before the COMMIT reached it), so it runs again, once (tests/ledger/
    test_lost_commit.py: a COMMIT applied whose answer is lost). Before commit markers, the caller got the
    error, whatever had happened."""
    card = activated(city, opening_fen=10_000)
    killed = []

    def mark_writes(conn, _cursor, statement, *_args):
        if statement.startswith("INSERT"):
            conn.info["test_wrote"] = True

    def kill(conn):
        if conn.info.pop("test_wrote", False) and not killed:
            killed.append(conn.connection.driver_connection.info.backend_pid)
            _kill_backend(app, killed[0])

    event.listen(app.db.engine, "before_cursor_execute", mark_writes)
    event.listen(app.db.engine, "commit", kill)
    try:
        out = one_by_one(app, banking.purchase, pos, card.pan, 700, PIN)
    finally:
        event.remove(app.db.engine, "commit", kill)
        event.remove(app.db.engine, "before_cursor_execute", mark_writes)
    assert killed
    assert out["balance_fen"] == 9_300
    assert _payments(app) == 1
    assert invariants(app)["ok"]


def test_the_group_commit_writer_opens_new_connections_after_its_own_are_killed(app, city, pos):
    card = activated(city, opening_fen=10_000)
    first = batching.call(app, banking.purchase, pos, card.pan, 100, PIN, idempotency_key="w-1")
    writer = batching.batcher(app)
    pids = [c.connection.driver_connection.info.backend_pid for c in (writer._conn, writer._lookup)]
    for pid in pids:
        _kill_backend(app, pid)
    second = batching.call(app, banking.purchase, pos, card.pan, 200, PIN, idempotency_key="w-2")
    third = batching.call(app, banking.purchase, pos, card.pan, 300, PIN, idempotency_key="w-3")
    assert (first["balance_fen"], second["balance_fen"], third["balance_fen"]) == (9_900, 9_700, 9_400)
    assert _payments(app) == 3
    new = [c.connection.driver_connection.info.backend_pid for c in (writer._conn, writer._lookup)]
    assert not set(new) & set(pids)
    assert invariants(app)["ok"]
