"""Hypothesis stateful tests: the bank account's state machine, and pending transfers under a moving clock."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from sscard.core.errors import SscardError
from sscard.core.roles import Channel
from sscard.services import banking, loss

from .helpers import PIN, activated, balance_of, invariants, terminal

SETTINGS = settings(max_examples=8, stateful_step_count=12, deadline=None,
                    suppress_health_check=list(HealthCheck))


def _code(fn, *args) -> str:
    try:
        fn(*args)
    except SscardError as err:
        return err.code
    return "ok"


def test_bank_account_state_machine(city, app, clock):
    teller, bsup = city.actor("teller"), city.actor("bsup")
    oral_days = app.policy.bank_loss.oral_days

    class Account(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.card = activated(city, opening_fen=1_000)
            self.holder = city.cardholder(self.card, Channel.HOTLINE_BANK)
            self.status = "active"
            self.oral_until = None
            self.balance = 1_000

        def effective(self) -> str:
            if self.status == "oral_loss" and clock.now() >= self.oral_until:
                return "active"
            return self.status

        def lapse(self) -> None:
            if self.effective() != self.status:
                self.status = "active"

        @rule()
        def oral_loss(self):
            got = _code(loss.report_oral_loss, app, self.holder, self.card.pan)
            self.lapse()
            if self.status == "active":
                assert got == "ok"
                self.status, self.oral_until = "oral_loss", clock.now() + timedelta(days=oral_days)
            else:
                assert got == "illegal_transition"

        @rule()
        def written_loss(self):
            got = _code(loss.report_written_loss, app, teller, self.card.pan, self.card.citizen_id)
            self.lapse()
            if self.status in ("active", "oral_loss"):
                assert got == "ok"
                self.status = "written_loss"
            else:
                assert got == "illegal_transition"

        @rule()
        def cancel_loss(self):
            got = _code(loss.cancel_bank_loss, app, teller, self.card.pan, self.card.citizen_id)
            self.lapse()
            if self.status in ("oral_loss", "written_loss"):
                assert got == "ok"
                self.status = "active"
            else:
                assert got == "illegal_transition"

        @rule()
        def freeze(self):
            got = _code(banking.freeze, app, bsup, self.card.pan, "court order")
            self.lapse()
            assert got == ("ok" if self.status == "active" else "illegal_transition")
            if got == "ok":
                self.status = "frozen"

        @rule()
        def unfreeze(self):
            got = _code(banking.unfreeze, app, bsup, self.card.pan, "order lifted")
            assert got == ("ok" if self.status == "frozen" else "illegal_transition")
            if got == "ok":
                self.status = "active"

        @rule(days=st.integers(0, 6))
        def time_passes(self, days):
            clock.advance(days=days, hours=1)

        @rule(amount=st.integers(1, 600))
        def withdraw(self, amount):
            got = _code(banking.withdraw, app, teller, self.card.pan, amount, PIN)
            expected = {"active": "ok", "oral_loss": "account_lost", "written_loss": "account_lost",
                        "frozen": "account_frozen", "closed": "account_closed"}[self.effective()]
            if expected == "ok" and amount > self.balance:
                expected = "insufficient_funds"
            assert got == expected
            if got == "ok":
                self.balance -= amount

        @rule(amount=st.integers(1, 300))
        def deposit(self, amount):
            got = _code(banking.deposit, app, teller, self.card.pan, amount)
            assert got == ("account_closed" if self.status == "closed" else "ok")
            if got == "ok":
                self.balance += amount

        @precondition(lambda self: self.status != "closed")
        @rule()
        def close(self):
            got = _code(banking.close, app, teller, self.card.pan, self.card.citizen_id)
            if self.status == "frozen" and self.balance > 0:
                assert got == "account_frozen"
            else:
                assert got == "ok"
                self.status, self.balance = "closed", 0

        @invariant()
        def balance_matches(self):
            assert balance_of(app, self.card.pan) == self.balance

    run_state_machine_as_test(Account, settings=SETTINGS)
    assert invariants(app)["ok"]


def test_pending_transfers_post_void_and_expire_by_the_clock(city, app, clock):
    pos = terminal(city, "POS-1")

    class Holds(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.card = activated(city, opening_fen=5_000)
            self.balance = 5_000
            self.holds: dict[str, tuple[int, object]] = {}  # transfer id -> (amount, timeout_at)
            self.done: set[str] = set()

        def held(self) -> int:
            return sum(a for a, until in self.holds.values() if clock.now() < until)

        @rule(amount=st.integers(1, 3_000), seconds=st.integers(30, 600))
        def authorize(self, amount, seconds):
            try:
                out = banking.authorize_payment(app, pos, self.card.pan, amount, PIN, timeout_seconds=seconds)
            except SscardError as err:
                assert err.code == "insufficient_funds"
                assert amount > self.balance - self.held()
                return
            assert amount <= self.balance - self.held()
            self.holds[out["transfer_id"]] = (amount, clock.now() + timedelta(seconds=seconds))

        @precondition(lambda self: self.holds or self.done)
        @rule(data=st.data(), part=st.integers(1, 100))
        def capture(self, data, part):
            tid = data.draw(st.sampled_from(sorted(self.holds) + sorted(self.done)))
            if tid in self.done:
                assert _code(banking.capture_payment, app, pos, tid) == "pending_already_resolved"
                return
            amount, until = self.holds.pop(tid)
            self.done.add(tid)
            take = max(1, amount * part // 100)
            got = _code(banking.capture_payment, app, pos, tid, take)
            if clock.now() >= until:
                assert got in ("pending_expired", "pending_already_resolved")  # swept already, or now
            else:
                assert got == "ok"
                self.balance -= take

        @precondition(lambda self: self.holds)
        @rule(data=st.data())
        def void(self, data):
            tid = data.draw(st.sampled_from(sorted(self.holds)))
            _amount, until = self.holds.pop(tid)
            self.done.add(tid)
            got = _code(banking.void_payment, app, pos, tid)
            if clock.now() < until:
                assert got == "ok"
            else:
                assert got in ("pending_expired", "pending_already_resolved")

        @rule(seconds=st.integers(1, 400))
        def time_passes(self, seconds):
            clock.advance(seconds=seconds)

        @invariant()
        def sums(self):
            b = banking.statement(app, city.actor("teller"), self.card.pan, limit=1)
            assert b["balance_fen"] == self.balance
            # holds past their timeout still count until expired (by a sweep or the next debit short of funds)
            assert b["available_fen"] <= self.balance - self.held()

    run_state_machine_as_test(Holds, settings=SETTINGS)
    assert invariants(app)["ok"]
