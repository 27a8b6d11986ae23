"""Who takes and closes a hotline caller's agent request, through the API and the window console.

Found (review): `hotline.agent_take`/`agent_close` were Scope.CITY and checked only the request's line, so any
agent of the line closed a request another agent had taken (and was calling back), and the queue showed
every agent their colleagues' calls. Now: a bank's staff handle only their own bank's line (its customers or
unidentified callers), center staff the 12333 line; a taken request is closed only by the agent who took it
or a supervisor of the line; the queue shows each agent what they may act on; another line's request
answers not_found, the same as one that does not exist."""

from __future__ import annotations

import uuid

import pytest

from sscard.api.sessions import issue_cardholder_token
from sscard.core.roles import CLI_OPERATOR
from sscard.services import access, staff
from sscard.services import hotline as svc
from tests.console.test_console_pages import _signed_in
from tests.support import STAFF_PASSWORD, bearer


def queued(app, line: str, person_id: int | None = None) -> int:
    """A caller on `line` (identified as `person_id`, or not) who pressed 0 for an agent."""
    sid = "CA" + uuid.uuid4().hex
    svc.create_call(app, {"call_sid": sid, "line": line, "caller": "138****8000", "status": "active",
                          "node": "main", "lang": "zh", "turn": 1, "timeouts": 0, "invalid": 0, "attempts": 0,
                          "person_id": person_id, "identified_by": "pin" if person_id else "",
                          "after_identify": "", "slots": {}})
    number = "+86139" + str(uuid.uuid4().int)[:8]  # a number of its own: a number waits once on a line
    return svc.request_agent(app, svc.gateway(line), sid, "main", callback_number=number)["id"]


@pytest.fixture
def lines(app, city):
    for username, role, outlet in (("teller_gsb2", "teller", "GSB-002"), ("bsup_jsb", "bank_supervisor", "JSB-001")):
        staff.add_user(app, CLI_OPERATOR, username, STAFF_PASSWORD, role, username, outlet_code=outlet)
    gsb, jsb = city.issued_card("张三", bank="GSB"), city.issued_card("李四", bank="JSB")
    return {
        "12333": queued(app, "12333", gsb.person_id),
        "gsb_anonymous": queued(app, "bank:GSB"),
        "gsb_customer": queued(app, "bank:GSB", gsb.person_id),
        "jsb_customer_on_gsb": queued(app, "bank:GSB", jsb.person_id),  # not GSB's customer
        "jsb": queued(app, "bank:JSB", jsb.person_id),
        "tokens": {u: city.token(u) for u in ("clerk", "clerk2", "csup", "teller", "teller_gsb2", "bsup",
                                               "teller_jsb", "bsup_jsb", "operator")},
        "holder": issue_cardholder_token(app, gsb.person_id),
    }


def _act(client, lines, who: str, rid: int, action: str, key: str | None = None):
    token = lines["tokens"][who] if who in lines["tokens"] else who
    return client.post(f"/api/v1/hotline/agent-queue/{rid}/{action}", headers=bearer(token, key or uuid.uuid4().hex))


def _queue(client, lines, who: str) -> set[int]:
    answer = client.get("/api/v1/hotline/agent-queue", headers=bearer(lines["tokens"][who]))
    assert answer.status_code == 200, answer.text
    return {r["id"] for r in answer.json()["requests"]}


def test_another_banks_staff_cannot_take_or_close_a_banks_line_request_and_learn_nothing_of_it(client, lines):
    missing = _act(client, lines, "teller_jsb", 987_654, "take")
    assert missing.status_code == 404
    for who in ("teller_jsb", "bsup_jsb", "clerk", "csup"):
        for action in ("take", "close"):
            answer = _act(client, lines, who, lines["gsb_anonymous"], action)
            assert (answer.status_code, answer.json()) == (404, missing.json()), (who, action)
    for who in ("teller", "teller_gsb2", "bsup"):  # 12333 is the service centers' line
        assert _act(client, lines, who, lines["12333"], "take").status_code == 404
    # a cardholder's token is refused at the door, their own call's request or not
    assert _act(client, lines, lines["holder"], lines["gsb_customer"], "take").status_code == 403
    assert _act(client, lines, "teller", lines["gsb_anonymous"], "take").status_code == 200


def test_a_banks_staff_do_not_act_on_a_request_about_another_banks_customer(client, lines):
    """A caller on GSB's line identified as someone who is not GSB's customer (the menus never make one;
    the rule is the bank side's, services.lookup.person_in_scope): GSB's staff answer not_found."""
    for who in ("teller", "bsup"):
        assert _act(client, lines, who, lines["jsb_customer_on_gsb"], "take").status_code == 404
        assert lines["jsb_customer_on_gsb"] not in _queue(client, lines, who)
    assert _act(client, lines, "teller", lines["gsb_customer"], "take").status_code == 200


def test_a_taken_request_is_closed_only_by_the_agent_who_took_it_or_a_supervisor(client, lines):
    rid = lines["12333"]
    assert _act(client, lines, "clerk", rid, "take").status_code == 200
    refused = _act(client, lines, "clerk2", rid, "close")
    assert refused.status_code == 409 and refused.json()["code"] == "agent_request_taken"
    assert _act(client, lines, "clerk2", rid, "take").json()["code"] == "illegal_transition"
    closed = _act(client, lines, "csup", rid, "close")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    # the bank's line alike: another teller of the bank may not, its supervisor may, the taker may
    gsb = lines["gsb_customer"]
    assert _act(client, lines, "teller", gsb, "take").status_code == 200
    assert _act(client, lines, "teller_gsb2", gsb, "close").json()["code"] == "agent_request_taken"
    assert _act(client, lines, "bsup_jsb", gsb, "close").status_code == 404
    assert _act(client, lines, "teller", gsb, "close").status_code == 200
    # an open request (the caller hung up, or was helped at once) is closed by any agent of its line
    assert _act(client, lines, "teller_gsb2", lines["gsb_anonymous"], "close").status_code == 200


