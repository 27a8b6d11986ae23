"""Who may use the window console and the counter API: every route tried as every role.

The expected answer of each route for each caller is written out below. Pages: 303 to /console/login
(no usable staff session), 403 (signed-in staff who are not center staff, or a refusal such as another
center's receipt), or what a clerk would see. API: 401 without valid credentials, 403 for roles the
operation does not name and for another center's objects, otherwise the operation's own answer."""

from __future__ import annotations

import re
import secrets

import pytest
from fastapi.testclient import TestClient

from sscard.composition import create_app
from sscard.core.roles import Channel
from sscard.services import attorney, cards, loss, production, replacement, websession
from tests.support import STAFF_PASSWORD

from .helpers import AGENT_ID, poa

ROLES = ["cardholder", "clerk", "clerk2", "csup", "teller", "bsup", "operator", "terminal", "nobody", "forged"]
L = "login"  # redirected to the console's login page


def _row(default_other, **by_role):
    """Expected answers: center staff as given; cardholder/terminal/nobody/forged per `default_other`."""
    row = dict(default_other)
    row.update(by_role)
    return row


PAGE_OUTSIDERS = {"cardholder": L, "teller": 403, "bsup": 403, "operator": 403, "terminal": L, "nobody": L,
                  "forged": L}
API_OUTSIDERS = {"cardholder": 403, "teller": 403, "bsup": 403, "operator": 403, "terminal": 403, "nobody": 401,
                 "forged": 401}


@pytest.fixture
def world(city, app):
    clerk = city.actor("clerk")
    a = city.issued_card("张三")
    lost = city.issued_card("王五")
    loss.report_formal_loss(app, clerk, lost.card_number, lost.citizen_id)
    r = city.issued_card("赵六")
    applied = replacement.apply(app, clerk, r.card_number, "damaged", r.citizen_id, payment="cash")
    batch = production.start_batch(app, clerk, "C01")["batch"]
    production.complete_batch(app, clerk, batch)
    cards.collect_card(app, clerk, applied["card_number"], r.citizen_id)
    valid = poa(city, a)
    revoked = poa(city, a)
    attorney.revoke(app, clerk, revoked["id"])
    visit = attorney.identity_check(app, clerk, a.person_id, a.citizen_id)
    from sqlalchemy import select

    from sscard.models.foundation import Card

    with app.db.session() as s:
        new_card_id = s.scalar(select(Card.id).where(Card.card_number == applied["card_number"]))
    return {
        "a": a, "lost": lost, "r": r, "new_card": applied["card_number"], "new_card_id": new_card_id,
        "receipt": applied["receipt_no"], "batch": batch, "poa": valid["id"], "revoked": revoked["id"],
        "visit": visit["id"],
    }


def _web_sessions(app, city, world) -> dict[str, dict]:
    """Cookie (and CSRF token) per role, as each would arrive at a console page."""
    out: dict[str, dict] = {}
    for user, channel in (("clerk", Channel.WINDOW), ("clerk2", Channel.WINDOW), ("csup", Channel.WINDOW),
                          ("teller", Channel.BANK_OUTLET), ("bsup", Channel.BANK_OUTLET),
                          ("operator", Channel.WINDOW)):
        web = websession.staff_login(app, user, STAFF_PASSWORD, channel)
        out[user] = {"headers": {"Cookie": f"sscard_staff={web.token}"}, "csrf": web.csrf}
    holder = websession.cardholder_login(app, world["a"].card_number, world["a"].card_number[-6:])
    out["cardholder"] = {"headers": {"Cookie": f"sscard_portal={holder.token}"}, "csrf": holder.csrf}
    out["terminal"] = {"headers": {"Authorization": f"Bearer {city.token(terminal='KIOSK-1')}"}, "csrf": ""}
    out["nobody"] = {"headers": {}, "csrf": ""}
    out["forged"] = {"headers": {"Cookie": f"sscard_staff={secrets.token_urlsafe(32)}"}, "csrf": "x"}
    return out


