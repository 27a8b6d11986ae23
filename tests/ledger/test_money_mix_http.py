"""Every money path at random, through the real HTTP API, among a few accounts of two banks: ATM cash and
transfers, POS one-step payments and holds captured (wholly or in part) or voided, the counter's deposits,
withdrawals and transfers, medical settlements paid in cash or from the card and their refunds, pension
credits. Requests are retried with the same Idempotency-Key (at once, later, and several at the same moment
from different connections) and re-sent under a used key with another body. Afterwards each account's balance
is what the acknowledged answers say, and nothing else: every acknowledged movement is in the ledger exactly
once, no refusal and no reused key left anything, and the ledger's own check is clean (session 27)."""

from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import select

from sscard.core.roles import CLI_OPERATOR, SYSTEM_ACTOR
from sscard.models.foundation import BankAccount, Card
from sscard.models.ledger import LedgerAccount, LedgerTransfer
from sscard.services import banking, batching, medical
from tests.support import bearer

from .conftest import many_accounts
from .helpers import PIN, balance_of, invariants, terminal_token

pytestmark = pytest.mark.keys_required

STEPS = 160
# what a random request may be refused for, the money never moving: the rest is a failure of the test
ACCEPTABLE = {"insufficient_funds", "limit_exceeded", "pending_already_resolved", "quote_outdated",
              "already_refunded", "same_account"}
BILL = [{"category": "drug", "name": "阿莫西林胶囊", "amount_fen": 2_345, "covered": True},
        {"category": "material", "name": "自费敷料", "amount_fen": 700, "covered": False}]


def _auth(token: str, key: str | None = None) -> dict:
    return bearer(token, key, **{"Accept-Language": "en"})


