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

    def counting(exc):  # called for every retried failure
        found = plain(exc)
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

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(THREADS)]
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