def _page_table(w) -> list[tuple[str, str, dict | None, dict]]:
    pid, a = w["a"].person_id, w["a"]
    same = _row(PAGE_OUTSIDERS, clerk=200, clerk2=200, csup=200)
    return [
        ("GET", "/console", None, same),
        ("GET", f"/console/persons/{pid}", None, same),
        ("GET", f"/console/visits/{w['visit']}", None, _row(PAGE_OUTSIDERS, clerk=200, clerk2=404, csup=404)),
        ("GET", "/console/production", None, same),
        ("GET", "/console/report", None, _row(PAGE_OUTSIDERS, clerk=403, clerk2=403, csup=200)),
        ("GET", "/console/report.csv", None, _row(PAGE_OUTSIDERS, clerk=403, clerk2=403, csup=200)),
        ("GET", f"/console/receipts/{w['receipt']}.pdf", None, _row(PAGE_OUTSIDERS, clerk=200, clerk2=403, csup=200)),
        ("GET", f"/console/persons/{w['r'].person_id}/cards/{w['new_card_id']}/collection-receipt.pdf", None,
         _row(PAGE_OUTSIDERS, clerk=200, clerk2=403, csup=200)),
        ("POST", "/console/find", {"query": a.citizen_id}, _row(PAGE_OUTSIDERS, clerk=303, clerk2=303, csup=303)),
        ("POST", f"/console/persons/{pid}/identity-check", {"presenter": "cardholder", "citizen_id": a.citizen_id},
         _row(PAGE_OUTSIDERS, clerk=303, clerk2=303, csup=303)),
        ("POST", f"/console/persons/{pid}/attorneys",
         {"agent_name": "李四", "agent_citizen_id": AGENT_ID, "scope": "card.collect", "valid_from": "2026-01-05",
          "valid_to": "2026-02-05", "document_ref": "WT-M"}, same),
        ("POST", f"/console/attorneys/{w['revoked']}/revoke", {}, _row(PAGE_OUTSIDERS, clerk=409, clerk2=409, csup=409)),
        ("POST", f"/console/visits/{w['visit']}/query-password", {},
         _row(PAGE_OUTSIDERS, clerk=200, clerk2=404, csup=404)),
        ("POST", "/console/production/start", {}, _row(PAGE_OUTSIDERS, clerk=404, clerk2=404, csup=404)),
        ("POST", f"/console/production/{w['batch']}/complete", {},
         _row(PAGE_OUTSIDERS, clerk=409, clerk2=403, csup=409)),
    ]


def _outcome(response) -> object:
    location = response.headers.get("location", "").split("?")[0]  # (a POST's: ?unsent=1, said on the page)
    if response.status_code == 303 and location.endswith("/console/login"):
        return L
    return response.status_code


def test_every_console_page_as_every_role(city, app, clock, world):
    sessions = _web_sessions(app, city, world)
    table = _page_table(world)
    got: dict = {}
    with TestClient(create_app(app)) as client:
        for method, path, form, expected in table:
            for role in ROLES:
                s = sessions[role]
                if method == "GET":
                    r = client.get(path, headers=s["headers"], follow_redirects=False)
                else:
                    r = client.post(path, data={**(form or {}), "csrf_token": s["csrf"]}, headers=s["headers"],
                                    follow_redirects=False)
                got[(path, role)] = (_outcome(r), expected[role])
        mismatches = {k: v for k, v in got.items() if v[0] != v[1]}
        assert not mismatches, mismatches

        # the clerk's session is refused without its CSRF token, and by another session's token
        clerk = sessions["clerk"]
        r = client.post("/console/find", data={"query": world["a"].citizen_id}, headers=clerk["headers"])
        assert r.status_code == 403
        r = client.post("/console/find", data={"query": world["a"].citizen_id, "csrf_token": sessions["csup"]["csrf"]},
                        headers=clerk["headers"])
        assert r.status_code == 403

        # after 16 idle minutes by the clock, every page sends the clerk back to the login page
        clock.advance(minutes=16)
        for method, path, form, _expected in table:
            if method == "GET":
                r = client.get(path, headers=clerk["headers"], follow_redirects=False)
            else:
                r = client.post(path, data={**(form or {}), "csrf_token": clerk["csrf"]}, headers=clerk["headers"],
                                follow_redirects=False)
            assert _outcome(r) == L, (path, r.status_code)


def test_console_login_admits_only_center_staff_and_logout_ends_the_session(app, city):
    # (the operator signs in too since session 28, for the staff accounts page only: tests/security/
    # test_staff_account_pages.py; every other window page refuses them, PAGE_OUTSIDERS)
    with TestClient(create_app(app)) as client:
        for user, status in (("teller", 403), ("operator", 303), ("clerk", 303)):
            page = client.get("/console/login")
            token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
            r = client.post("/console/login", data={"login_token": token, "username": user,
                                                    "password": STAFF_PASSWORD}, follow_redirects=False)
            assert r.status_code == status, user
        page = client.get("/console/login")
        token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
        r = client.post("/console/login", data={"login_token": token, "username": "clerk", "password": "wrong-pass"})
        assert r.status_code == 401 and "用户名或密码错误" in r.text
        r = client.post("/console/login", data={"login_token": "forged", "username": "clerk",
                                                "password": STAFF_PASSWORD})
        assert r.status_code == 403
        home = client.get("/console")
        assert home.status_code == 200
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', home.text).group(1)
        r = client.post("/console/logout", data={"csrf_token": csrf}, follow_redirects=False)
        assert r.status_code == 303
        assert _outcome(client.get("/console", follow_redirects=False)) == L


