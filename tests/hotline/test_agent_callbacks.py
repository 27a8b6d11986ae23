"""An agent calls the caller back: only a number that shows is queued, and a number waits once on a line."""

from __future__ import annotations

from io import StringIO

import pytest
from rich.console import Console

from sscard.cli.phone import run_call
from sscard.core.errors import SscardError
from sscard.services import hotline
from tests.hotline.phone import Phone

NUMBER = "+8613812345678"


def _queue(app, city, line: str) -> list[dict]:
    return hotline.agent_queue(app, city.actor("clerk" if line == "12333" else "teller"))["requests"]


@pytest.mark.parametrize("line", ["12333", "bank:GSB"])
@pytest.mark.parametrize("withheld", ["", "anonymous", "restricted"])
def test_a_withheld_number_is_not_queued_nor_promised_a_call_back(client, app, city, line, withheld):
    zh = Phone(client, line, caller=withheld).press("1").press("0")
    assert not zh.ended and zh.gather is not None  # the call goes on at the menu it was in
    assert "没有显示号码" in zh.text and "重新拨打" in zh.text and "网点" in zh.text
    assert "登记人工服务，您当前排在" not in zh.all_text and "尽快与您联系" not in zh.all_text
    assert "普通话" not in zh.text and "人工服务请按0" in zh.text  # the same menu again

    en = Phone(client, line, caller=withheld).press("9").press("0")
    assert not en.ended and "number is not shown" in en.text and "call you back" not in en.all_text
    assert "from a phone that shows its number" in en.text and ("service center" in en.text or "outlet" in en.text)
    assert _queue(app, city, line) == []


def test_a_withheld_number_asking_12333_for_a_query_password_reset_hears_where_to_go(client, app, city):
    phone = Phone(client, caller="").press("1").press("5")
    assert not phone.ended and "没有显示号码" in phone.text and "社会保障卡服务网点" in phone.text
    assert "查询卡片状态" in phone.text  # back at the main menu
    assert _queue(app, city, "12333") == []


def test_the_terminal_phone_without_a_number_queues_nothing(app, city):
    keys = iter(["1", "0"])

    def read_keys(prompt: str, secret: bool) -> str:
        try:
            return next(keys)
        except StopIteration:
            raise EOFError from None

    out = StringIO()
    assert run_call(app, "12333", Console(file=out, width=200), read_keys) == "hung_up"
    assert "没有显示号码" in out.getvalue() and "已为您登记人工服务" not in out.getvalue()
    assert _queue(app, city, "12333") == []

    out = StringIO()
    keys = iter(["1", "0"])
    assert run_call(app, "12333", Console(file=out, width=200), read_keys, caller=NUMBER) == "agent"
    assert "已为您登记人工服务" in out.getvalue()
    assert [r["callback_number"] for r in _queue(app, city, "12333")] == [NUMBER]


@pytest.mark.parametrize("line", ["12333", "bank:GSB"])
def test_a_number_waits_once_on_a_line(client, app, city, line):
    first = Phone(client, line, caller=NUMBER).press("1").press("0")
    assert first.ended and "第1位" in first.text
    app.clock.advance(minutes=7)
    again = Phone(client, line, caller=NUMBER).press("1").press("0")
    assert again.ended and "本号码已于2026年1月5日10:00登记人工服务" in again.text and "第1位" in again.text
    assert "T02:00" not in again.text and "2026-01-05" not in again.text
    english = Phone(client, line, caller=NUMBER).press("9").press("0")
    assert "already in the queue" in english.text and "since 5 January 2026, 10:00 (Beijing time)" in english.text
    waiting = _queue(app, city, line)
    assert [r["callback_number"] for r in waiting] == [NUMBER]
    other = "bank:GSB" if line == "12333" else "12333"  # another line's agents: a queue of its own
    assert "第1位" in Phone(client, other, caller=NUMBER).press("1").press("0").text
    another = Phone(client, line, caller="+8613812345679").press("1").press("0")
    assert "第2位" in another.text and len(_queue(app, city, line)) == 2

    hotline.close_agent_request(app, city.actor("clerk" if line == "12333" else "teller"), waiting[0]["id"])
    assert "登记人工服务，您当前排在第2位" in Phone(client, line, caller=NUMBER).press("1").press("0").text


def test_the_service_queues_no_request_without_a_number_to_call(client, app):
    phone = Phone(client, caller="").press("1")
    for number in ("", "anonymous", "terminal", "+"):
        with pytest.raises(SscardError) as refused:
            hotline.request_agent(app, hotline.GATEWAY_12333, phone.sid, "main", callback_number=number)
        assert refused.value.code == "no_callback_number"


def test_one_number_asking_on_eight_calls_at_one_instant_waits_once(client, app, city):
    """A number waits once on a line (request_agent), also when its calls ask at the same instant: eight
    threads released together leave one open request, and seven answers naming it."""
    import threading

    phones = [Phone(client, caller="+8613812345670").press("1") for _ in range(8)]
    start = threading.Barrier(len(phones))
    answers: list = []

    def ask(phone) -> None:
        start.wait()
        answers.append(hotline.request_agent(app, hotline.GATEWAY_12333, phone.sid, "main",
                                             callback_number="+8613812345670"))

    threads = [threading.Thread(target=ask, args=(p,)) for p in phones]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 8
    assert sum(a["queued"] for a in answers) == 1 and len({a["id"] for a in answers}) == 1
    assert [r["callback_number"] for r in _queue(app, city, "12333")] == ["+8613812345670"]
