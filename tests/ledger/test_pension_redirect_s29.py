"""Session 29: a pension credited to an old card's PAN after its replacement took the account over (R10.11).

The replacement's activation moves the old account's balance to the new card's account and closes the old one
(R6.12); the pension payer's file still carrying the old PAN was refused `account_closed`, and the month never
reached the pensioner. It is now credited to the account behind the replacement card, once per account and
period, and the answer says where."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sscard.core.errors import SscardError
from sscard.core.identifiers import mask_pan
from sscard.core.roles import SYSTEM_ACTOR
from sscard.models.foundation import AuditRecord
from sscard.services import banking, cards, production, replacement

from .helpers import activated, balance_of, invariants

NEW_PIN = "258147"


def replaced(city, old, *, activate: bool = True) -> str:
    """A damaged card replaced at the window (cash fee), produced, collected and, if asked, activated: the new PAN."""
    app, clerk = city.app, city.actor("clerk")
    applied = replacement.apply(app, clerk, old.card_number, "damaged", old.citizen_id, payment="cash")
    batch = production.start_batch(app, clerk, "C01")
    production.complete_batch(app, clerk, batch["batch"])
    cards.collect_card(app, clerk, applied["card_number"], old.citizen_id)
    new_pan = city.pan_of(applied["card_number"])
    if activate:
        banking.activate(app, city.actor("teller"), new_pan, old.citizen_id, NEW_PIN, NEW_PIN, cardholder_in_person=True)
    return new_pan


def test_a_pension_to_the_old_cards_pan_lands_on_the_replacement_cards_account_once_per_period(city, app):
    old = activated(city, opening_fen=10_000)
    new_pan = replaced(city, old)
    assert banking.statement(app, city.actor("teller"), old.pan)["status"] == "closed"
    assert balance_of(app, new_pan) == 10_000  # the take-over (R6.12)
    out = banking.credit_pension(app, SYSTEM_ACTOR, old.pan, 150_000, "2026-02", idempotency_key="old-pan")
    assert out["redirected_to"] == mask_pan(new_pan) and out["pan"] == mask_pan(new_pan)
    assert out["amount_fen"] == 150_000 and out["balance_fen"] == 160_000
    assert balance_of(app, new_pan) == 160_000 and balance_of(app, old.pan) == 0
    with pytest.raises(SscardError) as again:  # the same month through the new PAN: the same account's
        banking.credit_pension(app, SYSTEM_ACTOR, new_pan, 150_000, "2026-02", idempotency_key="new-pan")
    assert again.value.code == "pension_already_credited"
    with pytest.raises(SscardError) as twice:  # and through the old PAN under another key
        banking.credit_pension(app, SYSTEM_ACTOR, old.pan, 150_000, "2026-02", idempotency_key="old-pan-2")
    assert twice.value.code == "pension_already_credited"
    assert balance_of(app, new_pan) == 160_000
    plain = banking.credit_pension(app, SYSTEM_ACTOR, new_pan, 150_000, "2026-03")  # the new PAN: no redirection
    assert "redirected_to" not in plain
    with app.db.session() as s:
        record = s.scalars(select(AuditRecord).where(AuditRecord.operation == "bank.credit_pension",
                                                     AuditRecord.result == "ok").order_by(AuditRecord.id)).all()[-2]
    assert record.object_id == new_pan and record.detail["redirected_from"] == mask_pan(old.pan)
    assert record.person_id == old.person_id
    # the new card is used with its own PIN: the money is the holder's
    assert banking.withdraw(app, city.actor("teller"), new_pan, 310_000, NEW_PIN)["balance_fen"] == 0
    assert invariants(app)["ok"]


def test_before_the_new_card_is_activated_the_old_pans_pension_goes_to_the_old_account_which_moves_over(city, app):
    old = activated(city)
    new_pan = replaced(city, old, activate=False)
    out = banking.credit_pension(app, SYSTEM_ACTOR, old.pan, 150_000, "2026-02")
    assert "redirected_to" not in out and balance_of(app, old.pan) == 150_000
    banking.activate(app, city.actor("teller"), new_pan, old.citizen_id, NEW_PIN, NEW_PIN, cardholder_in_person=True)
    assert balance_of(app, new_pan) == 150_000
    for pan in (new_pan, old.pan):  # the month was credited to the account the new one took over: once
        with pytest.raises(SscardError) as again:
            banking.credit_pension(app, SYSTEM_ACTOR, pan, 150_000, "2026-02", idempotency_key=f"after-{pan}")
        assert again.value.code == "pension_already_credited"
    assert balance_of(app, new_pan) == 150_000
    assert banking.credit_pension(app, SYSTEM_ACTOR, old.pan, 150_000, "2026-03")["redirected_to"] == mask_pan(new_pan)


def test_a_closed_account_whose_card_was_never_replaced_still_refuses_the_pension(city, app):
    card = activated(city, opening_fen=10_000)
    banking.close(app, city.actor("teller"), card.pan, card.citizen_id)
    with pytest.raises(SscardError) as refused:
        banking.credit_pension(app, SYSTEM_ACTOR, card.pan, 150_000, "2026-02")
    assert refused.value.code == "account_closed"
    assert invariants(app)["ok"]


def test_the_pension_file_credits_an_old_pan_to_the_new_account_and_lists_it_as_redirected(city, app, tmp_path):
    from sscard.cli.ledger import credit_pension_file

    old, other = activated(city), activated(city, name="李四")
    new_pan = replaced(city, old)
    listing = tmp_path / "2026-02.csv"
    listing.write_text(f"pan,amount\n{old.pan},1500\n{other.pan},1000\n", encoding="utf-8")
    out = credit_pension_file(app, listing, "2026-02")
    assert out["credited_fen"] == 250_000 and out["refused"] == []
    assert out["redirected"] == [{"line": 2, "to": mask_pan(new_pan)}]
    assert (balance_of(app, new_pan), balance_of(app, other.pan)) == (150_000, 100_000)
    # the payer's next file names the new PAN for the same month: refused, once per account and period
    listing.write_text(f"pan,amount\n{new_pan},1500\n", encoding="utf-8")
    again = credit_pension_file(app, listing, "2026-02")
    assert again["refused"] == [{"line": 2, "code": "pension_already_credited"}] and again["redirected"] == []
    assert balance_of(app, new_pan) == 150_000
