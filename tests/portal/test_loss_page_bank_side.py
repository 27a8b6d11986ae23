"""The loss page's bank panel tells the account as it stands (RULES §5): session 27's probe found it told the
holder of an account not yet activated (or closed) to call the bank and report it lost, which the bank's line
refuses, and an oral loss "cancel at an outlet" only, where RULES lets the bank's hotline cancel it too."""

from __future__ import annotations

import pytest

from sscard.core.passwords import weak_pin_reason
from sscard.services import banking, loss
from tests.portal.helpers import login_changed


def pin_for(card) -> str:
    return next(p for p in ("739184", "582947", "691358") if weak_pin_reason(p, card.citizen_id, card.birth) is None)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_not_activated_account_is_not_sent_to_be_reported_lost(client, city, lang):
    card = city.issued_card("冯十一")
    login_changed(client, card)
    page = client.get(f"/portal/loss?lang={lang}").text
    if lang == "zh":
        assert "银行账户尚未启用" in page and "无需挂失" in page
        assert "银行账户请向工商银行挂失" not in page
    else:
        assert "not activated yet" in page and "needs no loss report" in page
        assert "Report the bank account lost to" not in page


def test_an_oral_loss_is_said_to_be_cancellable_on_the_banks_hotline(client, city, app):
    card = city.issued_card("陈十二", phone="13700001212")
    pin = pin_for(card)
    teller = city.actor("teller")
    banking.activate(app, teller, card.pan, card.citizen_id, pin, pin, cardholder_in_person=True)
    loss.report_oral_loss(app, teller, card.pan)
    login_changed(client, card)
    for path in ("/portal/loss", "/portal/card"):
        page = client.get(path).text
        assert "口头挂失可致电工商银行客服热线凭银行卡密码解除" in page, path
    assert "can be cancelled on the ICBC hotline" in client.get("/portal/loss?lang=en").text


def test_an_active_account_is_still_sent_to_its_bank(client, city, app):
    card = city.issued_card("褚十三")
    pin = pin_for(card)
    banking.activate(app, city.actor("teller"), card.pan, card.citizen_id, pin, pin, cardholder_in_person=True)
    login_changed(client, card)
    assert "银行账户请向工商银行挂失" in client.get("/portal/loss").text
