"""In Chromium: a refusal about a field is tied to that field, on every surface by the one refusal macro and
sscard.js: aria-invalid="true", aria-describedby naming the message, and the focus (the UX tester's finding:
errors were not tied to their fields, and the portal's weak-password error pointed at the OLD password)."""

from __future__ import annotations

import pytest

from tests.bank_console.test_browser import sign_in as bank_sign_in
from tests.console.test_console_browser import _login as console_login
from tests.portal.helpers import NEW_QUERY_PASSWORD
from tests.portal.test_portal_browser import serious_axe_violations
from tests.portal.test_portal_issue17_browser import ready_holder, sign_in

pytestmark = pytest.mark.browser


def _tied(page, field: str, message: str) -> None:
    assert page.get_attribute(field, "aria-invalid") == "true"
    assert message in (page.get_attribute(field, "aria-describedby") or "").split()
    assert page.evaluate("s => document.activeElement === document.querySelector(s)", field)


def test_a_weak_new_portal_password_is_tied_to_the_new_password_field_not_the_old(live_server, page, city, app):
    card = ready_holder(city, app)
    sign_in(page, live_server.url, card.citizen_id)
    page.goto(live_server.url + "/portal/password")
    page.fill("#q-old", NEW_QUERY_PASSWORD)
    page.fill("#q-new", "111111")
    page.fill("#q-again", "111111")
    page.click("form[action='/portal/password/query'] button")
    page.wait_for_selector("#q-error")
    _tied(page, "#q-new", "q-error")
    assert page.get_attribute("#q-new", "aria-describedby").split() == ["q-error", "q-rule"]  # the rule still read
    assert page.get_attribute("#q-old", "aria-invalid") is None
    assert "q-error" not in (page.get_attribute("#q-old", "aria-describedby") or "")
    assert not serious_axe_violations(page)
    page.fill("#q-new", "80461357")  # typed again: no longer marked invalid
    assert page.get_attribute("#q-new", "aria-invalid") is None


def test_a_wrong_id_at_the_windows_identity_check_is_tied_to_the_id_field(live_server, page, city, app):
    card = city.issued_card()
    console_login(page, live_server)
    page.goto(f"{live_server.url}/console/persons/{card.person_id}")
    page.fill("#identity input[name=citizen_id]", "110101199001011237")
    page.click("text=核验并开始办理")
    page.wait_for_selector("[role=alert][data-error-for]")
    alert = page.get_attribute("[role=alert][data-error-for]", "id")
    _tied(page, "#identity input[name=citizen_id]", alert)
    assert not serious_axe_violations(page)


def test_a_mistyped_card_number_at_the_bank_counter_is_tied_to_its_field_after_an_htmx_answer(
        live_server, page, city):
    bank_sign_in(page, live_server)
    page.fill("input[name=pan]", "62220")
    page.click("button:has-text('查询账户')")
    page.wait_for_selector("[role=alert][data-error-for]")
    _tied(page, "input[name=pan]", page.get_attribute("[role=alert][data-error-for]", "id"))
