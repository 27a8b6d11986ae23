"""12333 for issue 17: after identification a wrong SS password says how many tries are left (Chinese and
English) while the identification step itself keeps the plain answer; an English caller hears centers'
English names."""

from __future__ import annotations

from tests.hotline.conftest import QUERY_PASSWORD
from tests.hotline.phone import Phone, keys_for_citizen_id


def _to_old_password(client, holder, lang_key="1") -> Phone:
    phone = Phone(client).press(lang_key).press("4")
    return phone.press(keys_for_citizen_id(holder.citizen_id)).press(QUERY_PASSWORD)


def test_a_wrong_old_ss_password_on_the_phone_says_the_tries_left_before_the_lock(client, holder):
    phone = _to_old_password(client, holder)
    phone.press("654321")
    assert "密码错误，还可尝试2次" in phone.text and "原密码" in phone.text
    phone.press("654320")
    assert "还可尝试1次" in phone.text
    phone.press("654322")
    assert "已锁定" in phone.text and "还可尝试" not in phone.text


def test_in_english_the_caller_hears_the_tries_left_too(client, holder):
    phone = _to_old_password(client, holder, "9")
    phone.press("654321")
    assert "Wrong password, 2 tries left" in phone.text
    phone.press("654320")
    assert "1 try left" in phone.text


def test_a_wrong_query_password_at_identification_gives_no_count(client, holder):
    phone = Phone(client).press("1").press("4").press(keys_for_citizen_id(holder.citizen_id)).press("000000")
    assert "密码错误" in phone.text and "还可尝试" not in phone.text


def test_an_english_caller_hears_the_collection_center_by_its_english_name(client, holder, app, city):
    from sqlalchemy import update

    from sscard.models.foundation import ServiceCenter
    from sscard.services import production, replacement

    with app.db.session() as s:
        s.execute(update(ServiceCenter).where(ServiceCenter.code == "C01").values(name_en="Xihu Card Service Center"))
        s.commit()
    clerk = city.actor("clerk")
    replacement.apply(app, clerk, holder.card_number, "damaged", holder.citizen_id, payment="cash")
    batch = production.start_batch(app, clerk, "C01")
    production.complete_batch(app, clerk, batch["batch"])
    phone = Phone(client).press("9").press("1").press(keys_for_citizen_id(holder.citizen_id)).press(QUERY_PASSWORD)
    assert "collect it at Xihu Card Service Center" in phone.text and "西湖区" not in phone.text
