"""Helpers for the bank-outlet console tests: a city, signed-in counter clients, forms as a teller fills them."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from sscard.composition import create_app
from tests.support import STAFF_PASSWORD, City

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
OP_KEY_RE = re.compile(r'name="op_key" value="([^"]+)"')
LOGIN_RE = re.compile(r'name="login_token" value="([^"]+)"')
DESK_REF_RE = re.compile(r'name="(desk_ref|pan_ref)" value="([^"]+)"')
GOOD_PIN = "730215"  # not weak: no run, no repeat, not from the test people's birth dates or IDs


class Counter:
    """A browser-less teller: a TestClient with the bank session cookie and the page's CSRF token."""

    def __init__(self, client: TestClient, username: str | None):
        self.client = client
        self.username = username
        self.csrf = ""
        if username:
            self.login(username)

    def login(self, username: str, password: str = STAFF_PASSWORD):
        page = self.client.get("/bank/login")
        token = LOGIN_RE.search(page.text).group(1)
        answer = self.client.post("/bank/login", data={"login_token": token, "username": username,
                                                       "password": password}, follow_redirects=False)
        if answer.status_code == 303:
            home = self.client.get("/bank")
            self.csrf = CSRF_RE.search(home.text).group(1)
        return answer

    def get(self, path: str, **kw):
        return self.client.get(path, follow_redirects=False, **kw)

    def post(self, path: str, data: dict | None = None, *, htmx: bool = False, csrf: bool = True, **kw):
        body = {"csrf_token": self.csrf, **(data or {})} if csrf else dict(data or {})
        if csrf and not {"pan", "pan_ref", "desk_ref"} & set(body):
            # as a browser does: the form was on the page, naming the customer it was shown for (a desk form
            # without its desk_ref acts on nobody); a test that means to leave it out passes desk_ref=""
            shown = DESK_REF_RE.search(self.client.get(path, follow_redirects=False).text)
            if shown:
                body[shown.group(1)] = shown.group(2)
        headers = {"HX-Request": "true"} if htmx else {}
        return self.client.post(path, data=body, headers=headers, follow_redirects=False, **kw)


@pytest.fixture
def bank_city(app) -> City:
    return City(app)


@pytest.fixture
def counter(app, bank_city):
    """counter("teller") -> a signed-in Counter; counter(None) -> nobody signed in."""
    clients: list[TestClient] = []

    def make(username: str | None = "teller", lang: str | None = None) -> Counter:
        client = TestClient(create_app(app))
        client.__enter__()
        if lang:
            client.cookies.set("lang", lang)
        clients.append(client)
        return Counter(client, username)

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def text_of(html: str) -> str:
    """The page's visible text, roughly (tags dropped, spaces squeezed)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
