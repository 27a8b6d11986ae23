"""8 worker threads, random money movements among 50 accounts through every group-committed operation
(transfers, ATM and counter withdrawals and deposits, one-step and authorize/capture payments, pension
credits, medical settlements paid in cash or from the bank account), random retries with the same key:
afterwards the ledger balances, no customer is negative, every acknowledged transfer is there exactly
once, every acknowledged settlement once, and each personal account is the sum of its movements."""

from __future__ import annotations

import random
import threading
import time

import pytest
from sqlalchemy import func, select

from sscard.core.errors import SscardError
from sscard.core.roles import CLI_OPERATOR, SYSTEM_ACTOR
from sscard.models.foundation import BankAccount, Card
from sscard.models.ledger import LedgerAccount, LedgerTransfer
from sscard.models.medical import MedicalSettlement, PersonalAccount, PersonalAccountMovement
from sscard.services import banking, batching, ledger, medical

from .conftest import many_accounts
from .helpers import PIN, invariants, terminal

WORKERS = 8
SECONDS = 8.0
# quote_outdated: another settlement of the same person changed the split between quote and settle
ACCEPTABLE = {"insufficient_funds", "limit_exceeded", "quote_outdated"}
BILL = [{"category": "drug", "name": "阿莫西林胶囊", "amount_fen": 2_345, "covered": True},
        {"category": "material", "name": "自费敷料", "amount_fen": 700, "covered": False}]


def _medical_cards(city, app, holders) -> dict[str, tuple[str, str]]:
    """A designated hospital with a terminal, and every holder insured: pan -> (card number, ident code)."""
    medical.add_institution(app, CLI_OPERATOR, "H3", "省人民医院", "hospital", 3, True, settlement_bank_code="GSB")
    medical.add_terminal(app, CLI_OPERATOR, "H3", "HOSP-H3-1")
    medical.credit_month(app, SYSTEM_ACTOR, "2026-01", [{"citizen_id": h.citizen_id, "amount_fen": 30_000}
                                                       for h in holders])
    with app.db.session() as s:
        rows = s.execute(select(BankAccount.pan, Card.card_number, Card.ident_code)
                         .join(Card, Card.id == BankAccount.card_id)
                         .where(BankAccount.pan.in_([h.pan for h in holders]))).all()
    return {r.pan: (r.card_number, r.ident_code) for r in rows}


@pytest.mark.slow
def test_random_concurrent_money_movements_keep_the_ledger_exact(city, app, terminals):
    holders = many_accounts(city, 50, 20_000)
    cards_of = _medical_cards(city, app, holders)
    hospital = terminal(city, "HOSP-H3-1")
    tellers = {"GSB": city.actor("teller"), "JSB": city.actor("teller_jsb")}
    settled: dict[str, str] = {}  # settlement code -> key
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
        try:
            work(w)
        except Exception as exc:  # an unexpected error is a failure of the test, not a quiet dead thread
            failures.append(f"worker {w}: {exc!r}"[:500])

    def work(w: int) -> None:
        rng = random.Random(w)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            key = f"w{w}-{n}"
            src, dst = rng.sample(holders, 2)
            amount = rng.randint(1, 3_000)
            kind = rng.choice(["transfer", "withdraw", "purchase", "authorize", "counter_deposit",
                               "counter_withdraw", "pension", "settle_cash", "settle_bank"])
            atm, pos = terminals["atm"][src.bank], terminals["pos"][src.bank]
            quote = None
            if kind.startswith("settle"):  # the quote is read first, as a hospital's system does
                number, ident = cards_of[src.pan]
                try:
                    quote = medical.pre_settle(app, hospital, number, ident, BILL)["quote"]
                except SscardError as err:
                    failures.append(f"pre_settle: {err.code}")
                    continue

            def call(kind=kind, key=key, src=src, dst=dst, amount=amount, atm=atm, pos=pos, quote=quote):
                if kind == "counter_deposit":
                    return banking.deposit(app, tellers[src.bank], src.pan, amount, idempotency_key=key)
                if kind == "counter_withdraw":
                    return banking.withdraw(app, tellers[src.bank], src.pan, amount, PIN, idempotency_key=key)
                if kind == "pension":
                    return banking.credit_pension(app, SYSTEM_ACTOR, src.pan, amount, key, idempotency_key=key)
                if kind.startswith("settle"):
                    number, ident = cards_of[src.pan]
                    way = "bank" if kind == "settle_bank" else "cash"
                    return medical.settle(app, hospital, quote, number, ident, "123456", way,
                                          PIN if way == "bank" else None, idempotency_key=key)
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
            if isinstance(first, dict) and kind.startswith("settle"):
                with lock:
                    settled[first["code"]] = key
                    answers[key] = first
                    if first["self_pay_method"] == "bank":
                        out_of_customers[0] += first["split"]["self_pay_fen"]
            elif isinstance(first, dict):
                with lock:
                    answers[key] = first
                    if kind in ("counter_deposit", "pension"):
                        out_of_customers[0] -= amount  # into a customer's account, from outside
                        continue
                    acknowledged[first["transfer_id"]] = key
                    if kind != "transfer":
                        out_of_customers[0] += amount

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:5]
    assert len(answers) > 100 and len(settled) > 5  # it did real work, settlements included

    report = invariants(app)
    assert report["ok"], report["problems"][:5]
    assert report["negative_customer_accounts"] == 0
    with app.db.session() as s:
        customer_after = ledger.customer_total(s)
        customers = set(s.scalars(select(LedgerAccount.id).where(LedgerAccount.kind == "customer")))
        rows = s.execute(select(LedgerTransfer.transfer_id, LedgerTransfer.kind, LedgerTransfer.debit_account_id)
                         .where(LedgerTransfer.id > start_id)).all()
        settlements = s.execute(select(MedicalSettlement.code, MedicalSettlement.bank_reference)).all()
        nonces = s.scalar(select(func.count(func.distinct(MedicalSettlement.quote_nonce))))
        moved = dict(s.execute(select(PersonalAccountMovement.person_id, func.sum(PersonalAccountMovement.amount_fen))
                               .group_by(PersonalAccountMovement.person_id)).all())
        balances = dict(s.execute(select(PersonalAccount.person_id, PersonalAccount.balance_fen)).all())
    assert {code for code, _ref in settlements} == set(settled)  # every acknowledged settlement, once, no other
    assert nonces == len(settlements)  # no quote settled twice
    assert balances == moved  # each personal account is the sum of its movements
    acknowledged.update({ref: "settlement" for _code, ref in settlements if ref})  # the bank-paid parts
    assert customer_before - customer_after == out_of_customers[0]
    originating = [r.transfer_id for r in rows
                   if r.debit_account_id in customers and r.kind in ("posted", "pending", "post")]
    assert len(originating) == len(set(originating))  # each exactly once
    assert set(originating) == set(acknowledged)  # every acknowledged one, and no other
