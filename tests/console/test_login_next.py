"""A session that ended mid-form: the sign-in goes back to the page the form was on (`next`, carried from the
redirect to the login page in a cookie of the login page's path, then in the login form), on the window
console, the bank counter and the portal; only ever a path of this app in the login's own area."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from sscard.composition import create_app
from sscard.services import websession
from sscard.web.security import safe_next
from tests.support import STAFF_PASSWORD

LOGIN_TOKEN = re.compile(r'name="login_token" value="([^"]+)"')
NEXT_FIELD = re.compile(r'<input type="hidden" name="next" value="([^"]*)">')


@pytest.mark.parametrize("attempt", [
    "//evil.com", "https://evil.com", "/\\evil.com", "javascript:alert(1)", "%2F%2Fevil.com", "/%2F/evil.com",
    "/%5Cevil.com", "/%252F/evil.com", "http:/evil.com", "/console/../\\evil.com", " /console", "/console\t",
    "/console/login", "/console/logout", "/bank/account", "/portal/card", "", None,
])
def test_a_next_that_is_not_a_page_of_this_console_is_ignored(attempt):
    assert safe_next(attempt, "/console") is None


def test_a_next_that_is_a_page_of_this_console_is_kept():
    assert safe_next("/console/visits/3", "/console") == "/console/visits/3"
    assert safe_next("/console/report?day=2026-01-02", "/console") == "/console/report?day=2026-01-02"
    assert safe_next("/console", "/console") == "/console"


def _login(client: TestClient, area: str, next_value: str | None = None):
    page = client.get(f"/{area}/login")
    data = {"login_token": LOGIN_TOKEN.search(page.text).group(1), "username": "clerk" if area == "console" else "teller",
            "password": STAFF_PASSWORD}
    shown = NEXT_FIELD.search(page.text)
    if next_value is not None:
        data["next"] = next_value
    elif shown:
        data["next"] = shown.group(1)
    return page, client.post(f"/{area}/login", data=data, follow_redirects=False)


def test_a_form_sent_after_the_session_ended_signs_in_again_back_to_its_page(app, city):
    card = city.issued_card()
    with TestClient(create_app(app)) as client:
        _, signed = _login(client, "console")
        assert signed.status_code == 303 and signed.headers["location"] == "/console"
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console").text).group(1)
        visit = client.post(f"/console/persons/{card.person_id}/identity-check",
                            data={"csrf_token": csrf, "presenter": "cardholder", "citizen_id": card.citizen_id},
                            follow_redirects=False).headers["location"]
        websession.logout(app, client.cookies.get("sscard_staff"))  # the session ends (idle, another tab)

        sent = client.post(f"{visit}/replace", data={"csrf_token": csrf, "reason": "damaged"}, follow_redirects=False)
        assert sent.status_code == 303 and sent.headers["location"] == "/console/login?unsent=1"  # as it was
        assert "sscard_next=" in sent.headers["set-cookie"] and "Path=/console/login" in sent.headers["set-cookie"]
        page, back = _login(client, "console")
        assert NEXT_FIELD.search(page.text).group(1) == visit
        assert back.status_code == 303 and back.headers["location"] == visit
        assert 'sscard_next=""' in back.headers["set-cookie"] or "sscard_next=;" in back.headers["set-cookie"]


def test_an_htmx_request_after_the_session_ended_goes_back_to_its_page(app, city):
    with TestClient(create_app(app)) as client:
        answer = client.post("/bank/account", data={"pan": "x"}, headers={
            "HX-Request": "true", "HX-Current-URL": "http://testserver/bank/statement"}, follow_redirects=False)
        assert answer.status_code == 401 and answer.headers["HX-Redirect"] == "/bank/login?unsent=1"
        _, back = _login(client, "bank")
        assert back.headers["location"] == "/bank/statement"


@pytest.mark.parametrize("attempt", ["//evil.com", "https://evil.com", "/\\evil.com", "javascript:alert(1)",
                                     "/%2F/evil.com", "%2F%2Fevil.com", "/portal/card"])
def test_a_login_sent_with_another_site_as_next_goes_to_the_console_home(app, city, attempt):
    with TestClient(create_app(app)) as client:
        page = client.get("/console/login", params={"next": attempt})
        assert NEXT_FIELD.search(page.text) is None
        _, signed = _login(client, "console", attempt)
        assert signed.status_code == 303 and signed.headers["location"] == "/console"


def test_a_login_page_opened_with_a_page_of_its_console_as_next_goes_there(app, city):
    with TestClient(create_app(app)) as client:
        page = client.get("/console/login", params={"next": "/console/production"})
        assert NEXT_FIELD.search(page.text).group(1) == "/console/production"
        _, signed = _login(client, "console", NEXT_FIELD.search(page.text).group(1))
        assert signed.headers["location"] == "/console/production"


def test_the_portal_signs_in_again_back_to_the_page_the_session_ended_on(app, city):
    from sscard.services import passwords
    from tests.portal.helpers import NEW_QUERY_PASSWORD

    card = city.issued_card()
    passwords.change_query_password(app, city.cardholder(card), card.card_number[-6:], NEW_QUERY_PASSWORD,
                                    NEW_QUERY_PASSWORD)
    for attempt, lands in ((None, "/portal/insurance?year=2025"), ("//evil.com", "/portal/card")):
        with TestClient(create_app(app)) as client:
            gone = client.get("/portal/insurance?year=2025", follow_redirects=False)
            assert gone.status_code == 303 and gone.headers["location"] == "/portal/login"  # as it was
            page = client.get("/portal/login")
            shown = NEXT_FIELD.search(page.text).group(1)
            assert shown == "/portal/insurance?year=2025"
            pre = re.search(r'name="pre_token" value="([^"]+)"', page.text).group(1)
            signed = client.post("/portal/login", data={"pre_token": pre, "login": card.citizen_id,
                                                        "password": NEW_QUERY_PASSWORD, "next": attempt or shown},
                                 follow_redirects=False)
            assert signed.status_code == 303 and signed.headers["location"] == lands
