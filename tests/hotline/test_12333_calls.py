"""Whole 12333 calls played through the voice webhook, following the TwiML it answers."""

from __future__ import annotations

from datetime import date

from sscard.services import audit, cards
from tests.hotline.conftest import QUERY_PASSWORD
from tests.hotline.phone import Phone, keys_for_citizen_id


def identify(phone: Phone, card, password: str = QUERY_PASSWORD) -> Phone:
    assert "身份证号码" in phone.text or "citizen ID" in phone.text
    phone.press(keys_for_citizen_id(card.citizen_id))
    assert "查询密码" in phone.text or "query password" in phone.text
    return phone.press(password)


def test_identify_then_card_status_is_read_out_in_mandarin(client, holder):
    phone = Phone(client)
    assert "12333" in phone.text and phone.gather["numDigits"] == "1"
    assert phone.gather["timeout"] == "6" and phone.gather["actionOnEmptyResult"] == "true"
    phone.press("1")
    assert "查询卡片状态" in phone.text
    phone.press("1")
    identify(phone, holder)
    assert "身份验证成功" in phone.text
    assert f"尾号{holder.card_number[-4:]}的社会保障卡状态正常" in phone.text
    assert "尚未启用" in phone.text and "初始密码" in phone.text
    assert "查询卡片状态" in phone.text  # back at the main menu
    assert 'language="zh-CN"' in phone.responses[-1]


def test_a_passed_activation_window_is_told_as_passed_not_as_a_deadline_in_the_past(client, holder, clock):
    """Session 22's rules probe: 12333 told a caller to activate "by" yesterday's date, where the portal and
    the bank say the window has passed and a supervisor must extend it first (RULES §3)."""
    clock.advance(days=61)
    phone = Phone(client).press("1").press("1")
    identify(phone, holder)
    assert "启用期限已于" in phone.text and "延期后启用" in phone.text
    assert "请于" not in phone.text


def test_english_is_chosen_with_9_at_the_start(client, holder):
    phone = Phone(client).press("9")
    assert "card status" in phone.text
    phone.press("1")
    identify(phone, holder)
    assert "You are identified." in phone.text
    assert f"ending {holder.card_number[-4:]} is in normal use" in phone.text
    assert 'language="en-US"' in phone.responses[-1]


def test_wrong_query_passwords_hang_up_then_lock_across_calls(client, holder, app, city, clock):
    first = Phone(client).press("1").press("1")
    identify(first, holder, "11112222")
    assert "密码错误" in first.text and not first.ended
    first.press("11112223")
    assert "密码错误" in first.text
    first.press("11112224")
    assert first.ended and "错误次数过多" in first.text

    second = Phone(client).press("1").press("1")
    identify(second, holder, "11112225")
    second.press("11112226")  # the fifth wrong one: locked for 30 minutes
    assert second.ended and "已锁定" in second.text and "30分钟" in second.text

    third = Phone(client).press("1").press("1")
    identify(third, holder)  # right password, still locked
    assert third.ended and "已锁定" in third.text

    records = audit.read_audit(app, city.actor("csup"), operation="query_password.login",
                               channel="hotline_12333")["records"]
    assert [r["result"] for r in records].count("wrong_password") == 4
    assert "password_locked" in [r["result"] for r in records]

    clock.advance(minutes=31)
    fourth = Phone(client).press("1").press("1")
    identify(fourth, holder)
    assert "身份验证成功" in fourth.text


def test_no_input_reprompts_then_hangs_up(client, holder):
    phone = Phone(client)
    phone.silence()
    assert "没有收到您的按键" in phone.text and "12333" in phone.text and not phone.ended
    phone.silence_via_redirect()  # Twilio's fallback when the Gather posts nothing
    assert "没有收到您的按键" in phone.text and not phone.ended
    phone.silence()
    assert phone.ended and "通话结束" in phone.text


def test_a_key_ends_the_run_of_timeouts(client, holder):
    phone = Phone(client).silence().silence().press("1")
    assert "查询卡片状态" in phone.text
    phone.silence().silence()
    assert not phone.ended


