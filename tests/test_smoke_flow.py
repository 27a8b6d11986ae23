"""The first-issue path end to end through the services, on both databases."""

from sscard.core.roles import Channel
from sscard.services import cards, loss


def test_first_issue_path_gives_a_normal_card_with_an_activation_window(city, app):
    card = city.issued_card()
    status = cards.card_status(app, city.actor("clerk"), card.card_number)
    assert status["ss_status"] == "normal"
    assert status["bank"]["status"] == "not_activated"
    assert status["bank"]["activation_days_left"] == 60
    assert status["ss_password"]["initial"] is True


def test_temporary_loss_by_phone_then_formal_at_window(city, app):
    card = city.issued_card()
    holder = city.cardholder(card, Channel.HOTLINE_12333)
    out = loss.report_temporary_loss(app, holder, card.card_number)
    assert out["ss_status"] == "temporary_loss"
    assert "尚未启用" in out["reminder"]["zh"]  # the bank side: separate, and not activated, so nothing to report
    out = loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)
    assert out["ss_status"] == "formal_loss"
