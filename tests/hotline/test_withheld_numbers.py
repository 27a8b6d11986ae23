"""Twilio gives a caller whose number is not shown a number of its own: +266696687 (ANONYMOUS on a keypad),
+86282452253 (UNAVAILABLE, which looks Chinese), +8656696, +7378742833 (RESTRICTED), +2562533 (BLOCKED).
They were taken for real numbers: queued for an agent's call back that reaches nobody (and one request for
every withheld caller at once), and one login-throttle client for every withheld caller, whose failures
shut out the others."""

from __future__ import annotations

from sscard.services import hotline
from tests.hotline.conftest import QUERY_PASSWORD
from tests.hotline.phone import Phone, keys_for_citizen_id

TWILIO_WITHHELD = ("+266696687", "+86282452253", "+8656696", "+7378742833", "+2562533")


def test_twilios_numbers_for_a_withheld_caller_are_no_number_to_call_back(client, app, city):
    assert [hotline.callback_number_of(n) for n in TWILIO_WITHHELD] == [""] * len(TWILIO_WITHHELD)
    assert hotline.callback_number_of("266696687") == "" and hotline.callback_number_of(" +8613812345678 ")
    phone = Phone(client, caller="+86282452253").press("1").press("0")
    assert not phone.ended and "没有显示号码" in phone.text
    assert hotline.agent_queue(app, city.actor("clerk"))["requests"] == []


def test_withheld_callers_do_not_share_one_login_budget(make_app, city, holder):
    from fastapi.testclient import TestClient

    from sscard.composition import create_app

    app = make_app(login={"client_failures_per_minute": 3})
    with TestClient(create_app(app)) as client:
        guesser = Phone(client, caller="+266696687").press("1").press("1")
        guesser.press(keys_for_citizen_id(holder.citizen_id))
        guesser.press("11112222").press("11112223").press("11112224")  # three wrong: the call ends
        assert guesser.ended
        owner = Phone(client, caller="+266696687").press("1").press("1")  # another withheld caller
        owner.press(keys_for_citizen_id(holder.citizen_id)).press(QUERY_PASSWORD)
        assert "身份验证成功" in owner.text and "失败次数过多" not in owner.text


def test_one_callers_number_spelt_three_ways_is_one_number():
    """Session 24's probe: the throttle keyed on `From` as the network spelt it, so "13800138000" and
    "+86 138 0013 8000" were other callers than "+8613800138000"."""
    spellings = ("+8613800138000", "13800138000", "+86 138 0013 8000", "008613800138000", "138-0013-8000")
    assert {hotline.callback_number_of(n) for n in spellings} == {"+8613800138000"}
    assert hotline.callback_number_of("01062345678") == "+861062345678"  # a Beijing landline, trunk 0 dropped
    assert [hotline.callback_number_of(n) for n in ("terminal", "anonymous", "", "+", "12")] == [""] * 5


def test_failures_from_one_number_count_together_however_the_network_spells_it(make_app, city, holder):
    from fastapi.testclient import TestClient

    from sscard.composition import create_app

    app = make_app(login={"client_failures_per_minute": 3})
    with TestClient(create_app(app)) as client:
        for spelling, wrong in (("+8613800138000", "11112222"), ("13800138000", "11112223"),
                                ("+86 138 0013 8000", "11112224")):
            guesser = Phone(client, caller=spelling).press("1").press("1")
            guesser.press(keys_for_citizen_id(holder.citizen_id)).press(wrong)
        again = Phone(client, caller="008613800138000").press("1").press("1")
        again.press(keys_for_citizen_id(holder.citizen_id)).press(QUERY_PASSWORD)
        assert "失败次数过多" in again.text and "身份验证成功" not in again.text
        other = Phone(client, caller="+8613900000000").press("1").press("1")  # another caller is not held
        other.press(keys_for_citizen_id(holder.citizen_id)).press(QUERY_PASSWORD)
        assert "身份验证成功" in other.text
