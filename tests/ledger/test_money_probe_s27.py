"""Session 27's money probe: money is never created or lost, whichever operation touches an account."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sscard.core.errors import SscardError
from sscard.core.roles import SYSTEM_ACTOR
from sscard.models.foundation import AuditRecord, BankAccount, Card
from sscard.services import banking, enrolment, ledger, reversal


def _record_of(app, operation: str) -> int:
    with app.db.session() as s:
        return s.scalar(select(AuditRecord.id).where(AuditRecord.operation == operation, AuditRecord.result == "ok")
                        .order_by(AuditRecord.id.desc()).limit(1))


def _account_of(app, card_number: str) -> BankAccount:
    with app.db.session() as s:
        return s.scalar(select(BankAccount).join(Card, Card.id == BankAccount.card_id)
                        .where(Card.card_number == card_number))


@pytest.mark.parametrize("how", ["pension", "counter_deposit"])
def test_a_first_card_application_is_not_withdrawn_once_money_reached_its_account(city, app, how):
    """A first card's account takes credits before activation (R3.5): a pension, a deposit at the counter.
    Withdrawing the application in error closed that account with the money in it: nobody could pay it out
    (a closed account takes no close, no withdrawal), so the money was lost to its owner."""
    pid, _ = city.new_person("王五")
    applied = enrolment.apply_first_card(app, city.actor("clerk"), pid, "GSB", "C01")
    pan = city.pan_of(applied["card_number"])
    if how == "pension":
        banking.credit_pension(app, SYSTEM_ACTOR, pan, 12_345, period="2026-12")
    else:
        banking.deposit(app, city.actor("teller"), pan, 12_345)
    with pytest.raises(SscardError) as err:
        reversal.reverse(app, city.actor("csup"), _record_of(app, "card.apply_first"), "应选建设银行")
    assert err.value.code == "not_reversible"
    listed = reversal.candidates(app, city.actor("csup"))["actions"]
    assert [a["why_not"] for a in listed if a["operation"] == "card.apply_first"] == ["money"]
    account = _account_of(app, applied["card_number"])
    assert account.status == "not_activated"
    with app.db.session() as s:
        assert ledger.balance(s, account.ledger_account_id).posted == 12_345
        assert s.scalar(select(Card.ss_status).where(Card.card_number == applied["card_number"])) == "applied"
        assert ledger.check_invariants(s)["ok"]


def test_the_ledger_check_names_a_closed_account_that_still_holds_money(city, app):
    """`sscard account check` (ledger.check_invariants) now says when a closed bank account still holds money:
    its sums add up, yet nobody can pay it out (how session 27's first finding went unseen)."""
    pid, _ = city.new_person("王五")
    applied = enrolment.apply_first_card(app, city.actor("clerk"), pid, "GSB", "C01")
    pan = city.pan_of(applied["card_number"])
    banking.credit_pension(app, SYSTEM_ACTOR, pan, 500, period="2026-12")
    with app.db.session() as s:
        assert ledger.check_invariants(s)["ok"]
    with app.db.session() as s:  # as the reversal did before its fix: the account closed, the money left in it
        s.get(BankAccount, _account_of(app, applied["card_number"]).id).status = "closed"
    with app.db.session() as s:
        report = ledger.check_invariants(s)
    assert not report["ok"]
    assert any("closed bank account" in p and "500 fen" in p for p in report["problems"])



def test_a_first_card_whose_account_only_met_a_refused_transfer_is_still_withdrawn(city, app):
    """A refused transfer to the new card's PAN (the payer short of money) opens its ledger account, empty: the
    application is still withdrawn, and the empty ledger account is closed with the bank account."""
    from .helpers import PIN, activated

    payer = activated(city, name="李四", opening_fen=100)
    pid, _ = city.new_person("王五")
    applied = enrolment.apply_first_card(app, city.actor("clerk"), pid, "GSB", "C01")
    pan = city.pan_of(applied["card_number"])
    with pytest.raises(SscardError) as refused:
        banking.transfer(app, city.actor("teller"), payer.pan, pan, 5_000, PIN)
    assert refused.value.code == "insufficient_funds"
    reversal.reverse(app, city.actor("csup"), _record_of(app, "card.apply_first"), "应选建设银行")
    account = _account_of(app, applied["card_number"])
    assert account.status == "closed"
    with app.db.session() as s:
        if account.ledger_account_id is not None:
            from sscard.models.ledger import LedgerAccount

            assert s.get(LedgerAccount, account.ledger_account_id).closed
        assert ledger.check_invariants(s)["ok"]
