"""12333 reads out replacement progress; the window console shows the callers waiting for an agent."""

from __future__ import annotations

import re

from sscard.services import hotline, production, replacement
from tests.hotline.conftest import QUERY_PASSWORD
from tests.hotline.phone import Phone, keys_for_citizen_id
from tests.support import STAFF_PASSWORD


def status_call(client, card) -> str:
    phone = Phone(client).press("1").press("1")
    phone.press(keys_for_citizen_id(card.citizen_id)).press(QUERY_PASSWORD)
    return phone.text


def test_replacement_progress_after_a_phone_loss(client, holder, app, city):
    phone = Phone(client).press("1").press("2")
    phone.press(keys_for_citizen_id(holder.citizen_id)).press(QUERY_PASSWORD).press("1")
    assert "临时挂失成功" in phone.text

    clerk = city.actor("clerk")
    replacement.apply(app, clerk, holder.card_number, "lost", holder.citizen_id, payment="cash",
                      record_formal_loss=True)
    newest = hotline.my_cards(app, city.cardholder(holder))["cards"][0]
    assert newest["card_number"] != holder.card_number and newest["ss_status"] == "applied"
    said = status_call(client, holder)
    assert f"尾号{holder.card_number[-4:]}的社会保障卡已正式挂失" in said
    assert re.search(f"尾号{newest['card_number'][-4:]}的新卡申请已于.*受理，正在等待制作", said)

    batch = production.start_batch(app, clerk, "C01")
    assert "正在制作中" in status_call(client, holder)
    production.complete_batch(app, clerk, batch["batch"])
    said = status_call(client, holder)
    assert "已制作完成" in said and "西湖区社保卡服务中心" in said

    phone = Phone(client).press("1").press("3")
    phone.press(keys_for_citizen_id(holder.citizen_id)).press(QUERY_PASSWORD)
    assert "正式挂失" in phone.text and "窗口" in phone.text


def test_window_console_lists_the_12333_callers_waiting(client, holder, city):
    phone = Phone(client).press("1").press("1")
    phone.press(keys_for_citizen_id(holder.citizen_id)).press(QUERY_PASSWORD).press("0")
    assert phone.ended
    page = client.get("/console/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
    login = client.post("/console/login", data={"login_token": token, "username": "clerk",
                                                "password": STAFF_PASSWORD}, follow_redirects=False)
    assert login.status_code == 303
    home = client.get("/console")
    assert home.status_code == 200
    assert "12333 回拨队列" in home.text and "李*" in home.text and holder.citizen_id not in home.text
