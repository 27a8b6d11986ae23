"""Session 29: over ISO 8583, a card past its expiry date is answered 54, expired card (docs/RULES.md R10.14)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from sscard.iso8583.client import balances
from sscard.models.foundation import AuditRecord
from tests.ledger.helpers import PIN, activated, balance_of, invariants
from tests.ledger.test_expired_card_s29 import expiry_of, on_day

pytestmark = pytest.mark.keys_required


def test_a_withdrawal_and_a_purchase_with_an_expired_card_are_answered_54_and_move_nothing(city, app, atm, pos, clock):
    card = activated(city, opening_fen=50_000)
    expiry = expiry_of(app, card.pan)
    on_day(clock, expiry)  # the expiry day itself: taken
    assert atm.send(atm.message("withdraw", card.pan, 1_000, PIN))["39"] == "00"
    assert pos.send(pos.message("purchase", card.pan, 1_000, PIN))["39"] == "00"
    on_day(clock, expiry + timedelta(days=1))
    assert atm.send(atm.message("withdraw", card.pan, 1_000, PIN))["39"] == "54"
    assert pos.send(pos.message("purchase", card.pan, 1_000, PIN))["39"] == "54"
    assert balance_of(app, card.pan) == 48_000
    with app.db.session() as s:
        refused = [(r.operation, r.object_id, r.actor_id) for r in s.scalars(
            select(AuditRecord).where(AuditRecord.result == "card_expired").order_by(AuditRecord.id))]
    assert refused == [("bank.withdraw", card.pan, "ATM00001"), ("bank.purchase", card.pan, "POS-1")]
    # a deposit (a credit) and a balance inquiry are still taken
    deposit = atm.send(atm.message("deposit", card.pan, 2_000))
    assert deposit["39"] == "00" and balances(deposit)["01"] == 50_000
    assert atm.send(atm.message("balance", card.pan, None, PIN))["39"] == "00"
    assert invariants(app)["ok"]
