"""Session 29: a hospital's self-pay by card on a card past its expiry date is refused (docs/RULES.md R10.14)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sscard.core.errors import SscardError
from sscard.core.roles import SYSTEM_ACTOR
from sscard.services import medical
from tests.ledger.helpers import balance_of, invariants
from tests.ledger.test_expired_card_s29 import expiry_of, on_day
from tests.medical import helpers as h


@pytest.fixture
def med(city):
    h.set_up(city)
    return city


def test_self_pay_by_card_is_taken_on_the_expiry_day_and_refused_the_day_after_but_cash_still_settles(med, app, clock):
    card = med.issued_card()
    h.activate(med, card, opening_fen=100_000)
    expiry = expiry_of(app, card.pan)
    term = h.terminal(med, "HOSP-H3-1")
    on_day(clock, expiry)
    h.insure(app, card.person_id, 0, month=f"{expiry:%Y-%m}")
    paid = h.pay(app, term, card.card_number, h.lines(uncovered=10_000), key="on-the-day", pay_with="bank", pin=h.PIN)
    assert paid["self_pay_method"] == "bank" and balance_of(app, card.pan) == 90_000
    on_day(clock, expiry + timedelta(days=1))
    with pytest.raises(SscardError) as refused:
        h.pay(app, term, card.card_number, h.lines(uncovered=10_000), key="day-after", pay_with="bank", pin=h.PIN)
    assert refused.value.code == "card_expired"
    assert balance_of(app, card.pan) == 90_000
    assert medical.person_settlements(app, SYSTEM_ACTOR, card.person_id)["total"] == 1  # nothing of it kept
    cash = h.pay(app, term, card.card_number, h.lines(uncovered=10_000), key="in-cash")
    assert cash["self_pay_method"] == "cash"
    assert invariants(app)["ok"]
