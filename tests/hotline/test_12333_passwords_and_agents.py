"""12333: the SS application password changed by phone, and callers queued for a human agent."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from sscard.core.errors import SscardError
from sscard.core.passwords import weak_pin_reason
from sscard.core.roles import Channel
from sscard.models.foundation import AuditRecord
from sscard.models.hotline import HotlineCall
from sscard.services import audit, hotline, passwords
from tests.hotline.conftest import QUERY_PASSWORD
from tests.hotline.phone import Phone, keys_for_citizen_id


def new_password_for(card) -> str:
    for candidate in ("739184", "582947", "691358", "847261"):
        if weak_pin_reason(candidate, card.citizen_id, card.birth) is None:
            return candidate
    raise AssertionError("no acceptable password among the candidates")


def to_password_change(client, card) -> Phone:
    phone = Phone(client).press("1").press("4")
    phone.press(keys_for_citizen_id(card.citizen_id)).press(QUERY_PASSWORD)
    assert "原密码" in phone.text and phone.gather["numDigits"] == "6"
    return phone


def test_ss_password_changed_by_phone_old_new_and_new_again(client, holder, app, city):
    new = new_password_for(holder)
    phone = to_password_change(client, holder)
    phone.press("123456")
    assert "请输入6位新密码" in phone.text
    phone.press(new)
    assert "请再次输入" in phone.text
    phone.press(new)
    assert "修改成功" in phone.text and "查询卡片状态" in phone.text

    kiosk_like = city.cardholder(holder, Channel.PORTAL)
    assert passwords.verify_ss_password(app, kiosk_like, holder.card_number, new)["verified"]
    with pytest.raises(SscardError) as err:
        passwords.verify_ss_password(app, kiosk_like, holder.card_number, "123456")
    assert err.value.code == "wrong_password"
    changed = audit.read_audit(app, city.actor("csup"), operation="hotline.ss_password_change")["records"]
    assert len(changed) == 1 and changed[0]["channel"] == "hotline_12333" and changed[0]["result"] == "ok"


def test_weak_and_mismatched_new_passwords_are_refused(client, holder, app, city):
    new = new_password_for(holder)
    phone = to_password_change(client, holder)
    phone.press("123456")
    phone.press("111111")
    assert "密码过于简单" in phone.text and "相同数字" in phone.text and "请输入6位新密码" in phone.text
    phone.press("345678")
    assert "连续数字" in phone.text
    phone.press(holder.birth.strftime("%y%m%d"))
    assert "出生日期" in phone.text
    phone = to_password_change(client, holder)
    phone.press("123456").press(new).press("000000" if new != "000000" else "999999")
    assert "两次输入的新密码不一致" in phone.text and "请输入6位新密码" in phone.text
    phone.press(new).press(new)
    assert "修改成功" in phone.text


def test_wrong_old_password_three_times_locks_it(client, holder, app, city):
    phone = to_password_change(client, holder)
    phone.press("654321")
    assert "密码错误" in phone.text and "原密码" in phone.text
    phone.press("654320").press("654322")
    assert "已锁定" in phone.text and "查询卡片状态" in phone.text  # back to the menu, locked until a reset
    view = hotline.my_cards(app, city.cardholder(holder, Channel.HOTLINE_12333))
    assert view["cards"][0]["ss_status"] == "normal"
    records = audit.read_audit(app, city.actor("csup"), operation="hotline.ss_password_verify")["records"]
    assert [r["result"] for r in records] == ["password_locked", "wrong_password", "wrong_password"]
    assert all(r["channel"] == "hotline_12333" for r in records)


def test_no_secret_is_kept_in_the_call_state_or_the_audit(client, holder, app):
    new = new_password_for(holder)
    phone = to_password_change(client, holder)
    phone.press("123456").press(new)
    with app.db.session() as s:  # between "new" and "new again": only a keyed digest is kept
        call = s.scalar(select(HotlineCall).where(HotlineCall.call_sid == phone.sid))
        row = json.dumps({c.name: str(getattr(call, c.name)) for c in HotlineCall.__table__.columns})
        assert call.person_id == holder.person_id and call.identified_by == "query_password"
        assert "pending_new" in call.slots
    assert new not in row and QUERY_PASSWORD not in row and "123456" not in row
    phone.press(new)
    with app.db.session() as s:
        call = s.scalar(select(HotlineCall).where(HotlineCall.call_sid == phone.sid))
        assert "pending_new" not in call.slots and "old_ok" not in call.slots
        details = json.dumps([r.detail for r in s.scalars(select(AuditRecord))], ensure_ascii=False)
    for secret in (new, QUERY_PASSWORD):
        assert secret not in details
        assert secret not in "\n".join(phone.heard)  # never read back to the caller
        assert all(secret not in body for body in phone.responses)


def test_agent_request_is_queued_for_the_window_console(client, holder, app, city):
    anonymous = Phone(client).press("1").press("0")
    assert anonymous.ended and "已为您登记人工服务" in anonymous.text and "第1位" in anonymous.text

    known = Phone(client, caller="+8613900139000").press("1").press("1")
    known.press(keys_for_citizen_id(holder.citizen_id)).press(QUERY_PASSWORD)
    known.press("0")
    assert known.ended and "第2位" in known.text

    queue = hotline.agent_queue(app, city.actor("clerk"))
    assert queue["open"] == 2
    first, second = queue["requests"]
    assert first["identified"] is False and first["node"] == "main"
    assert second["identified"] is True and second["person"]["citizen_id"].count("*") == 8
    assert second["person"]["name"] == "李*"
    assert hotline.agent_queue(app, city.actor("teller"))["requests"] == []  # 12333 is not a bank's line

    hotline.take_agent_request(app, city.actor("clerk"), second["id"])
    hotline.close_agent_request(app, city.actor("clerk"), second["id"], note="called back")
    queue = hotline.agent_queue(app, city.actor("clerk"))
    assert [r["id"] for r in queue["requests"]] == [first["id"]]
    with pytest.raises(SscardError) as err:
        hotline.agent_queue(app, city.cardholder(holder))
    assert err.value.code == "forbidden"


def test_agent_queue_over_http_for_staff(client, holder, city):
    Phone(client).press("1").press("0")
    token = city.token("clerk")
    response = client.get("/api/v1/hotline/agent-queue", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.json()["open"] == 1
    assert client.get("/api/v1/hotline/agent-queue").status_code == 401


def test_hangup_status_callback_ends_the_call(client, holder, app):
    phone = Phone(client).press("1")
    response = client.post("/api/v1/hotline/12333/status", data={"CallSid": phone.sid, "CallStatus": "completed"})
    assert response.status_code == 204
    assert hotline.load_call(app, phone.sid)["status"] == "ended"
    phone.press("1")
    assert phone.ended


def test_an_ended_call_keeps_nothing_personal(client, holder, app):
    phone = Phone(client).press("1").press("2")
    phone.press(keys_for_citizen_id(holder.citizen_id))
    assert hotline.load_call(app, phone.sid)["slots"]["login"] == holder.citizen_id
    phone.press("0")
    call = hotline.load_call(app, phone.sid)
    assert call["status"] == "agent" and call["slots"] == {}


def test_forgotten_query_password_goes_to_an_agent_with_its_topic(client, app, city):
    phone = Phone(client).press("1").press("5")
    assert phone.ended and "姓名和社会保障卡卡号" in phone.text and "已为您登记人工服务" in phone.text
    waiting = hotline.agent_queue(app, city.actor("clerk"))["requests"]
    assert [(r["topic"], r["node"]) for r in waiting] == [("query_password_reset", "forgot_query_password")]


def test_an_ss_password_reset_at_a_window_after_the_old_one_was_typed_on_the_phone_refuses_the_phones_change(
        client, holder, app, city):
    """Found by timing a phone change against a reset (session 24): the old password typed at its prompt was
    taken as proof for ten minutes whatever happened to it meanwhile, so a caller who knew it finished the
    change after the cardholder had reset it at a window, and the caller's password replaced the new one."""
    new = new_password_for(holder)
    chosen = next(p for p in ("582947", "691358", "847261") if p != new
                  and weak_pin_reason(p, holder.citizen_id, holder.birth) is None)
    phone = to_password_change(client, holder)
    phone.press("123456")  # the old password, right: verified at its prompt
    passwords.reset_ss_password(app, city.actor("clerk"), holder.card_number, holder.citizen_id, chosen)
    phone.press(new).press(new)
    assert "修改成功" not in phone.text
    kiosk_like = city.cardholder(holder, Channel.PORTAL)
    assert passwords.verify_ss_password(app, kiosk_like, holder.card_number, chosen)["verified"]


def test_an_ss_password_locked_after_the_old_one_was_typed_on_the_phone_is_not_changed(client, holder, app, city):
    """The same timing: three wrong passwords at a kiosk after the old one was verified on the phone lock it
    until a reset at a window; the phone's change must not set a new password under that lock."""
    new = new_password_for(holder)
    phone = to_password_change(client, holder)
    phone.press("123456")
    kiosk_like = city.cardholder(holder, Channel.PORTAL)
    for _ in range(3):
        with pytest.raises(SscardError):
            passwords.verify_ss_password(app, kiosk_like, holder.card_number, "000000")
    phone.press(new).press(new)
    assert "修改成功" not in phone.text
    with app.db.session() as s:
        from sscard.models.foundation import Card

        card = s.scalar(select(Card).where(Card.card_number == holder.card_number))
        assert card.ss_pw_locked and card.ss_pw_digest is None  # still the issued 123456, still locked
