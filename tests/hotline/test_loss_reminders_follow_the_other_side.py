"""Every loss confirmation says how the card's other side stands (RULES §5), as it stands: session 27's portal
probe heard 12333 send the holder of a bank account not yet activated to "call the bank to report the bank
side", whose line then answered that no oral loss can be recorded; and the bank line send a caller whose card
was already reported lost, or cancelled, to 12333 to report it."""

from __future__ import annotations

from sscard.services import cards, loss
from tests.hotline.conftest import QUERY_PASSWORD
from tests.hotline.phone import Phone, keys_for_citizen_id


def temporary_loss_by_12333(client, card) -> Phone:
    phone = Phone(client).press("1").press("2")
    phone.press(keys_for_citizen_id(card.citizen_id)).press(QUERY_PASSWORD)
    assert "确认挂失请按1" in phone.text
    return phone.press("1")


def oral_loss_by_the_bank_line(client, card) -> Phone:
    phone = Phone(client, "bank:GSB").press("1").press("1")
    phone.press(keys_for_citizen_id(card.citizen_id)).press("1").press(card.pin)
    assert "确认挂失请按1" in phone.text
    return phone.press("1")


def test_12333_does_not_send_the_holder_of_a_bank_account_not_yet_activated_to_report_it(client, holder, app,
                                                                                          city):
    phone = temporary_loss_by_12333(client, holder)
    assert "临时挂失成功" in phone.text
    assert "银行账户尚未启用" in phone.text and "无需挂失" in phone.text
    assert "办理银行账户挂失" not in phone.text  # the bank would refuse: nothing to report
    assert cards.card_status(app, city.actor("teller"), holder.card_number)["bank"]["status"] == "not_activated"


def test_12333_tells_an_account_already_reported_lost_orally_to_make_it_written(client, active, app, city):
    city.own_query_password(active, QUERY_PASSWORD)
    oral_loss_by_the_bank_line(client, active)
    phone = temporary_loss_by_12333(client, active)
    assert "临时挂失成功" in phone.text
    assert "银行账户已口头挂失" in phone.text and "书面挂失" in phone.text
    assert "办理银行账户挂失" not in phone.text


def test_12333_still_sends_an_active_accounts_holder_to_the_bank(client, active, city):
    city.own_query_password(active, QUERY_PASSWORD)
    phone = temporary_loss_by_12333(client, active)
    assert "请另行致电工商银行客服热线95588" in phone.text


def test_the_bank_line_does_not_send_a_caller_whose_card_is_already_lost_to_12333(client, active, app, city):
    loss.report_temporary_loss(app, city.cardholder(active), active.card_number)
    phone = oral_loss_by_the_bank_line(client, active)
    assert "口头挂失成功" in phone.text
    assert "社保功能已临时挂失" in phone.text and "正式挂失" in phone.text
    assert "请另行致电12333" not in phone.text


def test_the_bank_line_tells_the_old_card_of_a_replacement_as_cancelled(client, active, app, city):
    """The old card is cancelled at collection; its account keeps its state (and its money) until the new
    card's is activated (RULES §6): lost then, it is the account that needs the report, not the card."""
    from sscard.services import production, replacement

    clerk = city.actor("clerk")
    new = replacement.apply(app, clerk, active.card_number, "damaged", active.citizen_id, payment="cash",
                            collect_center_code="C01")
    batch = production.start_batch(app, clerk, "C01")
    production.complete_batch(app, clerk, batch["batch"])
    cards.collect_card(app, clerk, new["card_number"], active.citizen_id)
    assert cards.card_status(app, clerk, active.card_number)["ss_status"] == "cancelled"
    phone = oral_loss_by_the_bank_line(client, active)
    assert "口头挂失成功" in phone.text
    assert "社保功能已注销" in phone.text and "请另行致电12333" not in phone.text


def test_a_window_formal_loss_on_an_unactivated_card_says_the_account_needs_no_report(app, city):
    card = city.issued_card("钱十")
    out = loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)
    assert "尚未启用" in out["reminder"]["zh"] and "not activated" in out["reminder"]["en"]
    assert "办理银行账户挂失" not in out["reminder"]["zh"] and "95588" in out["reminder"]["zh"]  # (for questions)

