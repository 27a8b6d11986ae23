"""Issue 13 in Chromium: a signed-in console page works under the Content-Security-Policy (htmx included),
the browser reports no violation, and Secure cookies (the default) work on http://127.0.0.1 too."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sscard.core.policy import load_policy
from sscard.services.app import build_app
from tests.browser import LiveServer, screenshot
from tests.console.helpers import poa
from tests.support import STAFF_PASSWORD, City

pytestmark = pytest.mark.browser

WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def test_a_signed_in_console_page_with_htmx_works_under_the_csp_without_violations(settings, clock, page):
    app = build_app(replace(settings, cookie_secure=True), clock=clock, policy=load_policy(), pool_size=5)
    server = LiveServer(app)
    try:
        city = City(app)
        card = city.issued_card("张三")
        p = poa(city, card)
        console: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text} ({m.location.get('url')})"))
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
        page.add_init_script(WATCH_CSP)

        page.goto(server.url + "/console/login")
        page.fill("input[name=username]", "clerk")
        page.fill("input[name=password]", STAFF_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(server.url + "/console")
        cookies = {c["name"]: c for c in page.context.cookies()}
        assert cookies["sscard_staff"]["secure"] and cookies["sscard_staff"]["httpOnly"]
        assert cookies["sscard_staff"]["sameSite"] == "Strict"

        page.goto(f"{server.url}/console/persons/{card.person_id}")
        assert page.evaluate("typeof htmx") == "object"
        assert page.evaluate("htmx.config.includeIndicatorStyles") is False
        assert page.evaluate("htmx.config.allowEval") is False
        assert page.locator("head style").count() == 0  # htmx injected no <style>

        # revoke the power of attorney: an htmx POST (hx-confirm, hx-headers with the CSRF token, hx-select)
        page.on("dialog", lambda d: d.accept())
        with page.expect_request(f"**/console/attorneys/{p['id']}/revoke") as sent:
            page.click(f"form[action='/console/attorneys/{p['id']}/revoke'] button")
        assert sent.value.headers.get("hx-request") == "true"
        assert sent.value.headers.get("x-csrf-token")
        page.wait_for_selector("#attorneys .poa-revoked")
        assert page.url.endswith(f"/console/persons/{card.person_id}")  # swapped in place, no navigation
        screenshot(page, "console-under-csp")

        assert page.evaluate("window.__csp") == []
        # Chromium reports each refusal in the console ("Refused to ... Content Security Policy ..."); the
        # only error allowed is the browser's own /favicon.ico request (there is none)
        errors = [m for m in console if m.startswith(("error", "pageerror")) and "favicon.ico" not in m]
        assert not [m for m in console if "Content Security Policy" in m] and not errors, console
    finally:
        server.stop()
        app.close()
