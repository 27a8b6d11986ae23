"""Every menu can be heard again: `#` on a menu node repeats its prompt (a hurried caller who did not catch
it pressed a key the menu did not offer, was told 输入有误, and after three such tries heard goodbye)."""

from __future__ import annotations

import pytest

from sscard.hotline.engine import MenuError, parse_menu
from tests.hotline.phone import Phone
from tests.hotline.test_engine import MINIMAL


def test_hash_on_any_menu_says_it_again_and_is_never_a_wrong_key(client, city):
    for line, chosen in (("12333", "社会保障卡服务"), ("bank:GSB", "社保卡金融账户服务")):
        phone = Phone(client, line=line)
        welcome = phone.text
        phone.press("#")
        assert phone.text == welcome and not phone.ended
        phone.press("1")
        assert chosen in phone.text and "井号键" in phone.text
        menu = phone.text
        for _ in range(4):  # more than max_invalid (3) wrong keys would have ended the call
            phone.press("#")
            assert phone.text == menu and "有误" not in phone.text and not phone.ended
        phone.press("7")  # a wrong key still counts, and is said to be wrong
        assert "输入有误" in phone.text and not phone.ended


def test_in_english_the_main_menu_says_how_to_hear_it_again(client):
    phone = Phone(client).press("9")
    assert "To hear this again, press hash." in phone.text
    before = phone.text
    assert phone.press("#").text == before


def test_a_menu_option_on_the_back_agent_or_repeat_key_is_refused():
    for key in ("#", "*", "0"):
        with pytest.raises(MenuError, match="back, agent or repeat key"):
            parse_menu("broken", (MINIMAL % "main").replace('options = { "1"', f'options = {{ "{key}"'))
