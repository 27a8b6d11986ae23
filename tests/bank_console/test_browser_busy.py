"""In Chromium: a slow answer is shown while it is awaited, on every htmx form by sscard.js (the UX tester's
finding: the button gave no sign and clerks clicked again): the form is aria-busy, a visible "处理中…" says
so next to its button, and its buttons are disabled until the answer, or the lost-answer alert, comes."""

from __future__ import annotations

import pytest

from sscard.services import banking
from tests.bank_console.test_browser import active_account, to_the_deposits_confirm_step
from tests.browser import screenshot
from tests.console.test_console_browser import _login as console_login

pytestmark = pytest.mark.browser

CONFIRM = "button[data-action=confirm]"


def _hold_confirmed(page, path: str, marker: str) -> list:
    """Requests to `path` whose body has `marker` are held (their answer is slow) until the test lets them go."""
    held: list = []

    def hold(route):
        if route.request.method == "POST" and marker in (route.request.post_data or ""):
            held.append(route)
        else:
            route.continue_()

    page.route(path, hold)
    return held


def test_a_slow_answer_marks_the_form_busy_says_working_and_holds_its_buttons_until_it_comes(
        bank_city, app, live_server, page):
    card = active_account(bank_city, app)
    to_the_deposits_confirm_step(page, live_server, card, "12.34")
    held = _hold_confirmed(page, "**/bank/deposit", "step=confirmed")
    page.click(CONFIRM)
    page.wait_for_selector("form[aria-busy=true] [data-busy]")
    form = page.locator("form[aria-busy=true]")
    note = form.locator("[data-busy]")
    assert note.is_visible() and note.inner_text() == "处理中…" and note.get_attribute("role") is None
    assert form.locator(CONFIRM).is_disabled() and form.locator("button[data-action=edit]").is_disabled()
    screenshot(page, "bank-busy")
    page.evaluate("() => document.querySelector('button[data-action=confirm]').click()")  # clicked again: nothing
    page.wait_for_timeout(300)
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_selector("[data-slip]")
    assert page.locator("[aria-busy=true]").count() == 0 and page.locator("[data-busy]").count() == 0
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["balance_fen"] == 1234


def test_a_lost_answer_ends_the_busy_state_and_the_same_button_is_enabled_again(bank_city, app, live_server, page):
    card = active_account(bank_city, app)
    to_the_deposits_confirm_step(page, live_server, card, "5")
    held = _hold_confirmed(page, "**/bank/deposit", "step=confirmed")
    page.click(CONFIRM)
    page.wait_for_selector("form[aria-busy=true]")
    held[0].abort("connectionreset")
    page.wait_for_selector("#net-status:not([hidden])")
    assert page.locator("form[aria-busy=true]").count() == 0 and page.locator("[data-busy]").count() == 0
    assert page.locator(CONFIRM).is_enabled()


def test_every_htmx_form_gets_it_the_windows_formal_loss_too(live_server, page, city, app):
    card = city.issued_card()
    console_login(page, live_server)
    page.goto(f"{live_server.url}/console/persons/{card.person_id}")
    page.fill("#identity input[name=citizen_id]", card.citizen_id)
    page.click("text=核验并开始办理")
    page.wait_for_url("**/console/visits/*")
    held = _hold_confirmed(page, "**/formal-loss", "card_id")
    page.click("text=办理正式挂失")
    page.wait_for_selector("form[aria-busy=true] [data-busy]")
    assert page.locator("form[aria-busy=true] button").first.is_disabled()
    held[0].continue_()
    page.wait_for_selector("#confirm")
    assert page.locator("[aria-busy=true]").count() == 0
