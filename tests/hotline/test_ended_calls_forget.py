"""A call that ends keeps nothing personal: no typed citizen ID, no PAN or card number, whether it ended by
the provider's status callback, a goodbye or an apology for a refusal nobody expected."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from sscard.core.errors import SscardError
from sscard.hotline.script import HANDLERS
from sscard.models.hotline import HotlineCall
from sscard.services import hotline
from tests.hotline.conftest import QUERY_PASSWORD
from tests.hotline.phone import Phone, keys_for_citizen_id
from tests.hotline.test_bank_calls import identify


def _row(app, sid: str) -> str:
    """Everything the call's row holds, as text."""
    call = hotline.load_call(app, sid)
    assert call is not None
    return json.dumps(call, default=str, ensure_ascii=False)


def _hang_up(client, phone: Phone, status: str = "completed") -> None:
    line = phone.line
    assert client.post(f"/api/v1/hotline/{line}/status",
                       data={"CallSid": phone.sid, "CallStatus": status}).status_code == 204


@pytest.mark.parametrize("status", ["completed", "canceled", "no-answer", "busy", "failed"])
def test_after_hang_up_the_bank_calls_row_holds_no_citizen_id(client, app, active, status):
    phone = Phone(client, "bank:GSB").press("1").press("1").press(keys_for_citizen_id(active.citizen_id))
    assert active.citizen_id in _row(app, phone.sid)  # typed, kept for the next step while the call goes on
    _hang_up(client, phone, status)
    row = _row(app, phone.sid)
    assert hotline.load_call(app, phone.sid)["status"] == "ended"
    assert active.citizen_id not in row and active.citizen_id[-8:] not in row


def test_after_hang_up_an_identified_bank_calls_row_holds_no_pan(client, app, active):
    phone = identify(Phone(client, "bank:GSB").press("1").press("1"), active, pin=active.pin)
    assert active.pan in _row(app, phone.sid)
    _hang_up(client, phone)
    row = _row(app, phone.sid)
    assert active.pan not in row and active.citizen_id not in row and active.pin not in row
    assert hotline.load_call(app, phone.sid)["slots"] == {"name": "周*", "pan_tail": active.pan[-4:]}


def test_after_hang_up_a_12333_calls_row_holds_no_card_number_or_id(client, app, holder):
    phone = Phone(client).press("1").press("2").press(keys_for_citizen_id(holder.citizen_id)).press(QUERY_PASSWORD)
    assert holder.card_number in _row(app, phone.sid)
    _hang_up(client, phone)
    row = _row(app, phone.sid)
    assert holder.card_number not in row and holder.citizen_id not in row and QUERY_PASSWORD not in row


def test_a_call_ended_by_an_apology_keeps_nothing_personal(client, app, active, monkeypatch):
    phone = identify(Phone(client, "bank:GSB").press("1").press("1"), active, pin=active.pin).press("*")

    def unexpected(ctx, value):
        raise SscardError("card_not_usable", state="frozen")

    monkeypatch.setitem(HANDLERS, "bank_status", unexpected)
    phone.press("3")
    assert phone.ended and "对不起，暂时无法办理" in phone.text
    call = hotline.load_call(app, phone.sid)
    assert call["status"] == "ended" and active.pan not in _row(app, phone.sid)


def test_a_goodbye_keeps_nothing_personal_and_saving_an_ended_call_keeps_no_slot_but_the_spoken(app, client, active):
    phone = Phone(client, "bank:GSB").press("1").press("1").press(keys_for_citizen_id(active.citizen_id))
    for _ in range(3):
        phone.silence()
    assert phone.ended and active.citizen_id not in _row(app, phone.sid)

    live = Phone(client, "bank:GSB").press("1").press("1").press(keys_for_citizen_id(active.citizen_id))
    state = hotline.load_call(app, live.sid)
    state["status"] = "ended"  # whoever ends a call, the one writer of calls drops what it must not keep
    hotline.save_call(app, state)
    assert active.citizen_id not in _row(app, live.sid)
    with app.db.session() as s:
        assert s.scalar(select(HotlineCall.slots).where(HotlineCall.call_sid == live.sid)) == {}