def test_backing_out_with_star_to_try_another_id_does_not_start_the_calls_count_again(client, city):
    """Session 22's hotline probe: ID, wrong password, *, another ID, wrong password... gave 24 wrong
    query passwords over 12 IDs in one call (a withheld number has no throttle but the call's tries)."""
    people = [city.issued_card(name, birth=date(1980 + i, 3, 4 + i))
              for i, name in enumerate(("甲一", "乙二", "丙三"))]
    phone = Phone(client, caller="").press("1").press("1")
    for n, card in enumerate(people, start=1):
        identify(phone, card, "11112222")
        if n < len(people):
            assert "密码错误" in phone.text and not phone.ended
            phone.press("*")  # back to the ID
    assert phone.ended and "错误次数过多" in phone.text


def test_a_retried_webhook_hears_its_first_answer_and_nothing_is_done_twice(client, holder, app, city):
    """Session 22's hotline probe: Twilio sends a webhook again when its answer is slow, and plays the
    retry's answer. A retry of the loss's confirmation heard the main menu, never "临时挂失成功"; a retry of
    the call's first request counted as silence. Each now hears the first answer; the loss is made once."""
    import re

    phone = Phone(client).press("1").press("2")
    identify(phone, holder)
    confirm_url = phone.gather["action"]
    phone.press("1")
    first = phone.responses[-1]
    assert "临时挂失成功" in first
    again = client.post(confirm_url, data={"CallSid": phone.sid, "From": phone.caller, "Digits": "1"}).text
    assert again == first
    records = audit.read_audit(app, city.actor("csup"), operation="ss_loss.report_temporary")["records"]
    assert len(records) == 1

    fresh = Phone(client)
    start = fresh.responses[-1]
    retried = client.post("/api/v1/hotline/12333/voice", data={"CallSid": fresh.sid, "From": fresh.caller}).text
    assert retried == start and "没有收到您的按键" not in retried
    assert re.search(r'turn=(\d+)', retried).group(1) == re.search(r'turn=(\d+)', start).group(1)


def test_a_twin_webhook_sent_while_the_first_runs_hears_the_first_answer_not_an_apology(app, city, holder,
                                                                                        monkeypatch):
    """Session 22's hotline probe: two copies of the confirming "1" at once: the loss was made once, and
    one copy answered "通话状态已被更新，请重试" and hung up on the caller. Session 23's: the other copy still
    ran the loss again (refused illegal_transition, with a refused audit record): now it runs nothing."""
    import threading

    from sscard.hotline import calls
    from sscard.services import hotline as svc

    sid = "CA-twin"
    turn = calls.take_turn(app, "12333", sid, None).turn
    for keys in ("1", "2", holder.citizen_id.replace("X", "*"), QUERY_PASSWORD):
        turn = calls.take_turn(app, "12333", sid, keys, turn=turn).turn
    both = threading.Barrier(2)
    load = svc.load_call
    loads = []

    def read_together(app, call_sid):
        state = load(app, call_sid)
        loads.append(1)
        if len(loads) <= 2:
            both.wait(timeout=10)  # both copies have read the call before either goes on
        return state

    monkeypatch.setattr(svc, "load_call", read_together)
    ran = []
    step = calls.Engine.step
    monkeypatch.setattr(calls.Engine, "step", lambda self, state, digits: ran.append(1) or step(self, state, digits))
    answers: list = []
    twins = [threading.Thread(target=lambda: answers.append(calls.take_turn(app, "12333", sid, "1", turn=turn)))
             for _ in range(2)]
    for t in twins:
        t.start()
    for t in twins:
        t.join()
    texts = [" ".join(a.reply.lines) for a in answers]
    assert len(texts) == 2 and all("临时挂失成功" in t for t in texts), texts
    assert not any(a.reply.hangup for a in answers)
    assert len(ran) == 1  # one copy ran the turn; the other waited for its answer
    records = audit.read_audit(app, city.actor("csup"), operation="ss_loss.report_temporary")["records"]
    assert [r["result"] for r in records] == ["ok"]  # made once, and no refusal recorded


