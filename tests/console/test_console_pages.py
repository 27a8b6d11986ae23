"""Console page flows without a browser (TestClient): cancel a loss, what an agent may not do, errors in words."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from sscard.composition import create_app
from sscard.core.roles import Channel
from sscard.services import websession
from tests.support import STAFF_PASSWORD

from .helpers import AGENT_ID, audits, poa


def _signed_in(app, user="clerk"):
    web = websession.staff_login(app, user, STAFF_PASSWORD, Channel.WINDOW)
    client = TestClient(create_app(app))
    client.cookies.set("sscard_staff", web.token)  # in the jar: kept across a followed redirect
    return client, web.csrf


def _visit(client, csrf, person_id, citizen_id, **agent) -> str:
    data = {"csrf_token": csrf, "presenter": "agent" if agent else "cardholder", "citizen_id": citizen_id, **agent}
    r = client.post(f"/console/persons/{person_id}/identity-check", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    return r.headers["location"]


def _card_ids(html: str, action: str) -> list[str]:
    return re.findall(rf'action="/console/visits/\d+/{action}".*?name="card_id" value="(\d+)"', html, re.S)


def test_formal_loss_then_cancel_at_the_window(app, city):
    card = city.issued_card()
    client, csrf = _signed_in(app)
    with client:
        url = _visit(client, csrf, card.person_id, card.citizen_id)
        page = client.get(url).text
        form = {"csrf_token": csrf, "card_id": _card_ids(page, "formal-loss")[0], "op_key": "fl-once"}
        r = client.post(f"{url}/formal-loss", data=form)
        assert "请确认：办理社会保障卡正式挂失" in r.text and not audits(app, "ss_loss.report_formal")
        r = client.post(f"{url}/formal-loss", data={**form, "confirmed": "1"})
        assert "已办理社会保障卡正式挂失" in r.text and "95588" in r.text
        r = client.post(f"{url}/cancel-loss", data={"csrf_token": csrf, "card_id": _card_ids(r.text, "cancel-loss")[0]})
        assert r.status_code == 200 and "已解除挂失" in r.text
        assert audits(app, "ss_loss.cancel")[-1].result == "ok"
        assert card.citizen_id not in r.text and card.card_number not in r.text


def test_an_agent_visit_shows_cancel_loss_and_query_password_disabled_with_why_and_refuses_them(app, city):
    card = city.issued_card()
    p = poa(city, card)
    client, csrf = _signed_in(app)
    with client:
        url = _visit(client, csrf, card.person_id, card.citizen_id, attorney_id=str(p["id"]),
                     agent_citizen_id=AGENT_ID)
        page = client.get(url + "?lang=en").text
        assert re.search(r'<button type="submit" class="secondary" disabled[^>]*>Reset the query password', page)
        r = client.post(f"{url}/query-password?lang=en", data={"csrf_token": csrf})
        assert r.status_code == 403 and "only the cardholder in person may do this" in r.text
        r = client.post(f"{url}/formal-loss", data={"csrf_token": csrf, "card_id": _card_ids(page, "formal-loss")[0],
                                                   "confirmed": "1"})
        assert r.status_code == 200
        record = audits(app, "ss_loss.report_formal")[-1]
        assert record.attorney_id == p["id"] and record.on_behalf_of == card.person_id
        page = client.get(url).text
        cancel = re.search(r'<form[^>]*action="/console/visits/\d+/cancel-loss".*?</form>', page, re.S).group(0)
        assert "须由持卡人本人办理，受托人不能代办" in cancel and re.search(r"<button[^>]* disabled", cancel)


def test_find_by_name_and_birth_date_lists_every_match_masked(app, city):
    a = city.issued_card("陈明")
    city.issued_card("陈明")
    client, csrf = _signed_in(app)
    with client:
        r = client.post("/console/find", data={"csrf_token": csrf, "name": "陈明", "birth_date": "1980-05-17"})
        assert r.status_code == 200
        assert r.text.count("/console/persons/") >= 2 and "陈*" in r.text and a.citizen_id not in r.text
        r = client.post("/console/find", data={"csrf_token": csrf, "query": "A1234567"})
        assert r.status_code == 422 and "社会保障卡卡号无效" in r.text


def test_the_12333_callback_queue_is_on_the_console_home_and_can_be_called_back_and_done(app, city):
    from sscard.services import hotline

    hotline.create_call(app, {"call_sid": "CA-console-1", "line": hotline.LINE_12333, "node": "main", "lang": "zh"})
    req = hotline.request_agent(app, hotline.gateway(hotline.LINE_12333), "CA-console-1", "main", "补卡咨询",
                                callback_number="+8613800138000")
    client, csrf = _signed_in(app)
    with client:
        home = client.get("/console").text
        assert "补卡咨询" in home and f"/console/hotline/{req['id']}/take" in home and "接听" not in home
        r = client.post(f"/console/hotline/{req['id']}/take", data={"csrf_token": csrf}, follow_redirects=False)
        assert r.status_code == 303
        home = client.get("/console").text
        assert f"/console/hotline/{req['id']}/close" in home and "回拨中" in home
        client.post(f"/console/hotline/{req['id']}/close", data={"csrf_token": csrf})
        assert "目前没有待回拨的来电" in client.get("/console").text


def test_the_keyboard_starts_in_the_login_name_then_the_password_then_the_find_field(app, city):
    """The brief's keyboard-only probe: every staff page opened with the focus on the page itself; a clerk
    tabbed past the brand, the language link and 退出登录 (six keys) to reach the find field on every return
    home, and three to reach the login name. The cursor now starts where the typing does."""
    with TestClient(create_app(app)) as client:
        for path in ("/console/login", "/bank/login"):
            page = client.get(path).text
            assert re.search(r'<input name="username"[^>]*\bautofocus', page), path
            token = re.search(r'name="login_token" value="([^"]+)"', page).group(1)
            wrong = client.post(path, data={"login_token": token, "username": "clerk", "password": "x" * 9}).text
            assert re.search(r'<input name="password"[^>]*\bautofocus', wrong), path  # the name is kept
            assert not re.search(r'<input name="username"[^>]*\bautofocus', wrong), path
    client, _csrf = _signed_in(app)
    with client:
        home = client.get("/console").text
        assert re.search(r'<input name="query"[^>]*\bautofocus', home)
        assert len(re.findall(r"\bautofocus\b", home)) == 1
