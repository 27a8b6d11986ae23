"""Issue 13, what a bank's security review asks of the web layer: the same security headers on every
answer (pages, API, static files, errors, redirects), and every cookie HttpOnly, SameSite and Secure."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from sscard.composition import create_app
from sscard.config import Settings
from sscard.core.policy import load_policy
from sscard.core.roles import Channel
from sscard.services import websession
from sscard.services.app import build_app
from tests.portal.helpers import initial_password, login
from tests.support import STAFF_PASSWORD

CSP = ("default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


def _assert_hardened(response, *, cacheable: bool = False) -> None:
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    h = response.headers
    assert h.get("content-security-policy") == CSP, where
    assert h.get("x-content-type-options") == "nosniff", where
    assert h.get("referrer-policy") == "no-referrer", where
    assert h.get("x-frame-options") == "DENY", where
    assert len(h.get_list("content-security-policy")) == 1, where
    if cacheable:
        assert "no-store" not in h.get("cache-control", ""), where
    else:
        assert h.get("cache-control") == "no-store", where


def test_every_kind_of_answer_carries_the_security_headers(app, city):
    card = city.issued_card()
    clerk = websession.staff_login(app, "clerk", STAFF_PASSWORD, Channel.WINDOW)
    token = city.token("clerk")
    api = create_app(app)

    @api.get("/boom-for-test", include_in_schema=False)
    def boom():
        raise RuntimeError("a bug")

    with TestClient(api, raise_server_exceptions=False) as client:
        answers = [
            client.get("/"),
            client.get("/console/login"),
            client.get("/bank/login"),
            client.get("/portal/login"),
            client.get("/console", cookies={"sscard_staff": clerk.token}),  # a signed-in console page
            client.get(f"/api/v1/cards/{card.card_number}", headers={"Authorization": f"Bearer {token}"}),
            client.get(f"/api/v1/cards/{card.card_number}"),  # no token: 401
            client.post("/api/v1/cardholder/login", json={"login": "x"}),  # malformed: 422
            client.get("/no-such-page"),  # 404
            client.get("/portal/card", follow_redirects=False),  # redirect to the login page
            client.get("/lang/en", follow_redirects=False),  # redirect with a cookie
            client.get("/boom-for-test"),  # 500 from Starlette's error middleware
            client.get("/openapi.json"),
        ]
        statuses = [a.status_code for a in answers]
        assert statuses == [200, 200, 200, 200, 200, 200, 401, 422, 404, 303, 303, 500, 200], statuses
        assert "西湖区社保卡服务中心" in answers[4].text  # really signed in
        for answer in answers:
            _assert_hardened(answer)
        for path in ("/static/htmx.min.js", "/static/sscard.css"):
            static = client.get(path)
            assert static.status_code == 200
            _assert_hardened(static, cacheable=True)


def test_a_route_cannot_weaken_the_headers(app):
    from fastapi.responses import PlainTextResponse

    api = create_app(app)

    @api.get("/weak-for-test", include_in_schema=False)
    def weak():
        return PlainTextResponse("x", headers={"Content-Security-Policy": "default-src *", "Cache-Control": "max-age=9"})

    with TestClient(api) as client:
        _assert_hardened(client.get("/weak-for-test"))


def test_pages_have_no_inline_script_or_style_and_htmx_is_configured_for_the_csp(client):
    from pathlib import Path

    import sscard.web

    for template in (Path(sscard.web.__file__).parent / "templates").rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template  # only <script src=...>
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:|hx-on|js:", text), template
    page = client.get("/console/login").text
    config = re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", page).group(1)
    assert '"includeIndicatorStyles": false' in config and '"allowEval": false' in config


def test_the_api_docs_page_alone_may_load_swagger_from_its_cdn_with_its_own_script_hash(client):
    docs = client.get("/docs")
    csp = docs.headers["content-security-policy"]
    assert "https://cdn.jsdelivr.net" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    inline = re.findall(r"<script>(.*?)</script>", docs.text, re.S)
    assert inline, "FastAPI's Swagger page has one inline start-up script"
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp
    assert docs.headers["x-frame-options"] == "DENY" and docs.headers["cache-control"] == "no-store"
    assert "cdn.jsdelivr.net" not in client.get("/").headers["content-security-policy"]


def _set_cookies(response) -> list[str]:
    return response.headers.get_list("set-cookie")


@pytest.mark.parametrize("secure", [True, False])
def test_every_cookie_is_httponly_and_samesite_and_secure_by_the_setting(settings, clock, city, secure):
    card = city.issued_card()
    app = build_app(replace(settings, cookie_secure=secure), clock=clock, policy=load_policy(), pool_size=2)
    try:
        # https, so that the client keeps (and sends back) Secure cookies
        with TestClient(create_app(app), base_url="https://testserver") as client:
            cookies = []
            for path in ("/console/login", "/bank/login"):
                cookies += _set_cookies(client.get(path))
            signed_in = login(client, card.citizen_id, initial_password(card.card_number))
            assert signed_in.status_code == 303
            cookies += _set_cookies(signed_in)
            page = client.get("/portal/password")
            cookies += _set_cookies(client.post("/portal/logout", data={
                "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)},
                follow_redirects=False))
            lang = _set_cookies(client.get("/lang/en", follow_redirects=False))
        names = {c.split("=", 1)[0] for c in cookies + lang}
        assert {"sscard_console_login", "sscard_bank_login", "sscard_portal", "sscard_portal_pre", "lang"} <= names
        for cookie in cookies + lang:
            attrs = [a.strip().lower() for a in cookie.split(";")[1:]]
            assert "httponly" in attrs, cookie
            assert ("secure" in attrs) is secure, cookie
            assert ("samesite=lax" if cookie.startswith("lang=") else "samesite=strict") in attrs, cookie
    finally:
        app.close()


def test_cookies_are_secure_unless_the_operator_says_false(monkeypatch, tmp_path):
    monkeypatch.setenv("SSCARD_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("SSCARD_COOKIE_SECURE", raising=False)
    assert Settings.from_env().cookie_secure is True
    for text, value in (("false", False), ("0", False), ("true", True), ("ON", True)):
        monkeypatch.setenv("SSCARD_COOKIE_SECURE", text)
        assert Settings.from_env().cookie_secure is value
    monkeypatch.setenv("SSCARD_COOKIE_SECURE", "flase")  # a typo stops start-up, it does not turn Secure off
    with pytest.raises(ValueError, match="SSCARD_COOKIE_SECURE"):
        Settings.from_env()


def test_the_language_switch_returns_to_the_page_without_a_referer(client):
    """Referrer-Policy: no-referrer means no Referer: the switch link carries the page's path itself."""
    page = client.get("/bank/login")
    assert 'href="/lang/en?next=/bank/login"' in page.text
    back = client.get("/lang/en?next=/bank/login", follow_redirects=False)
    assert back.status_code == 303 and back.headers["location"] == "/bank/login"
    for elsewhere in ("//evil.example/x", "/\\evil.example", "https://evil.example/"):
        assert client.get("/lang/en", params={"next": elsewhere}, follow_redirects=False).headers["location"] == "/"
