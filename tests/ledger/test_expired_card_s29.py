"""Session 29: a card past its expiry date takes no debit at a terminal (docs/RULES.md R10.14).

Found from outside in earlier sessions: an ATM withdrawal, a POS sale (one-step and authorize/capture) and a
medical self-pay by card worked on a card past its expiry date (R2.7). From the day after the expiry date
(Shanghai day, the injected clock) a terminal's debit is refused `card_expired`, nothing moves, and the refusal
is recorded against the account and its holder like the other state refusals; credits, a balance inquiry, the
bank counter and the cardholder's own (card-not-present) transfer keep working."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import select

from sscard.core.clock import SHANGHAI
from sscard.core.errors import SscardError
from sscard.core.roles import SYSTEM_ACTOR
from sscard.models.foundation import AuditRecord, BankAccount, Card
from sscard.services import banking, batching
from sscard.services.batching import _Request
from sscard.services.operation import Request, one_by_one
from tests.support import bearer

from .helpers import PIN, activated, balance_of, invariants, terminal, terminal_token


def expiry_of(app, pan: str) -> date:
    with app.db.session() as s:
        return s.scalar(select(Card.expiry_date).join(BankAccount, BankAccount.card_id == Card.id)
                        .where(BankAccount.pan == pan))


def on_day(clock, day: date, hour: int = 10) -> None:
    """The clock at `hour` o'clock, Shanghai time, on `day`."""
    clock.set(datetime.combine(day, time(hour), tzinfo=SHANGHAI).astimezone(UTC))


def issued_later(app, pan: str, expiry: date = date(2046, 1, 5)) -> None:
    """This card as if issued ten years later (a test's second card, to stay in date while the first expires)."""
    with app.db.session() as s:
        s.execute(Card.__table__.update().where(Card.id == s.scalar(
            select(BankAccount.card_id).where(BankAccount.pan == pan))).values(expiry_date=expiry))
        s.commit()


def refused_records(app, pan: str) -> list[tuple[str, str, str]]:
    with app.db.session() as s:
        return [(r.operation, r.object_type, r.object_id) for r in s.scalars(
            select(AuditRecord).where(AuditRecord.result == "card_expired").order_by(AuditRecord.id))]


def test_a_cards_expiry_is_ten_years_after_its_issue_and_on_that_day_terminals_still_take_it(city, app, clock):
    card = activated(city, opening_fen=100_000)
    expiry = expiry_of(app, card.pan)
    assert expiry == date(2036, 1, 5)  # collected on 2026-01-05 (the FixedClock's day), card.validity_years = 10
    on_day(clock, expiry, hour=23)  # the last hour of the expiry day, Shanghai time
    atm, pos = terminal(city, "ATM-GSB-1"), terminal(city, "POS-1")
    banking.withdraw(app, atm, card.pan, 1_000, PIN)
    banking.purchase(app, pos, card.pan, 2_000, PIN)
    held = banking.authorize_payment(app, pos, card.pan, 3_000, PIN, timeout_seconds=3600)
    banking.capture_payment(app, pos, held["transfer_id"])
    assert balance_of(app, card.pan) == 94_000


def test_from_the_day_after_expiry_every_terminal_debit_is_refused_card_expired_and_nothing_moves(city, app, clock):
    card = activated(city, opening_fen=100_000)
    other = activated(city, name="李四")
    expiry = expiry_of(app, card.pan)
    atm, pos = terminal(city, "ATM-GSB-1"), terminal(city, "POS-1")
    on_day(clock, expiry, hour=22)
    held = banking.authorize_payment(app, pos, card.pan, 3_000, PIN, timeout_seconds=3 * 86400)
    clock.set(datetime.combine(expiry + timedelta(days=1), time(0, 0, 1), tzinfo=SHANGHAI).astimezone(UTC))
    attempts = {
        "bank.withdraw": lambda: banking.withdraw(app, atm, card.pan, 1_000, PIN),
        "bank.transfer": lambda: banking.transfer(app, atm, card.pan, other.pan, 1_000, PIN),
        "bank.purchase": lambda: banking.purchase(app, pos, card.pan, 1_000, PIN),
        "bank.authorize_payment": lambda: banking.authorize_payment(app, pos, card.pan, 1_000, PIN),
        "bank.capture_payment": lambda: banking.capture_payment(app, pos, held["transfer_id"]),
    }
    for name, attempt in attempts.items():
        with pytest.raises(SscardError) as refused:
            attempt()
        assert refused.value.code == "card_expired", name
        assert refused.value.params["expiry"] == expiry.isoformat()
    assert balance_of(app, card.pan) == 100_000 and balance_of(app, other.pan) == 0
    with app.db.session() as s:  # the hold is still only held: the POS may void it
        account = s.scalar(select(BankAccount).where(BankAccount.pan == card.pan))
        assert account.pin_failures == 0  # refused before the PIN was tried
    assert banking.void_payment(app, pos, held["transfer_id"])["amount_fen"] == 3_000
    named = refused_records(app, card.pan)
    assert [n[0] for n in named] == list(attempts)
    assert all(n[1:] == ("bank_account", card.pan) for n in named[:4])  # the capture names its hold
    assert invariants(app)["ok"]


