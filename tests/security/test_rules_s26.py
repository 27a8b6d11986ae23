"""Session 26's rules work: refusals in words that fit the operation, and the replacement's account rules."""

from __future__ import annotations

import pytest

from sscard.core.roles import Channel
from sscard.services import banking, loss
from tests.hotline.conftest import pin_for
from tests.hotline.phone import Phone, keys_for_citizen_id

pytestmark = pytest.mark.keys_required


def _bearer(city, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {city.token(username)}"}


def test_a_pin_change_on_a_lost_account_is_refused_as_a_pin_change_not_as_spending(city, app, client):
    """The PIN change on a lost account answered `account_lost`, "账户已挂失，不能支出" (debits are refused): the
    caller changing a PIN heard about spending. It has a code and words of its own on every channel."""
    card = city.issued_card("周七", phone="13912345678")
    pin = pin_for(card)
    new = pin_for(card, avoid=pin)
    banking.activate(app, city.actor("teller"), card.pan, card.citizen_id, pin, pin, cardholder_in_person=True)
    loss.report_oral_loss(app, city.cardholder(card, Channel.HOTLINE_BANK), card.pan)
    for lang, words in (("zh", "不能修改密码"), ("en", "its PIN cannot be changed")):
        refused = client.post(f"/api/v1/bank-accounts/{card.pan}/pin/change",
                              json={"old": pin, "new": new, "new_again": new},
                              headers={**_bearer(city, "teller"), "Idempotency-Key": f"pin-{lang}",
                                       "Accept-Language": lang})
        assert refused.status_code == 409 and refused.json()["code"] == "account_lost_pin_change", refused.text
        assert words in refused.json()["message"] and "不能支出" not in refused.json()["message"]
    phone = Phone(client, "bank:GSB").press("1").press("5")
    phone.press(keys_for_citizen_id(card.citizen_id)).press("2").press(card.phone)
    phone.press(pin)
    assert "不能修改密码" in phone.text and "不能支出" not in phone.text
    loss.cancel_bank_loss(app, city.actor("teller"), card.pan, card.citizen_id)
    banking.freeze(app, city.actor("bsup"), card.pan, "court order")
    refused = client.post(f"/api/v1/bank-accounts/{card.pan}/pin/change",
                          json={"old": pin, "new": new, "new_again": new},
                          headers={**_bearer(city, "teller"), "Idempotency-Key": "pin-frozen"})
    assert refused.json()["code"] == "account_frozen_pin_change" and "不能修改密码" in refused.json()["message"]


def _close_code(app, city, pan: str, citizen_id: str) -> str:
    from sscard.core.errors import SscardError

    with pytest.raises(SscardError) as refused:
        banking.close(app, city.actor("teller"), pan, citizen_id)
    return refused.value.code


def _status(app, pan: str) -> str:
    from sqlalchemy import select

    from sscard.models.foundation import BankAccount

    with app.db.session() as s:
        return s.scalar(select(BankAccount.status).where(BankAccount.pan == pan))


def test_a_replacements_not_activated_account_is_not_closed_while_the_old_account_is_open(city, app):
    """RULES §6: the new card's activation moves the old account's balance over and closes it. Closing the new
    card's account first left a card that could never be activated and an old account never taken over."""
    from sscard.services import cards
    from tests.console.helpers import ready_replacement
    from tests.ledger.helpers import PIN, activated

    card = activated(city, opening_fen=10_000)
    applied = ready_replacement(city, card)
    cards.collect_card(app, city.actor("clerk"), applied["card_number"], card.citizen_id)
    new_pan = city.pan_of(applied["card_number"])
    assert new_pan != card.pan and _status(app, new_pan) == "not_activated"
    assert _close_code(app, city, new_pan, card.citizen_id) == "close_replacement_not_activated"
    assert _status(app, new_pan) == "not_activated" and _status(app, card.pan) == "active"
    out = banking.activate(app, city.actor("teller"), new_pan, card.citizen_id, PIN, PIN, cardholder_in_person=True)
    assert out["moved_from_old_account"]["amount_fen"] == 10_000  # the new card still takes the old one over
    assert banking.close(app, city.actor("teller"), new_pan, card.citizen_id)["paid_out_fen"] == 10_000


def test_a_replacements_account_is_closed_once_the_old_account_is(city, app):
    from sscard.services import cards
    from tests.console.helpers import ready_replacement
    from tests.ledger.helpers import activated

    card = activated(city, opening_fen=10_000)
    applied = ready_replacement(city, card)
    cards.collect_card(app, city.actor("clerk"), applied["card_number"], card.citizen_id)
    new_pan = city.pan_of(applied["card_number"])
    assert banking.close(app, city.actor("teller"), card.pan, card.citizen_id)["paid_out_fen"] == 10_000
    assert banking.close(app, city.actor("teller"), new_pan, card.citizen_id)["status"] == "closed"


def test_with_a_kept_pan_the_account_a_card_on_its_way_will_carry_is_not_closed(make_app):
    """bank.keep_pan_on_replacement: the new card has no account of its own; the old one moves to it at
    collection. Closed meanwhile, the new card was handed over with a closed account."""
    from sscard.services import cards
    from tests.console.helpers import ready_replacement
    from tests.ledger.helpers import activated
    from tests.support import City

    app = make_app(bank={"keep_pan_on_replacement": True})
    city = City(app)
    card = activated(city, opening_fen=10_000)
    applied = ready_replacement(city, card)
    assert _close_code(app, city, card.pan, card.citizen_id) == "close_account_moving_to_new_card"
    assert _status(app, card.pan) == "active"
    cards.collect_card(app, city.actor("clerk"), applied["card_number"], card.citizen_id)
    assert city.pan_of(applied["card_number"]) == card.pan and _status(app, card.pan) == "active"
    assert banking.close(app, city.actor("teller"), card.pan, card.citizen_id)["paid_out_fen"] == 10_000
