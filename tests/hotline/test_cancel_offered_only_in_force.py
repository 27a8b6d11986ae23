"""A hotline offers to cancel a loss only while the caller's card has one in force (the bank line's oral
loss, 12333's temporary loss); a caller who presses the key anyway hears that there is none."""

from __future__ import annotations

from sscard.services import audit, cards, loss
from tests.hotline.conftest import QUERY_PASSWORD
from tests.hotline.phone import Phone, keys_for_citizen_id
from tests.hotline.test_bank_calls import identify

OFFER_ORAL = ("解除口头挂失请按2", "To cancel an oral loss, press 2")
OFFER_TEMPORARY = ("解除临时挂失请按3", "To cancel a temporary loss, press 3")


def _bank_caller(client, card, lang_key: str = "1") -> Phone:
    """Identified on the bank line, back at its main menu."""
    phone = Phone(client, "bank:GSB").press(lang_key).press("1")
    identify(phone, card, pin=card.pin)
    return phone.press("*")


def test_the_bank_line_offers_no_cancellation_of_an_oral_loss_that_does_not_exist(client, active, app, city):
    unidentified = Phone(client, "bank:GSB").press("1")
    assert OFFER_ORAL[0] in unidentified.text  # whose account it is is not known yet

    phone = _bank_caller(client, active)
    assert "查询账户状态请按3" in phone.text and OFFER_ORAL[0] not in phone.text
    phone.press("2")  # pressed anyway
    assert "没有生效中的口头挂失" in phone.text and "确认请按1" not in phone.text
    assert "查询账户状态请按3" in phone.text  # back at the main menu
    english = _bank_caller(client, active, "9")
    assert OFFER_ORAL[1] not in english.text and "For the account's status, press 3" in english.text
    assert "no oral loss in force" in english.press("2").text
    refused = audit.read_audit(app, city.actor("bsup"), operation="bank_loss.cancel")["records"]
    assert refused == []  # nothing was tried, nothing was refused


def test_the_bank_line_offers_the_cancellation_while_an_oral_loss_is_in_force(client, active, app, city, clock):
    phone = _bank_caller(client, active).press("1").press("1")
    assert "口头挂失成功" in phone.text and OFFER_ORAL[0] in phone.text  # main again: now it is offered
    phone.press("2").press("1")
    assert "口头挂失已解除" in phone.text and OFFER_ORAL[0] not in phone.text
    assert cards.card_status(app, city.actor("teller"), active.card_number)["bank"]["status"] == "active"

    loss.report_oral_loss(app, city.cardholder(active), active.pan)
    clock.advance(days=5, minutes=1)  # lapsed: no loss in force, whatever the row still says
    lapsed = _bank_caller(client, active)
    assert OFFER_ORAL[0] not in lapsed.text and "没有生效中的口头挂失" in lapsed.press("2").text


def test_the_bank_line_sends_a_written_loss_to_an_outlet(client, active, app, city):
    loss.report_oral_loss(app, city.cardholder(active), active.pan)
    loss.report_written_loss(app, city.actor("teller"), active.pan, active.citizen_id)
    phone = _bank_caller(client, active)
    assert OFFER_ORAL[0] not in phone.text
    assert "书面挂失，电话不能解除" in phone.press("2").text


def test_12333_offers_to_cancel_a_temporary_loss_only_while_one_is_in_force(client, holder, app, city):
    assert OFFER_TEMPORARY[0] in Phone(client).press("1").text  # not identified yet
    phone = Phone(client).press("1").press("1")
    phone.press(keys_for_citizen_id(holder.citizen_id)).press(QUERY_PASSWORD)
    assert "身份验证成功" in phone.text and OFFER_TEMPORARY[0] not in phone.text
    assert "未挂失，无需解挂" in phone.press("3").text and OFFER_TEMPORARY[0] not in phone.text
    phone.press("2").press("1")
    assert "临时挂失成功" in phone.text and OFFER_TEMPORARY[0] in phone.text
    phone.press("3").press("1")
    assert "临时挂失已解除" in phone.text and OFFER_TEMPORARY[0] not in phone.text
