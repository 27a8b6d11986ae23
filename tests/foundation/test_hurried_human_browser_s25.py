"""Session 25's browser probe, as a hurried clerk, teller and cardholder use the pages in Chromium.

- A page whose token went stale (the same user signed in again in another tab, or opened a second login
  page) answered a form with a bare plain-text "CSRF check failed / 请求校验失败" in both languages, and an
  htmx form with nothing at all: the button came back and the clerk did not know that nothing was done.
  Now it is a page of the site in the user's language, and on an htmx form the message is shown and
  announced where a lost answer is (#net-status), by sscard.js for every 4xx that htmx does not swap.
- A refused lookup or identity check at the window emptied the ID the clerk had typed (18 characters to
  type again); now the console keeps what was sent (never a PIN or password) on every refused form."""

from __future__ import annotations

import pytest

from sscard.services import banking
from tests.bank_console.test_browser import active_account, amount_typed
from tests.support import STAFF_PASSWORD

pytestmark = pytest.mark.browser


def _console_login(page, server, user: str = "clerk") -> None:
    page.goto(server.url + "/console/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/console")


def _sign_in_again_in_another_tab(page, sign_in_there) -> None:
    """The same browser, a second tab: sign out, sign in again (a new session, a new page token)."""
    other = page.context.new_page()
    sign_in_there(other)
    other.close()


def test_a_stale_htmx_form_says_in_words_that_nothing_was_done_and_changes_nothing(city, app, live_server, page):
    card = active_account(city, app)
    amount_typed(page, live_server, card, "10")
    _sign_in_again_in_another_tab(page, lambda other: sign_in_relogged(other, live_server))

    page.click("button:has-text('下一步：核对')")
    box = page.locator("#net-status")
    box.wait_for(state="visible")
    said = box.inner_text()
    assert "没有办理" in said and "刷新" in said and "CSRF" not in said
    assert box.get_attribute("role") == "alert"
    assert page.evaluate("document.activeElement.id") == "net-status"
    assert page.input_value("input[name=amount]") == "10"  # the typed amount is still there
    assert banking.statement(app, city.actor("teller"), card.pan)["balance_fen"] == 0


def sign_in_relogged(page, server) -> None:
    """A signed-in browser's second tab signs in again: the login page, then the counter."""
    page.goto(f"{server.url}/bank/login")
    page.fill("input[name=username]", "teller")
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/bank")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_stale_plain_form_answers_a_page_of_the_site_in_the_users_language(city, app, live_server, browser,
                                                                             lang):
    card = city.issued_card("李四")
    ctx = browser.new_context(locale="en-US" if lang == "en" else "zh-CN")
    try:
        page = ctx.new_page()
        _console_login(page, live_server)
        page.fill("input[name=query]", card.citizen_id)
        _sign_in_again_in_another_tab(page, lambda other: _console_login(other, live_server))
        page.press("input[name=query]", "Enter")
        page.wait_for_load_state()
        alert = page.locator("[role=alert]")
        said = alert.inner_text()
        assert "CSRF" not in page.content()
        if lang == "en":
            assert "not done" in said and not any("\u4e00" <= ch <= "\u9fff" for ch in said)
        else:
            assert "没有办理" in said
        assert page.locator("a[data-reopen]").get_attribute("href") == "/console"
    finally:
        ctx.close()


def test_a_login_page_opened_twice_signs_in_from_the_first_or_says_why_not(city, live_server, page):
    first = page
    first.goto(live_server.url + "/console/login")
    second = page.context.new_page()
    second.goto(live_server.url + "/console/login")  # its token replaces the first page's
    first.fill("input[name=username]", "clerk")
    first.fill("input[name=password]", STAFF_PASSWORD)
    first.click("button[type=submit]")
    first.wait_for_load_state()
    assert "CSRF" not in first.content()
    assert "没有办理" in first.locator("[role=alert]").inner_text()
    first.click("a[data-reopen]")
    first.wait_for_url(live_server.url + "/console/login")
    first.fill("input[name=username]", "clerk")
    first.fill("input[name=password]", STAFF_PASSWORD)
    first.click("button[type=submit]")
    first.wait_for_url(live_server.url + "/console")


def test_a_refused_lookup_and_identity_check_keep_the_id_the_clerk_typed(city, app, live_server, page):
    card = city.issued_card("王五")
    _console_login(page, live_server)
    wrong = card.citizen_id[:-1] + ("0" if card.citizen_id[-1] != "0" else "1")  # a bad check digit
    page.fill("input[name=query]", wrong)
    page.press("input[name=query]", "Enter")
    page.wait_for_selector("[role=alert]")
    assert page.input_value("input[name=query]") == wrong
    assert page.evaluate("document.activeElement.name") == "query"

    page.goto(f"{live_server.url}/console/persons/{card.person_id}")
    page.fill("#identity input[name=citizen_id]", wrong)
    page.click("#identity button[type=submit]")
    page.wait_for_selector("[role=alert]")
    assert page.input_value("#identity input[name=citizen_id]") == wrong
    assert page.evaluate("document.activeElement.name") == "citizen_id"


def test_a_slip_shown_at_the_counter_prints_without_the_sites_bar_menus_and_buttons(city, app, live_server, page):
    card = active_account(city, app)
    amount_typed(page, live_server, card, "3")
    page.click("button:has-text('下一步：核对')")
    page.click("button:has-text('确认存款')")
    page.wait_for_selector("[data-slip]")
    page.emulate_media(media="print")
    for chrome in ("header.top", "nav.top-nav", "footer.foot", "[data-action=slip-pdf]", "button:has-text('退出登录')"):
        assert not page.locator(chrome).first.is_visible(), chrome
    assert page.inner_text("[data-slip] [data-field=capitals]") == "叁元整"