def test_a_copy_sent_while_the_turn_runs_waits_for_its_answer_and_runs_nothing(app, city, holder, monkeypatch):
    """The provider's copy of a turn that arrives after the first copy took the turn, while it still runs
    (the call's row read then is the taken one): it runs nothing and answers what the first answers."""
    import threading

    from sscard.hotline import calls

    sid = "CA-slow"
    turn = calls.take_turn(app, "12333", sid, None).turn
    for keys in ("1", "2", holder.citizen_id.replace("X", "*"), QUERY_PASSWORD):
        turn = calls.take_turn(app, "12333", sid, keys, turn=turn).turn
    in_step, go = threading.Event(), threading.Event()
    ran = []
    step = calls.Engine.step

    def slow_step(self, state, digits):
        ran.append(1)
        in_step.set()
        go.wait(timeout=10)
        return step(self, state, digits)

    monkeypatch.setattr(calls.Engine, "step", slow_step)
    answers: dict = {}
    first = threading.Thread(target=lambda: answers.update(first=calls.take_turn(app, "12333", sid, "1", turn=turn)))
    first.start()
    assert in_step.wait(timeout=10)
    copy = threading.Thread(target=lambda: answers.update(copy=calls.take_turn(app, "12333", sid, "1", turn=turn)))
    copy.start()
    copy.join(timeout=0.5)
    assert copy.is_alive()  # waiting for the first's answer, not running the turn
    go.set()
    first.join()
    copy.join()
    assert len(ran) == 1 and answers["copy"].reply == answers["first"].reply
    assert "临时挂失成功" in " ".join(answers["copy"].reply.lines)
    records = audit.read_audit(app, city.actor("csup"), operation="ss_loss.report_temporary")["records"]
    assert [r["result"] for r in records] == ["ok"]
    assert "_taken" not in calls.svc.load_call(app, sid)["slots"]  # the turn's save dropped its mark


def test_a_twin_of_a_calls_first_request_hears_the_same_welcome(app, monkeypatch):
    """Two copies of a call's first request at once: one starts the call, the other hears its welcome
    (it was an apology and a hang-up: the call row's insert refused call_conflict)."""
    import threading

    from sscard.hotline import calls
    from sscard.services import hotline as svc

    both = threading.Barrier(2)
    create = svc.create_call

    def create_together(app, state):
        both.wait(timeout=10)
        return create(app, state)

    monkeypatch.setattr(svc, "create_call", create_together)
    answers: list = []
    twins = [threading.Thread(target=lambda: answers.append(calls.take_turn(app, "12333", "CA-first-twin", None)))
             for _ in range(2)]
    for t in twins:
        t.start()
    for t in twins:
        t.join()
    assert len(answers) == 2 and answers[0].reply == answers[1].reply and answers[0].turn == answers[1].turn
    assert "普通话服务请按1" in answers[0].reply.prompt and not answers[0].reply.hangup


def test_wrong_menu_keys_reprompt_then_hang_up(client):
    phone = Phone(client).press("1").press("7")
    assert "输入有误" in phone.text and "查询卡片状态" in phone.text
    phone.press("8").press("6")  # "#" says the menu again (test_menus_say_again.py)
    assert phone.ended and "错误次数过多" in phone.text


def test_star_goes_back(client, holder):
    phone = Phone(client).press("1").press("2")
    assert "身份证号码" in phone.text
    phone.press("*")
    assert "查询卡片状态" in phone.text
    phone.press("*")
    assert "For English, press 9" in phone.text
    phone.press("1").press("2")
    identify(phone, holder)
    assert "确认挂失请按1" in phone.text
    phone.press("*")
    assert "查询卡片状态" in phone.text


def test_temporary_loss_by_phone_then_cancel(client, holder, app, city):
    phone = Phone(client).press("1").press("2")
    identify(phone, holder)
    assert f"尾号{holder.card_number[-4:]}" in phone.text and "7天" in phone.text
    phone.press("1")
    assert "临时挂失成功" in phone.text
    assert "银行账户尚未启用" in phone.text  # the bank side is separate: not activated here, so nothing to report
    clerk_view = cards.card_status(app, city.actor("clerk"), holder.card_number)
    assert clerk_view["ss_status"] == "temporary_loss"
    records = audit.read_audit(app, city.actor("csup"), operation="ss_loss.report_temporary")["records"]
    assert len(records) == 1 and records[0]["channel"] == "hotline_12333"
    assert records[0]["actor"]["role"] == "cardholder" and records[0]["person_id"] == holder.person_id

    phone.press("2")
    assert "已处于挂失状态" in phone.text
    other_call = Phone(client).press("1").press("1")
    identify(other_call, holder)
    other_call.press("0")  # the agent who calls back sees the loss made by phone
    from sscard.services import hotline

    waiting = hotline.agent_queue(app, city.actor("clerk"))["requests"][0]
    assert waiting["card"]["ss_status"] == "temporary_loss" and waiting["card"]["card_number"].count("*") == 5
    phone.press("3")  # already identified in this call
    assert "解除" in phone.text and "确认请按1" in phone.text
    phone.press("1")
    assert "临时挂失已解除" in phone.text
    assert cards.card_status(app, city.actor("clerk"), holder.card_number)["ss_status"] == "normal"
    cancel = audit.read_audit(app, city.actor("csup"), operation="ss_loss.cancel", channel="hotline_12333")
    assert len(cancel["records"]) == 1