def test_a_retried_take_is_answered_once_and_another_agents_same_key_takes_nothing(client, lines):
    rid = lines["12333"]
    first = _act(client, lines, "clerk", rid, "take", key="take-1")
    again = _act(client, lines, "clerk", rid, "take", key="take-1")
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    rival = _act(client, lines, "clerk2", rid, "take", key="take-1")  # keys are per caller: a new request
    assert rival.status_code == 409 and rival.json()["code"] == "illegal_transition"
    assert _act(client, lines, "clerk2", rid, "close", key="take-1").json()["code"] == "agent_request_taken"


def test_the_queue_shows_each_agent_what_they_may_act_on(client, lines):
    assert _act(client, lines, "clerk", lines["12333"], "take").status_code == 200
    assert _act(client, lines, "teller", lines["gsb_customer"], "take").status_code == 200
    assert _queue(client, lines, "clerk") == {lines["12333"]}  # the one they took
    assert _queue(client, lines, "clerk2") == set()  # taken by a colleague: nothing to do
    assert _queue(client, lines, "csup") == {lines["12333"]}  # a supervisor may close it
    assert _queue(client, lines, "teller") == {lines["gsb_anonymous"], lines["gsb_customer"]}
    assert _queue(client, lines, "teller_gsb2") == {lines["gsb_anonymous"]}
    assert _queue(client, lines, "bsup") == {lines["gsb_anonymous"], lines["gsb_customer"]}
    assert _queue(client, lines, "teller_jsb") == _queue(client, lines, "bsup_jsb") == {lines["jsb"]}
    every = {lines[k] for k in ("12333", "gsb_anonymous", "gsb_customer", "jsb_customer_on_gsb", "jsb")}
    assert _queue(client, lines, "operator") == every  # oversees every line, takes none


def test_on_the_window_console_another_clerk_cannot_close_a_call_a_colleague_took(app, city, lines):
    rid = lines["12333"]
    mine, my_csrf = _signed_in(app, "clerk")
    theirs, their_csrf = _signed_in(app, "clerk2")
    with mine, theirs:
        assert f'id="callback-{rid}"' in theirs.get("/console").text
        assert mine.post(f"/console/hotline/{rid}/take", data={"csrf_token": my_csrf, "op_key": "t1"},
                         follow_redirects=False).status_code == 303
        assert f'id="callback-{rid}"' not in theirs.get("/console").text  # no longer theirs to act on
        refused = theirs.post(f"/console/hotline/{rid}/close", data={"csrf_token": their_csrf, "op_key": "c1"})
        assert refused.status_code == 409 and "其他坐席" in refused.text
        assert mine.post(f"/console/hotline/{rid}/close", data={"csrf_token": my_csrf, "op_key": "c2"},
                         follow_redirects=False).status_code == 303


def test_the_agent_operations_declare_the_line_scope_and_fail_closed_without_the_check(app, city, lines, monkeypatch):
    for name in ("hotline.agent_take", "hotline.agent_close", "hotline.agent_queue"):
        assert access.declaration(name).scope is access.Scope.OWN
    monkeypatch.setattr(access, "require_own_line", lambda *a: None)  # a body that forgot its scope
    with pytest.raises(RuntimeError, match="never checked"):
        svc.take_agent_request(app, city.actor("teller"), lines["gsb_anonymous"])


def test_only_a_lines_own_gateway_queues_its_calls_for_an_agent(app, city):
    """A request names the caller as the call identified them and the number the agent calls back: the
    12333 gateway queuing a bank line's call (or the bank's gateway a 12333 call) is answered
    call_not_found, as a call that does not exist; a cardholder (who used to be allowed by the
    operation's declaration, though no channel called it so) is refused by the frame."""
    from sscard.core.errors import SscardError

    card = city.issued_card("王五", bank="GSB")
    sids = {}
    for line in ("12333", "bank:GSB"):
        sids[line] = "CA" + uuid.uuid4().hex
        svc.create_call(app, {"call_sid": sids[line], "line": line, "caller": "138****8000", "status": "active",
                              "node": "main", "lang": "zh", "turn": 1, "timeouts": 0, "invalid": 0, "attempts": 0,
                              "person_id": card.person_id, "identified_by": "pin", "after_identify": "",
                              "slots": {}})
    for gateway_line, call_line in (("12333", "bank:GSB"), ("bank:GSB", "12333")):
        with pytest.raises(SscardError) as refused:
            svc.request_agent(app, svc.gateway(gateway_line), sids[call_line], "main",
                              callback_number="+8613900000000")
        assert refused.value.code == "call_not_found"
    with pytest.raises(Exception) as refused:
        svc.request_agent(app, svc.holder(card.person_id, "王五", "12333"), sids["12333"], "main",
                          callback_number="+8613900000000")
    assert getattr(refused.value, "code", None) == "forbidden", refused.value
    assert svc.request_agent(app, svc.gateway("12333"), sids["12333"], "main",
                             callback_number="+8613900000000")["line"] == "12333"