class Mix:
    """The world of the test: accounts, tokens, and the model of every account's balance."""

    def __init__(self, city, app, client, rng: random.Random):
        self.app, self.client, self.rng = app, client, rng
        from .helpers import add_terminal

        add_terminal(city, "ATM-JSB-1", "atm", outlet_code="JSB-001")
        add_terminal(city, "POS-JSB-1", "pos", bank_code="JSB", merchant_name="城东药店")
        self.holders = many_accounts(city, 6, 50_000, jsb_every=3)
        medical.add_institution(app, CLI_OPERATOR, "H3", "省人民医院", "hospital", 3, True, settlement_bank_code="GSB")
        medical.add_terminal(app, CLI_OPERATOR, "H3", "HOSP-H3-1")
        medical.credit_month(app, SYSTEM_ACTOR, "2026-01", [{"citizen_id": h.citizen_id, "amount_fen": 3_000}
                                                           for h in self.holders])
        with app.db.session() as s:
            rows = s.execute(select(BankAccount.pan, Card.card_number, Card.ident_code)
                             .join(Card, Card.id == BankAccount.card_id)).all()
        self.card_of = {r.pan: (r.card_number, r.ident_code) for r in rows}
        self.atm = {"GSB": terminal_token(city, "ATM-GSB-1"), "JSB": terminal_token(city, "ATM-JSB-1")}
        self.pos = {"GSB": terminal_token(city, "POS-1"), "JSB": terminal_token(city, "POS-JSB-1")}
        self.teller = {"GSB": city.token("teller"), "JSB": city.token("teller_jsb")}
        self.hospital = terminal_token(city, "HOSP-H3-1")
        self.model = {h.pan: balance_of(app, h.pan) for h in self.holders}
        self.holds: list[tuple[str, str, str, int]] = []  # (pos bank, transfer id, pan, amount) still open
        self.settled: list[tuple[str, str, int]] = []  # (code, pan, self-pay from the card) not yet refunded
        self.acknowledged: set[str] = set()  # transfer ids of every acknowledged movement out of a card
        self.sent: list[tuple[str, str, dict, str, tuple[int, dict]]] = []  # acknowledged: token, path, body, key, answer
        self.failures: list[str] = []
        self.n = 0

    def post(self, token: str, path: str, body: dict, key: str) -> tuple[int, dict]:
        r = self.client.post(path, json=body, headers=_auth(token, key))
        return r.status_code, r.json()

    def send(self, token: str, path: str, body: dict) -> tuple[int, dict]:
        """Send a new request; now and then retried at once, or by several connections at the same moment:
        every answer must be the first one."""
        self.n += 1
        key = f"mix-{self.n}"
        how = self.rng.random()
        if how < 0.15:  # the same request from three connections at the same moment
            answers: list[tuple[int, dict]] = []
            threads = [threading.Thread(target=lambda: answers.append(self.post(token, path, body, key)))
                       for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            status, out = answers[0]
            if any(a != answers[0] for a in answers):
                self.failures.append(f"{path} sent at once three times answered {answers}")
        else:
            status, out = self.post(token, path, body, key)
            if how < 0.35:  # a retry (a dropped answer): the first answer again
                again = self.post(token, path, body, key)
                if again != (status, out) and not (status >= 400 and out.get("code") == "pending_already_resolved"):
                    self.failures.append(f"{path} retried answered {again}, first {(status, out)}")
        if status < 300:
            self.sent.append((token, path, body, key, (status, out)))
            changed = dict(body)
            if "amount_fen" in changed or path.endswith("/capture"):
                changed["amount_fen"] = changed.get("amount_fen", 0) + 1
            elif "ss_password" in changed:
                changed["ss_password"] = "654321"
            elif "reason" in changed:
                changed["reason"] = "another body"
            if changed != body and self.rng.random() < 0.3:  # the same key with another body: refused
                reused = self.post(token, path, changed, key)
                if reused[0] != 422 or reused[1].get("code") != "idempotency_key_reused":
                    self.failures.append(f"{path} with a used key and another body answered {reused}")
        elif out.get("code") not in ACCEPTABLE:
            self.failures.append(f"{path} {body} refused {status} {out}")
        return status, out

    # ------------------------------------------------------------ the operations

    def step(self) -> None:
        rng = self.rng
        src, dst = rng.sample(self.holders, 2)
        amount = rng.choice([1, rng.randint(1, 500), rng.randint(500, 9_000), 60_000])
        kind = rng.choice(["atm_withdraw", "atm_deposit", "atm_transfer", "purchase", "authorize", "capture",
                           "void", "counter_deposit", "counter_withdraw", "counter_transfer", "pension",
                           "settle_cash", "settle_bank", "refund"])
        if kind == "atm_withdraw":
            self.debit(src, *self.send(self.atm[src.bank], "/api/v1/terminal/withdrawal",
                                       {"pan": src.pan, "amount_fen": amount, "pin": PIN}))
        elif kind == "atm_deposit":
            self.credit(src, *self.send(self.atm[src.bank], "/api/v1/terminal/deposit",
                                        {"pan": src.pan, "amount_fen": amount}))
        elif kind == "atm_transfer":
            status, out = self.send(self.atm[src.bank], "/api/v1/terminal/transfers",
                                    {"from_pan": src.pan, "to_pan": dst.pan, "amount_fen": amount, "pin": PIN})
            self.debit(src, status, out)
            self.credit(dst, status, out)
        elif kind == "purchase":
            self.debit(src, *self.send(self.pos[src.bank], "/api/v1/terminal/payments",
                                       {"pan": src.pan, "amount_fen": amount, "pin": PIN}))
        elif kind == "authorize":
            status, out = self.send(self.pos[src.bank], "/api/v1/terminal/payments/authorize",
                                    {"pan": src.pan, "amount_fen": amount, "pin": PIN})
            if status < 300:
                self.holds.append((src.bank, out["transfer_id"], src.pan, amount))
                self.acknowledged.add(out["transfer_id"])
        elif kind in ("capture", "void") and self.holds:
            bank, tid, pan, held = self.holds.pop(rng.randrange(len(self.holds)))
            body = {"amount_fen": rng.randint(1, held)} if kind == "capture" and rng.random() < 0.5 else {}
            status, out = self.send(self.pos[bank], f"/api/v1/terminal/payments/{tid}/{kind}", body)
            if status < 300 and kind == "capture":
                self.model[pan] -= out["amount_fen"]
                self.acknowledged.add(out["transfer_id"])
        elif kind == "counter_deposit":
            self.credit(src, *self.send(self.teller[src.bank], f"/api/v1/bank-accounts/{src.pan}/deposit",
                                        {"amount_fen": amount}))
        elif kind == "counter_withdraw":
            self.debit(src, *self.send(self.teller[src.bank], f"/api/v1/bank-accounts/{src.pan}/withdrawal",
                                       {"amount_fen": amount, "pin": PIN}))
        elif kind == "counter_transfer":
            status, out = self.send(self.teller[src.bank], f"/api/v1/bank-accounts/{src.pan}/transfer",
                                    {"to_pan": dst.pan, "amount_fen": amount, "pin": PIN})
            self.debit(src, status, out)
            self.credit(dst, status, out)
        elif kind == "pension":  # the pension payer's file: a system job, not an API client
            out = batching.call(self.app, banking.credit_pension, SYSTEM_ACTOR, src.pan, amount, f"mix-{self.n}",
                                idempotency_key=f"pension-{self.n}")
            self.n += 1
            self.credit(src, 200, out)
        elif kind.startswith("settle"):
            number, ident = self.card_of[src.pan]
            status, quote = self.post(self.hospital, "/api/v1/terminal/medical/pre-settlements",
                                      {"card_number": number, "ident_code": ident, "lines": BILL}, f"q-{self.n}")
            if status != 200:
                self.failures.append(f"pre-settlement refused {quote}")
                return
            way = "bank" if kind == "settle_bank" else "cash"
            status, out = self.send(self.hospital, "/api/v1/terminal/medical/settlements",
                                    {"quote": quote["quote"], "card_number": number, "ident_code": ident,
                                     "ss_password": "123456", "pay_with": way,
                                     "bank_pin": PIN if way == "bank" else None})
            if status < 300:
                from_card = out["split"]["self_pay_fen"] if out["self_pay_method"] == "bank" else 0
                self.model[src.pan] -= from_card
                self.settled.append((out["code"], src.pan, from_card))
        elif kind == "refund" and self.settled:
            code, pan, from_card = self.settled.pop(rng.randrange(len(self.settled)))
            status, out = self.send(self.hospital, f"/api/v1/terminal/medical/settlements/{code}/refund",
                                    {"reason": "退费"})
            if status < 300:
                self.model[pan] += from_card

    def debit(self, holder, status: int, out: dict) -> None:
        if status < 300:
            self.model[holder.pan] -= out["amount_fen"]
            self.acknowledged.add(out["transfer_id"])

    def credit(self, holder, status: int, out: dict) -> None:
        if status < 300:
            self.model[holder.pan] += out["amount_fen"]


def test_every_money_path_at_random_over_http_moves_exactly_what_it_acknowledged(city, app, client):
    rng = random.Random(27)
    mix = Mix(city, app, client, rng)
    with app.db.session() as s:
        start_id = s.scalar(select(LedgerTransfer.id).order_by(LedgerTransfer.id.desc()).limit(1))
    for _ in range(STEPS):
        mix.step()
    # every acknowledged request retried now, long after: the first answer, and nothing moves again
    for token, path, body, key, first in rng.sample(mix.sent, min(40, len(mix.sent))):
        assert mix.post(token, path, body, key) == first, (path, body)
    assert not mix.failures, mix.failures[:5]
    assert len(mix.sent) > 60  # it did real work, on every path
    assert {path.rsplit("/", 1)[-1] for _t, path, *_ in mix.sent} >= {
        "withdrawal", "deposit", "transfers", "payments", "authorize", "capture", "void", "transfer", "settlements",
        "refund"}
    assert {pan: balance_of(app, pan) for pan in mix.model} == mix.model
    report = invariants(app)
    assert report["ok"], report["problems"][:5]
    with app.db.session() as s:
        customers = set(s.scalars(select(LedgerAccount.id).where(LedgerAccount.kind == "customer")))
        rows = s.execute(select(LedgerTransfer.transfer_id, LedgerTransfer.kind, LedgerTransfer.code,
                                LedgerTransfer.debit_account_id)
                         .where(LedgerTransfer.id > start_id)).all()
    out_of_cards = [r.transfer_id for r in rows if r.debit_account_id in customers
                    and r.kind in ("posted", "pending", "post") and r.code != "medical_payment"]
    assert len(out_of_cards) == len(set(out_of_cards))  # each exactly once
    assert set(out_of_cards) == mix.acknowledged  # every acknowledged one, and no other