def _api_tokens(app, city, world) -> dict[str, dict]:
    out = {u: {"Authorization": f"Bearer {city.token(u)}"} for u in
           ("clerk", "clerk2", "csup", "teller", "bsup", "operator")}
    with TestClient(create_app(app)) as client:
        login = client.post("/api/v1/cardholder/login", json={"login": world["a"].card_number,
                                                              "password": world["a"].card_number[-6:]})
        out["cardholder"] = {"Authorization": f"Bearer {login.json()['token']}"}
    out["terminal"] = {"Authorization": f"Bearer {city.token(terminal='KIOSK-1')}"}
    out["nobody"] = {}
    out["forged"] = {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"}
    return out


def test_every_counter_api_operation_as_every_role(app, city, world):
    tokens = _api_tokens(app, city, world)
    a, lost = world["a"], world["lost"]
    center = _row(API_OUTSIDERS, clerk=200, clerk2=200, csup=200)
    created = _row(API_OUTSIDERS, clerk=201, clerk2=201, csup=201)
    own_center = _row(API_OUTSIDERS, clerk=200, clerk2=403, csup=200)
    base = "/api/v1/counter"
    table = [
        ("GET", f"{base}/persons?name=张三&birth_date=1980-05-17", None, {**center, "operator": 200}),
        ("GET", f"{base}/persons/{a.person_id}", None, center),
        ("GET", f"{base}/visits/{world['visit']}", None, _row(API_OUTSIDERS, clerk=200, clerk2=404, csup=404)),
        ("GET", f"{base}/persons/{a.person_id}/attorneys", None, center),
        ("GET", f"{base}/attorneys/{world['poa']}", None, center),
        ("GET", f"{base}/receipts/{world['receipt']}", None, own_center),
        ("GET", f"{base}/receipts/{world['receipt']}/pdf", None, own_center),
        ("GET", f"{base}/cards/{world['new_card']}/collection-receipt", None, own_center),
        ("GET", f"{base}/cards/{world['new_card']}/collection-receipt/pdf", None, own_center),
        ("GET", f"{base}/queue", None, center),
        ("GET", f"{base}/reports/day?center_code=C01", None,
         _row(API_OUTSIDERS, clerk=403, clerk2=403, csup=200, operator=200)),
        ("GET", f"{base}/reports/day?center_code=C01&format=csv", None,
         _row(API_OUTSIDERS, clerk=403, clerk2=403, csup=200, operator=200)),
        ("POST", f"{base}/identity-checks", {"person_id": a.person_id, "presented_citizen_id": a.citizen_id}, created),
        ("POST", f"{base}/attorneys", {"person_id": a.person_id, "agent_name": "李四", "agent_citizen_id": AGENT_ID,
                                       "scope": ["card.collect"], "valid_from": "2026-01-05",
                                       "valid_to": "2026-01-31", "document_ref": "WT-API"}, created),
        ("POST", f"{base}/attorneys/{world['revoked']}/revoke", {"reason": ""},
         _row(API_OUTSIDERS, clerk=409, clerk2=409, csup=409)),
        ("POST", f"{base}/replacements", {"card_number": lost.card_number, "reason": "damaged",
                                          "presented_citizen_id": lost.citizen_id, "payment": "cash"},
         _row(API_OUTSIDERS, clerk=409, clerk2=409, csup=409)),
        ("POST", f"{base}/replacements/waived", {"card_number": lost.card_number, "reason": "damaged",
                                                 "presented_citizen_id": lost.citizen_id, "waive_reason": "x"},
         _row(API_OUTSIDERS, clerk=403, clerk2=403, csup=409)),
        ("POST", f"{base}/production-batches/{world['batch']}/complete", None,
         _row(API_OUTSIDERS, clerk=409, clerk2=403, csup=409, operator=409)),
        ("POST", f"{base}/cards/{a.card_number}/ss-password/reset-by-agent",
         {"presented_citizen_id": a.citizen_id, "attorney_id": world["poa"], "agent_citizen_id": "12345"},
         _row(API_OUTSIDERS, clerk=422, clerk2=422, csup=422)),  # past the POA, the agent's ID is malformed
        ("POST", f"{base}/cards/{a.card_number}/collect", {"presented_citizen_id": a.citizen_id},
         _row(API_OUTSIDERS, clerk=409, clerk2=403, csup=409)),
    ]
    mismatches = {}
    with TestClient(create_app(app)) as client:
        for method, path, body, expected in table:
            for role in ROLES:
                if method == "GET":
                    r = client.get(path, headers=tokens[role])
                else:
                    r = client.post(path, json=body, headers=tokens[role])
                if r.status_code != expected[role]:
                    mismatches[(method, path, role)] = (r.status_code, expected[role], r.text[:120])
    assert not mismatches, mismatches
