"""Transfers run one per transaction (operation.one_by_one, the bench's (d)) on a few hot accounts: on
PostgreSQL the frame takes the accounts' advisory locks before the transaction's snapshot, so none of
them fails for having waited for another's row lock ("concurrent update"), few retry at all, the money
is conserved, and no lock outlives its transaction, refused or not."""

from __future__ import annotations

import random
import threading

from sqlalchemy import text

from sscard import db as dbmod
from sscard.core.errors import SscardError
from sscard.services import banking
from sscard.services.operation import one_by_one

from .conftest import many_accounts
from .helpers import PIN, balance_of, invariants, terminal

THREADS = 6
EACH = 12


def _ledger_locks_held(app) -> int:
    """Advisory locks of ledger accounts (banking.LEDGER_LOCKS) held by any session."""
    with app.db.engine.connect() as conn:
        found = conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :ns"),
                             {"ns": banking.LEDGER_LOCKS >> 32}).scalar()
        conn.rollback()
    return int(found or 0)


def test_concurrent_transfers_one_per_transaction_on_hot_accounts_seldom_retry_and_conserve_money(
        city, app, backend, monkeypatch):
    holders = many_accounts(city, 5, 50_000, jsb_every=0)
    atm = terminal(city, "ATM-GSB-1")
    total = sum(balance_of(app, h.pan) for h in holders)
    waited = [0]
    plain = dbmod.waited_for_committed_writer

    def counting(exc):  # called for every retried failure: the test's own transfers' are counted (the
        found = plain(exc)  # app's background threads, the sealer or the outbox's publisher, are not its)
        if threading.current_thread().name.startswith("transfers-"):
            waited[0] += found
        return found

    monkeypatch.setattr(dbmod, "waited_for_committed_writer", counting)
    retries = app.db.retries
    done, failures = [0], []
    lock = threading.Lock()

    def worker(w: int) -> None:
        rng = random.Random(w)
        for n in range(EACH):
            src, dst = rng.sample(holders, 2)
            try:
                one_by_one(app, banking.transfer, atm, src.pan, dst.pan, rng.randint(1, 3_000), PIN,
                           idempotency_key=f"w{w}-{n}")
            except SscardError as err:
                if err.code != "insufficient_funds":
                    failures.append(err.code)
                continue
            except Exception as exc:  # noqa: BLE001  a failure of the test, not a quiet dead thread
                failures.append(repr(exc)[:300])
                continue
            with lock:
                done[0] += 1

    threads = [threading.Thread(target=worker, args=(w,), name=f"transfers-{w}") for w in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert done[0] >= THREADS * EACH // 2
    assert sum(balance_of(app, h.pan) for h in holders) == total
    assert invariants(app)["ok"]
    retried = app.db.retries - retries
    # none waited for a row lock inside its transaction (main: most of its ~1 retry per transfer); what
    # may remain are SSI conflicts through page-level predicate locks (the accounts share index pages)
    assert waited[0] == 0, f"{waited[0]} of {retried} retries waited for a committed writer"
    assert retried <= done[0] // 2, f"{retried} retries for {done[0]} transfers"
    if backend.name == "postgres":
        assert _ledger_locks_held(app) == 0


def test_a_refused_transfer_run_alone_keeps_no_lock_and_the_next_one_goes_through(city, app, backend):
    poor, rich = many_accounts(city, 2, 1_000, jsb_every=0)
    atm = terminal(city, "ATM-GSB-1")
    try:
        one_by_one(app, banking.transfer, atm, poor.pan, rich.pan, 5_000, PIN, idempotency_key="too-much")
    except SscardError as err:
        assert err.code == "insufficient_funds"
    else:
        raise AssertionError("a transfer beyond the balance went through")
    if backend.name == "postgres":
        assert _ledger_locks_held(app) == 0
    one_by_one(app, banking.transfer, atm, poor.pan, rich.pan, 500, PIN, idempotency_key="enough")
    assert balance_of(app, poor.pan) == 500 and balance_of(app, rich.pan) == 1_500
    if backend.name == "postgres":
        assert _ledger_locks_held(app) == 0


def test_a_transfer_run_alone_locks_no_whole_heap_page_of_accounts_or_usage(city, app, backend):
    """PostgreSQL promotes a SERIALIZABLE transaction's tuple predicate locks to one on the whole heap page
    once it holds more than two on that page (max_pred_locks_per_page). A transfer run alone read every
    kind of its two accounts' usage that day (payments, withdrawals, transfers) and the ATM's cash account
    with its two card accounts: both pages were locked whole, and every transaction run on its own then
    conflicted with every other one's writes (after a burst of card payments the bench's (d) retried 1.5
    times per transfer, p99 over a second). Now it reads its two accounts and its payer's transfer usage
    only: no heap page of either table is locked whole (index pages are: B-tree predicate locks are by
    leaf page, and conflict only with inserts there)."""
    if backend.name != "postgres":
        return  # SQLite has no predicate locks: its writers take turns
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    payer, payee = many_accounts(city, 2, 100_000, jsb_every=0)
    atm, pos = terminal(city, "ATM-GSB-1"), terminal(city, "POS-1")
    for holder in (payer, payee):  # three kinds of usage today for both, on the table's one page
        other = payee if holder is payer else payer
        banking.purchase(app, pos, holder.pan, 100, PIN, idempotency_key=f"buy-{holder.pan}")
        banking.withdraw(app, atm, holder.pan, 100, PIN, idempotency_key=f"cash-{holder.pan}")
        banking.transfer(app, atm, holder.pan, other.pan, 100, PIN, idempotency_key=f"give-{holder.pan}")
    seen: list[tuple[str, str]] = []

    def look(session: Session) -> None:  # before COMMIT: the transaction's predicate locks are all held
        # (on the driver's cursor: the frame's before-commit writes go in a pipeline with its COMMIT,
        # where psycopg has a statement's rows only once it is fetched)
        cursor = session.connection().connection.driver_connection.cursor()
        cursor.execute("SELECT locktype, relation::regclass::text FROM pg_locks WHERE mode = 'SIReadLock'"
                       " AND pid = pg_backend_pid()")
        seen.extend((r[0], r[1]) for r in cursor.fetchall())

    event.listen(Session, "before_commit", look)
    try:
        one_by_one(app, banking.transfer, atm, payer.pan, payee.pan, 500, PIN, idempotency_key="alone")
    finally:
        event.remove(Session, "before_commit", look)
    assert seen, "the transfer's transaction held no predicate lock at all"
    whole = {table for kind, table in seen if kind == "page" and table in ("ledger_accounts", "ledger_limit_usage")}
    assert not whole, f"whole heap pages locked: {sorted(whole)} in {seen}"
    assert balance_of(app, payee.pan) == 100_000 - 3 * 100 + 100 + 500  # its three uses, the two transfers in
