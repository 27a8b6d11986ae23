"""12333's card status for a lost card (session 27's probe): a formally lost card whose replacement was already
applied for was still told "you may apply for a replacement" (right after the new card's line), and a lost
card's application password was said to be "still the initial one, please change it", which 12333 then
refuses for a lost card; the portal's card page says neither."""

from __future__ import annotations

from sscard.services import loss, replacement
from tests.hotline.conftest import QUERY_PASSWORD
from tests.hotline.phone import Phone, keys_for_citizen_id


def status(client, card, lang_key: str = "1") -> Phone:
    phone = Phone(client).press(lang_key).press("1")
    phone.press(keys_for_citizen_id(card.citizen_id)).press(QUERY_PASSWORD)
    return phone


def test_a_formally_lost_card_being_replaced_is_not_sent_to_apply_again(client, holder, app, city):
    applied = replacement.apply(app, city.actor("clerk"), holder.card_number, "lost", holder.citizen_id,
                                payment="cash", record_formal_loss=True)
    phone = status(client, holder)
    assert f"尾号{applied['card_number'][-4:]}的新卡申请已于" in phone.text
    assert f"尾号{holder.card_number[-4:]}的社会保障卡已正式挂失，补卡申请已受理" in phone.text
    assert "可持身份证到服务网点申请补卡" not in phone.text
    assert "初始密码" not in phone.text
    english = status(client, holder, "9")
    assert "its replacement has been applied for" in english.text and "you may apply" not in english.text


def test_a_formally_lost_card_without_a_replacement_is_told_where_to_apply(client, holder, app, city):
    loss.report_formal_loss(app, city.actor("clerk"), holder.card_number, holder.citizen_id)
    phone = status(client, holder)
    assert "已正式挂失，可持身份证到服务网点申请补卡" in phone.text
    assert "初始密码" not in phone.text


def test_a_temporarily_lost_cards_password_is_not_spoken_of_but_a_normal_cards_is(client, holder, app, city):
    assert "社保卡应用密码仍为初始密码" in status(client, holder).text
    loss.report_temporary_loss(app, city.cardholder(holder), holder.card_number)
    phone = status(client, holder)
    assert "已临时挂失" in phone.text and "初始密码" not in phone.text
