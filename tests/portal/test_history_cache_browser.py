"""Back after the session ended shows no personal data from htmx's history cache (the brief's attack on sessions).

Found: the insurance page's filter pushes its URL (hx-push-url); htmx kept a copy of every page it left in the
tab's sessionStorage (57 KB: employers, months, amounts) and, on Back, put it on screen without asking the
server. A cardholder who left the portal open until the session had ended let the next person at the screen
press Back and read their records; the copy also stayed in the tab after signing out. base.html's htmx-config
now keeps no history cache and reloads from the server on Back."""

from __future__ import annotations

import pytest

from sscard.core.roles import SYSTEM_ACTOR
from sscard.services import insurance
from tests.portal.test_portal_browser import sign_in_changed

pytestmark = pytest.mark.browser
EMPLOYER = "杭州西湖宏远科技有限公司"


def test_back_after_the_session_ended_shows_the_login_page_not_a_cached_copy_of_the_records(live_server, page,
                                                                                            city, app):
    card = city.issued_card("孙悟空")
    for month in ("2024-05", "2025-05"):
        insurance.record_month(app, SYSTEM_ACTOR, card.person_id, month, "91330106MA2H000001", EMPLOYER, 600_000)
    sign_in_changed(page, live_server.url, card)
    page.goto(live_server.url + "/portal/insurance")
    assert EMPLOYER in page.locator("main").inner_text()
    page.locator("form.portal-filter select").first.select_option("2025")  # htmx swaps and pushes the URL
    page.wait_for_url("**/portal/insurance?year=2025*")
    assert not page.evaluate("sessionStorage.getItem('htmx-history-cache')")  # no copy kept in the tab
    page.context.clear_cookies()  # the session is over (as after the idle timeout); the page stays open
    page.go_back()
    page.wait_for_url("**/portal/login*")
    assert EMPLOYER not in page.locator("main").inner_text()
