"""8 worker threads, random transfers/withdrawals/payments among 50 accounts, random retries: afterwards the
ledger balances, no customer is negative, and every acknowledged transfer is there exactly once."""

from __future__ import annotations

import random
import threading
import time

import pytest
from sqlalchemy import select

from sscard.core.errors import SscardError
from sscard.models.ledger import LedgerAccount, LedgerTransfer
from sscard.services import banking, batching, ledger

from .conftest import many_accounts
from .helpers import PIN, invariants

WORKERS = 8
SECONDS = 8.0
ACCEPTABLE = {"insufficient_funds", "limit_exceeded"}


@pytest.mark.slow
def test_random_concurrent_money_movements_keep_the_ledger_exact(city, app, terminals):
    holders = many_accounts(city, 50, 20_000)
    with app.db.session() as s:
        start_id = s.scalar(select(LedgerTransfer.id).order_by(LedgerTransfer.id.desc()).limit(1))
        customer_before = ledger.customer_total(s)
    acknowledged: dict[str, str] = {}  # transfer_id -> key
    answers: dict[str, dict] = {}
    out_of_customers = [0]
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + SECONDS

    def worker(w: int) -> None:
        rng = random.Random(w)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            key = f"w{w}-{n}"
            src, dst = rng.sample(holders, 2)
            amount = rng.randint(1, 3_000)
            kind = rng.choice(["transfer", "withdraw", "purchase", "authorize"])
            atm, pos = terminals["atm"][src.bank], terminals["pos"][src.bank]

            def call(kind=kind, key=key, src=src, dst=dst, amount=amount, atm=atm, pos=pos):
                if kind == "transfer":
                    return batching.call(app, banking.transfer, atm, src.pan, dst.pan, amount, PIN,
                                         idempotency_key=key)
                if kind == "withdraw":
                    return banking.withdraw(app, atm, src.pan, amount, PIN, idempotency_key=key)
                if kind == "purchase":
                    return batching.call(app, banking.purchase, pos, src.pan, amount, PIN, idempotency_key=key)
                held = batching.call(app, banking.authorize_payment, pos, src.pan, amount, PIN,
                                     idempotency_key=key)
                with lock:
                    acknowledged[held["transfer_id"]] = key
                return batching.call(app, banking.capture_payment, pos, held["transfer_id"],
                                     idempotency_key=key + "-capture")

            tries = 2 if rng.random() < 0.25 else 1  # a retry with the same key gets the same answer
            first = None
            for attempt in range(tries):
                try:
                    out = call()
                except SscardError as err:
                    out = err.code
                    if err.code not in ACCEPTABLE:
                        failures.append(f"{kind}: {err.code}")
                if attempt == 0:
                    first = out
                elif out != first:
                    failures.append(f"retry of {key} answered {out!r}, first {first!r}")
            if isinstance(first, dict):
                with lock:
                    acknowledged[first["transfer_id"]] = key
                    answers[key] = first
                    if kind != "transfer":
                        out_of_customers[0] += amount

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:5]
    assert len(answers) > 100  # it did real work

    report = invariants(app)
    assert report["ok"], report["problems"][:5]
    assert report["negative_customer_accounts"] == 0
    with app.db.session() as s:
        customer_after = ledger.customer_total(s)
        customers = set(s.scalars(select(LedgerAccount.id).where(LedgerAccount.kind == "customer")))
        rows = s.execute(select(LedgerTransfer.transfer_id, LedgerTransfer.kind, LedgerTransfer.debit_account_id)
                         .where(LedgerTransfer.id > start_id)).all()
    assert customer_before - customer_after == out_of_customers[0]
    originating = [r.transfer_id for r in rows
                   if r.debit_account_id in customers and r.kind in ("posted", "pending", "post")]
    assert len(originating) == len(set(originating))  # each exactly once
    assert set(originating) == set(acknowledged)  # every acknowledged one, and no other
