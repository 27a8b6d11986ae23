"""Session 23's auditor: the hotlines' audit records named no call, so a supervisor could not gather one
call's records. Every operation a call's turn runs (hotline.engine, services.operation.on_call) names the
call's reference (its CallSid) in its record's detail: logins (refused ones too), the business done, the
agent request; on both lines; a record made outside any call names none."""

from __future__ import annotations

from sscard.services import audit, cards
from tests.hotline.phone import Phone
from tests.hotline.test_12333_calls import identify
from tests.hotline.test_bank_calls import identify as identify_at_bank


def _records(app, city, channel: str) -> list[dict]:
    return audit.read_audit(app, city.actor("operator"), channel=channel, limit=1000)["records"]


def test_each_12333_calls_records_name_that_call_and_only_that_call(client, holder, app, city):
    first = Phone(client).press("1").press("1")
    identify(first, holder, "11112222")  # a refused login: recorded, naming the call
    first.press("11112223")
    second = Phone(client).press("1").press("2")
    identify(second, holder)
    second.press("1")  # a temporary loss
    assert "临时挂失成功" in second.text
    second.press("0")  # and an agent's call back
    cards.card_status(app, city.actor("clerk"), holder.card_number)  # at the window: no call

    records = _records(app, city, "hotline_12333")
    by_call: dict[str, set[tuple[str, str]]] = {}
    for r in records:
        by_call.setdefault(r["detail"].get("call", ""), set()).add((r["operation"], r["result"]))
    assert ("query_password.login", "wrong_password") in by_call[first.sid]
    assert {("query_password.login", "ok"), ("ss_loss.report_temporary", "ok")} <= by_call[second.sid]
    assert any(op.startswith("hotline.") for op, _ in by_call[second.sid]), by_call[second.sid]
    assert "" not in by_call, by_call[""]  # every record on the line names its call
    window = audit.read_audit(app, city.actor("operator"), operation="card.status")["records"]
    assert window and all("call" not in r["detail"] for r in window)


def test_a_bank_hotline_calls_oral_loss_names_the_call(client, active, app, city):  # noqa: F811
    phone = Phone(client, "bank:GSB").press("1").press("1")
    identify_at_bank(phone, active, pin=active.pin)
    phone.press("1")
    assert "口头挂失成功" in phone.text
    records = [r for r in _records(app, city, "hotline_bank") if r["operation"] == "bank_loss.report_oral"]
    assert [r["detail"]["call"] for r in records] == [phone.sid]
    assert all(r["detail"].get("call") == phone.sid for r in _records(app, city, "hotline_bank"))
