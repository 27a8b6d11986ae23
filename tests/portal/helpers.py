"""Portal test helpers: log in through the login form (with its pre-session token)."""

from __future__ import annotations

import re

NEW_QUERY_PASSWORD = "80468213"  # digits only: the same password identifies a 12333 caller


def pre_token(client) -> str:
    page = client.get("/portal/login")
    return re.search(r'name="pre_token" value="([^"]+)"', page.text).group(1)


def login(client, login_name: str, password: str, follow: bool = False):
    token = pre_token(client)
    return client.post("/portal/login", data={"login": login_name, "password": password, "pre_token": token},
                       follow_redirects=follow)


def csrf(page_text: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page_text).group(1)


def initial_password(card_number: str) -> str:
    return card_number[-6:]


def login_changed(client, card) -> None:
    """Log in with the initial password and do the forced change, leaving the session signed in."""
    response = login(client, card.citizen_id, initial_password(card.card_number))
    assert response.headers["location"] == "/portal/password"
    page = client.get("/portal/password")
    done = client.post("/portal/password/query", data={
        "csrf_token": csrf(page.text), "old": initial_password(card.card_number),
        "new": NEW_QUERY_PASSWORD, "new_again": NEW_QUERY_PASSWORD}, follow_redirects=False)
    assert done.status_code == 303, done.text