def test_a_wrong_pin_on_an_expired_card_is_not_counted_the_card_is_refused_first(city, app, clock):
    card = activated(city, opening_fen=10_000)
    on_day(clock, expiry_of(app, card.pan) + timedelta(days=1))
    with pytest.raises(SscardError) as refused:
        banking.withdraw(app, terminal(city, "ATM-GSB-1"), card.pan, 100, "999999")
    assert refused.value.code == "card_expired"
    with app.db.session() as s:
        assert s.scalar(select(BankAccount.pin_failures).where(BankAccount.pan == card.pan)) == 0


def test_an_expired_cards_account_takes_credits_shows_its_balance_and_pays_out_at_the_counter(city, app, clock):
    card = activated(city, opening_fen=10_000)
    other = activated(city, name="李四", opening_fen=10_000)
    issued_later(app, other.pan)
    on_day(clock, expiry_of(app, card.pan) + timedelta(days=30))
    atm = terminal(city, "ATM-GSB-1")
    banking.credit_pension(app, SYSTEM_ACTOR, card.pan, 5_000, "2036-02")
    banking.deposit(app, atm, card.pan, 1_000)  # a deposit at the ATM: a credit
    banking.transfer(app, terminal(city, "ATM-GSB-1"), other.pan, card.pan, 500, PIN)  # in, from a card in date
    assert banking.balance_inquiry(app, atm, card.pan, PIN)["balance_fen"] == 16_500
    out = banking.withdraw(app, city.actor("teller"), card.pan, 6_500, PIN)  # the counter, with the holder's ID
    assert out["balance_fen"] == 10_000
    # the cardholder's own transfer (card-not-present, their login and PIN) is not a terminal's
    banking.transfer(app, city.cardholder(card), card.pan, other.pan, 1_000, PIN)
    assert balance_of(app, card.pan) == 9_000 and refused_records(app, card.pan) == []
    assert invariants(app)["ok"]


def test_the_refusal_holds_one_by_one_and_in_a_group_committed_batch(city, app, clock):
    """The same decision on the frame's every path: a request run alone, and a batch in which an expired
    card's payment sits between two good ones (refused alone, the others committed)."""
    expired = activated(city, opening_fen=10_000)
    good = activated(city, name="李四", opening_fen=10_000)
    pos = terminal(city, "POS-1")
    on_day(clock, expiry_of(app, expired.pan) + timedelta(days=1))
    issued_later(app, good.pan)
    with pytest.raises(SscardError) as refused:
        one_by_one(app, banking.purchase, pos, expired.pan, 100, PIN, idempotency_key="alone")
    assert refused.value.code == "card_expired"
    reqs = [_Request(Request(app, banking.purchase, pos, (pan, 100, PIN), {}, f"b{i}"))
            for i, pan in enumerate((good.pan, expired.pan, good.pan))]
    batching.batcher(app)._process(reqs)
    answers = [r.answer for r in reqs]
    assert isinstance(answers[1], SscardError) and answers[1].code == "card_expired"
    assert answers[0]["balance_fen"] == 9_900 and answers[2]["balance_fen"] == 9_800
    assert balance_of(app, expired.pan) == 10_000
    assert [n[0] for n in refused_records(app, expired.pan)] == ["bank.purchase", "bank.purchase"]
    assert invariants(app)["ok"]


@pytest.mark.keys_required
def test_over_the_terminal_api_an_expired_card_is_refused_409_card_expired(city, app, client, clock):
    card = activated(city, opening_fen=10_000)
    atm, pos = terminal_token(city, "ATM-GSB-1"), terminal_token(city, "POS-1")
    on_day(clock, expiry_of(app, card.pan))
    ok = client.post("/api/v1/terminal/withdrawal", json={"pan": card.pan, "amount_fen": 100, "pin": PIN},
                     headers=bearer(atm, "on-the-day"))
    assert ok.status_code == 200, ok.text
    on_day(clock, expiry_of(app, card.pan) + timedelta(days=1))
    for path, token, key in (("withdrawal", atm, "w"), ("payments", pos, "p"), ("payments/authorize", pos, "a")):
        r = client.post(f"/api/v1/terminal/{path}", json={"pan": card.pan, "amount_fen": 100, "pin": PIN},
                        headers=bearer(token, key, **{"Accept-Language": "en"}))
        assert r.status_code == 409 and r.json()["code"] == "card_expired", (path, r.text)
        assert "expired on 2036-01-05" in r.json()["message"] and "expiring" in r.json()["message"]
    bal = client.post("/api/v1/terminal/balance", json={"pan": card.pan, "pin": PIN}, headers=bearer(atm))
    assert bal.status_code == 200 and bal.json()["balance_fen"] == 9_900
    dep = client.post("/api/v1/terminal/deposit", json={"pan": card.pan, "amount_fen": 100}, headers=bearer(atm, "d"))
    assert dep.status_code == 200 and dep.json()["balance_fen"] == 10_000
    assert balance_of(app, card.pan) == 10_000
