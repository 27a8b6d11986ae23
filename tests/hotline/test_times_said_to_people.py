"""Every time said to a person is in their language's words and in Beijing time (core.clock.local_text):
the hotlines' texts, refusals' messages and the pages that show them; a program's field stays ISO 8601."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest

from sscard.core.clock import local_text
from sscard.core.errors import SscardError
from sscard.services import hotline
from sscard.services import passwords as pw
from tests.hotline.conftest import QUERY_PASSWORD
from tests.hotline.phone import Phone, keys_for_citizen_id

ISO = re.compile(r"\d{4}-\d{2}-\d{2}")  # a machine's date (2026-12-06, 2026-12-06T21:30:00+00:00)


def test_local_text_says_a_time_in_each_language_in_beijing_time():
    at = datetime(2026, 12, 6, 13, 30, tzinfo=UTC)
    assert local_text(at, "zh") == "2026年12月6日21:30"
    assert local_text(at.isoformat(), "en") == "6 December 2026, 21:30 (Beijing time)"
    assert local_text("2026-12-06T13:30:00", "zh") == "2026年12月6日21:30"  # naive: UTC
    assert local_text(at, "zh", day=True) == "2026年12月6日"
    assert local_text(date(2026, 3, 1), "en") == local_text("2026-03-01", "en") == "1 March 2026"
    assert local_text(None, "zh") == "" and local_text("", "en") == ""


def _lock_query_password(app, holder) -> None:
    for _ in range(app.policy.query_password.max_failures):
        with pytest.raises(SscardError):
            pw.login_with_query_password(app, hotline.GATEWAY_12333, holder.citizen_id, "11111111")


@pytest.mark.parametrize(("lang_key", "said"), [("1", "密码已锁定至2026年1月5日10:30"),
                                                 ("9", "The password is locked until 5 January 2026, 10:30 (Beijing time)")])
def test_a_locked_query_password_is_said_with_its_end_in_the_callers_words(client, app, holder, lang_key, said):
    _lock_query_password(app, holder)  # 02:00 UTC + 30 minutes: 10:30 in Beijing
    phone = Phone(client).press(lang_key).press("1")
    phone.press(keys_for_citizen_id(holder.citizen_id)).press(QUERY_PASSWORD)
    assert said in phone.text
    assert not ISO.search(phone.all_text), phone.all_text


def test_a_cards_status_and_a_losss_lapse_are_said_in_words(client, app, city, holder):
    phone = Phone(client).press("1").press("2")
    phone.press(keys_for_citizen_id(holder.citizen_id)).press(QUERY_PASSWORD).press("1")
    assert "临时挂失成功" in phone.text and "将于2026年1月12日10:00自动解除" in phone.text
    phone.press("1")
    assert "将于2026年1月12日10:00自动解除" in phone.text
    english = Phone(client).press("9").press("1")
    english.press(keys_for_citizen_id(holder.citizen_id)).press(QUERY_PASSWORD)
    assert "lapses on 12 January 2026, 10:00 (Beijing time)" in english.text
    assert not ISO.search(phone.all_text) and not ISO.search(english.all_text)


def test_the_bank_lines_oral_loss_lapse_is_said_in_words(client, app, active):
    phone = Phone(client, "bank:GSB").press("9").press("1")
    phone.press(keys_for_citizen_id(active.citizen_id)).press("1").press(active.pin).press("1")
    assert "lapses on 10 January 2026, 10:00 (Beijing time)" in phone.text
    assert not ISO.search(phone.all_text)  # the service answers lapses_at (ISO); the line says it in words


def test_a_refusal_says_a_day_in_words_and_a_program_still_reads_iso(client, app, city, holder):
    _lock_query_password(app, holder)
    with pytest.raises(SscardError) as locked:
        pw.login_with_query_password(app, hotline.GATEWAY_12333, holder.citizen_id, QUERY_PASSWORD)
    body = locked.value.to_dict("zh")
    assert body["message"] == "密码已锁定至2026年1月5日10:30"
    assert datetime.fromisoformat(body["locked_until"]) == datetime(2026, 1, 5, 2, 30, tzinfo=UTC)
    assert not ISO.search(locked.value.message("en"))
