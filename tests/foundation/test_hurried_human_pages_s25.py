"""Session 25's browser probe, the findings that need no browser (TestClient, both databases):

- switching the language on the page a form's POST answered (the address bar holds the form's target:
  `/console/find`, `/console/visits/3/replace`, `/bank/account`) answered 405 "method not allowed"; it goes
  back to the page the form was on, and a GET page keeps its query (the portal's year filter);
- a refused power of attorney kept the agent's name but emptied the agent's and the holder's citizen IDs
  and the scopes ticked."""

from __future__ import annotations

import re
from html import unescape

from fastapi.testclient import TestClient

from sscard.composition import create_app
from sscard.core.roles import Channel
from sscard.services import websession
from tests.support import STAFF_PASSWORD

from ..console.helpers import AGENT_ID


def _staff(app, user: str, channel: Channel) -> tuple[TestClient, str]:
    web = websession.staff_login(app, user, STAFF_PASSWORD, channel)
    client = TestClient(create_app(app))
    client.headers["Cookie"] = f"sscard_staff={web.token}"
    return client, web.csrf


def _language_link(html: str) -> str:
    return unescape(re.search(r'href="(/lang/en\?next=[^"]*)"', html).group(1))


def test_switching_language_on_a_forms_answer_goes_back_to_the_page_the_form_was_on(app, city):
    card = city.issued_card()
    client, csrf = _staff(app, "clerk", Channel.WINDOW)
    with client:
        refused = client.post("/console/find", data={"csrf_token": csrf, "query": "11010819740502572X"})
        assert refused.status_code == 422
        back = client.get(_language_link(refused.text), follow_redirects=False)
        assert back.headers["location"] == "/console"
        assert client.get(back.headers["location"]).status_code == 200
        r = client.post(f"/console/persons/{card.person_id}/identity-check",
                        data={"csrf_token": csrf, "presenter": "cardholder", "citizen_id": card.citizen_id},
                        follow_redirects=False)
        visit = r.headers["location"]
        for posted, page in ((f"{visit}/replace", visit), (f"/console/persons/{card.person_id}/identity-check",
                                                          f"/console/persons/{card.person_id}"),
                             ("/console/production/start", "/console/production")):
            assert client.get(f"/lang/en?next={posted}", follow_redirects=False).headers["location"] == page
    teller, _ = _staff(app, "teller", Channel.BANK_OUTLET)
    with teller:
        assert teller.get("/lang/zh?next=/bank/account", follow_redirects=False).headers["location"] == "/bank"


def test_switching_language_keeps_the_query_of_a_page(app):
    anon = TestClient(create_app(app))
    with anon:
        page = anon.get("/portal/login?unsent=1").text
        link = _language_link(page)
        assert link == "/lang/en?next=/portal/login%3Funsent%3D1"
        assert anon.get(link, follow_redirects=False).headers["location"] == "/portal/login?unsent=1"
        for elsewhere in ("//evil.example/x", "/\\evil.example", "https://evil.example/"):
            assert anon.get("/lang/en", params={"next": elsewhere}, follow_redirects=False).headers["location"] == "/"


def test_a_refused_power_of_attorney_keeps_the_ids_and_scopes_typed(app, city):
    card = city.issued_card()
    client, csrf = _staff(app, "clerk", Channel.WINDOW)
    with client:
        r = client.post(f"/console/persons/{card.person_id}/attorneys", data={
            "csrf_token": csrf, "agent_name": "赵六", "agent_citizen_id": AGENT_ID, "scope": ["ss_loss.report_formal", "card.collect"],
            "valid_from": "2026-01-10", "valid_to": "2025-01-01", "document_ref": "WT-1",
            "citizen_id": card.citizen_id,
        })
        assert r.status_code >= 400
        form = r.text[r.text.index(f'action="/console/persons/{card.person_id}/attorneys"'):]
        form = form[:form.index("</form>")]
        assert f'name="agent_citizen_id" maxlength="24" required value="{AGENT_ID}"' in form
        assert f'value="{card.citizen_id}"' in form
        assert re.search(r'name="scope" value="ss_loss.report_formal" checked', form)
