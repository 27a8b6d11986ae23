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


def test_star_star_on_any_input_prompt_says_it_again_and_is_neither_an_entry_nor_a_try(client, holder):
    """A caller who did not catch an input prompt (an ID, a password, a PIN) could not hear it again: `#` alone
    is silence, any other key an entry. `**` says it again on every input, announced in the prompt."""
    from tests.hotline.conftest import QUERY_PASSWORD
    from tests.hotline.phone import keys_for_citizen_id

    phone = Phone(client).press("1").press("1")
    asked = phone.text
    assert "身份证号码" in asked and "没听清请连按两次星号键" in asked
    assert phone.press("**").text == asked and not phone.ended
    phone.press(keys_for_citizen_id(holder.citizen_id))
    asked = phone.text
    assert "查询密码" in asked and "没听清请连按两次星号键" in asked
    for _ in range(4):  # more than the step's three tries: none is counted
        assert phone.press("**").text == asked and not phone.ended
    phone.press(QUERY_PASSWORD)
    assert "身份验证成功" in phone.text


def test_every_input_prompt_of_both_lines_says_how_to_hear_it_again_in_both_languages(app):
    from sscard.hotline.engine import Engine, load_menu

    for name, info in (("12333", {"line": "12333", "bank": None}),
                       ("bank", {"line": "bank:GSB", "bank": {"code": "GSB", "name": "工商银行", "name_en": "ICBC",
                                                              "hotline": "95588"}})):
        menu = load_menu(name)
        engine = Engine(app, menu, info)
        inputs = [n for n in menu.nodes.values() if n.type == "input"]
        assert inputs, name
        for node in inputs:
            for lang, words in (("zh", "连按两次星号键"), ("en", "press star twice")):
                state = {"call_sid": "CAtest", "lang": lang, "slots": {}, "node": node.name}
                reply = engine._prompt(state, node, [])
                assert reply.prompt is not None and words in reply.prompt, (name, node.name, lang)
