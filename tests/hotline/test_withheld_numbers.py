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
