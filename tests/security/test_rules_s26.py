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