def test_formal_loss_cannot_be_cancelled_by_phone(client, holder, app, city):
    from sscard.services import loss

    loss.report_formal_loss(app, city.actor("clerk"), holder.card_number, holder.citizen_id)
    phone = Phone(client).press("1").press("3")
    identify(phone, holder)
    assert "正式挂失" in phone.text and "窗口" in phone.text
    assert cards.card_status(app, city.actor("clerk"), holder.card_number)["ss_status"] == "formal_loss"


def test_status_reads_out_a_card_in_production(client, city, app):
    from sscard.services import enrolment, production

    pid, cid = city.new_person("王五")
    while cid.endswith("X"):  # the initial query password (last 6 of the SS number) must be typable
        pid, cid = city.new_person("王五")
    clerk = city.actor("clerk")
    applied = enrolment.apply_first_card(app, clerk, pid, "GSB", "C01")
    production.start_batch(app, clerk, "C01")
    phone = Phone(client).press("1").press("1")
    phone.press(cid).press(cid[-6:])
    assert "正在制作中" in phone.text and applied["card_number"][-4:] in phone.text


def test_other_callers_identity_cannot_be_guessed_by_an_unknown_id(client, holder, city):
    pid, cid = city.new_person("赵六")  # registered, no card, never set a password
    phone = Phone(client).press("1").press("1")
    phone.press(keys_for_citizen_id("11010519491231002X")).press(QUERY_PASSWORD)
    unknown = phone.text
    phone2 = Phone(client).press("1").press("1")
    identify(phone2, holder, "99990000")
    assert unknown == phone2.text  # an unknown ID answers exactly like a wrong password


def test_retried_webhook_hears_the_same_prompt_without_acting(client, holder):
    phone = Phone(client).press("1")
    action = None
    import xml.etree.ElementTree as ET

    root = ET.fromstring(phone.responses[-1])
    action = root.find("Gather").attrib["action"]
    again = client.post(action.replace("turn=1", "turn=0"), data={"CallSid": phone.sid, "Digits": "2"})
    assert "查询卡片状态" in again.text and "身份证号码" not in again.text
    phone.press("2")
    assert "身份证号码" in phone.text


def test_calls_are_kept_per_call_sid(client, holder):
    a = Phone(client).press("9")
    b = Phone(client).press("1")
    a.press("1")
    b.press("1")
    assert "citizen ID" in a.text and "身份证号码" in b.text



def test_failed_identifications_count_against_the_callers_number_with_every_login_door(make_app, city, holder):
    """Session 21's probe: twelve failed identifications on 12333 in a minute left the caller's login budget
    untouched, so calling again and again tested more logins than a browser may. The caller's number is now
    the throttle's client on both hotlines, counted with the web doors' failures: past the policy's
    per-minute budget the next identification is refused unchecked, and said so."""
    from fastapi.testclient import TestClient

    from sscard.composition import create_app

    app = make_app(login={"client_failures_per_minute": 3})
    with TestClient(create_app(app)) as client:
        call = Phone(client, caller="+8613900000001").press("1").press("1")
        identify(call, holder, "11112222")
        call.press("11112223").press("11112224")  # three wrong: this call ends, the budget is spent
        assert call.ended
        refused = Phone(client, caller="+8613900000001").press("1").press("1")
        identify(refused, holder)  # the right password, refused unchecked
        assert refused.ended and "本号码身份验证失败次数过多" in refused.text and "身份验证成功" not in refused.text
        other = Phone(client, caller="+8613900000002").press("1").press("1")
        identify(other, holder)  # another number has its own budget
        assert "身份验证成功" in other.text
        # the same number on the bank's hotline: the budget is one across every door
        from tests.hotline.test_bank_calls import identify as identify_at_bank

        bank = Phone(client, "bank:GSB", caller="+8613900000001").press("1").press("1")
        identify_at_bank(bank, holder, pin="000001")
        assert bank.ended and "本号码身份验证失败次数过多" in bank.text
    throttled = audit.read_audit(app, city.actor("operator"), operation="login.throttled")["records"]
    assert sorted(r["channel"] for r in throttled) == ["hotline_12333", "hotline_bank"]
