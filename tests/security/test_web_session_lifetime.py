"""A web session ends at its absolute lifetime however busy it is kept (the brief's attack on sessions).

Found: only idleness ended a session. A console or portal session used every few minutes (a desk left
signed in all week, a stolen cookie replayed by a script every 9 minutes) stayed signed in for ever."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from sscard.composition import create_app
from sscard.core.roles import Channel
from sscard.services import websession
from tests.portal.helpers import login_changed
from tests.support import STAFF_PASSWORD


def _kept_busy(clock, until: timedelta, every: timedelta, touch) -> bool:
    """Touch the session every `every` (well within its idle timeout) until `until` has passed since login;
    whether the last touch still found it signed in."""
    waited, alive = timedelta(0), True
    while waited < until and alive:
        clock.advance(seconds=every.total_seconds())
        waited += every
        alive = touch()
    return alive


def test_a_staff_session_used_every_ten_minutes_ends_ten_hours_after_login(app, city, clock):
    web = websession.staff_login(app, "clerk", STAFF_PASSWORD, Channel.WINDOW)
    touch = lambda: websession.resolve(app, web.token, "staff") is not None  # noqa: E731
    assert _kept_busy(clock, timedelta(hours=10), timedelta(minutes=10), touch)  # a working day: still signed in
    assert not _kept_busy(clock, timedelta(minutes=10), timedelta(minutes=10), touch)
    assert websession.resolve(app, web.token, "staff") is None  # ended, not only refused once


def test_a_portal_session_kept_busy_sends_the_cardholder_to_login_an_hour_after_login(app, city, clock):
    card = city.issued_card()
    with TestClient(create_app(app)) as browser:
        login_changed(browser, card)
        def touch() -> bool:
            return browser.get("/portal/card", follow_redirects=False).status_code == 200
        assert _kept_busy(clock, timedelta(minutes=55), timedelta(minutes=5), touch)
        assert not _kept_busy(clock, timedelta(minutes=10), timedelta(minutes=5), touch)
        gone = browser.get("/portal/card", follow_redirects=False)
        assert gone.status_code == 303 and gone.headers["location"] == "/portal/login"


def test_a_second_login_in_the_same_browser_ends_the_session_it_replaces_at_the_server(app, city):
    """The browser probe's finding: signing in again in a browser that held a live session only replaced its
    cookie there; the old session stayed good at the server until its idle timeout, for any copy of the old
    cookie. The login that sets a new session's cookie ends the one whose cookie came with it."""
    import re

    def sign_in(browser: TestClient) -> str:
        page = browser.get("/console/login")
        token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
        r = browser.post("/console/login", data={"login_token": token, "username": "clerk",
                                                 "password": STAFF_PASSWORD}, follow_redirects=False)
        assert r.status_code == 303
        return browser.cookies["sscard_staff"]

    with TestClient(create_app(app)) as browser, TestClient(create_app(app)) as copy:
        first = sign_in(browser)
        copy.cookies.set("sscard_staff", first)
        assert copy.get("/console", follow_redirects=False).status_code == 200  # a copy of the cookie works
        second = sign_in(browser)
        assert second != first
        assert browser.get("/console", follow_redirects=False).status_code == 200
        assert copy.get("/console", follow_redirects=False).status_code == 303  # the first session ended
        assert websession.resolve(app, first, "staff") is None
