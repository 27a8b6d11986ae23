"""The portal's loss steps by keyboard alone (session 27's browser probe): after htmx swapped in the confirmation,
the focus fell to <body>, so a keyboard or screen-reader user started again at the top of the page, eight menu
links away from the step they had asked for, and heard nothing of it; and the confirmation had no pause for a
key pressed twice, the guard the bank counter's confirm steps have (session 25). Now the focus goes where the
work continues (the confirm button, the result, the refusal, the step's button again after "no"), and an Enter
that reaches the confirmation in its first moments does not confirm it."""

from __future__ import annotations

import pytest

from tests.portal.test_portal_issue17_browser import count_operation, ready_holder, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def phone_page(browser, live_server):
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def focused(page) -> dict:
    return page.evaluate("""() => { const e = document.activeElement;
        return {tag: e.tagName, text: (e.textContent || '').trim(), role: e.getAttribute('role') || ''}; }""")


def settle_on(page, test: str, seconds: float = 3.0) -> None:
    """Wait for the focus to land (polled with evaluate: the site's CSP refuses wait_for_function's eval)."""
    for _ in range(int(seconds * 10)):
        if page.evaluate(f"() => {{ const e = document.activeElement; return {test}; }}"):
            return
        page.wait_for_timeout(100)


def test_a_loss_by_keyboard_keeps_the_focus_on_each_step_and_a_double_enter_confirms_nothing(
        live_server, phone_page, city, app):
    card = ready_holder(city, app)
    page = phone_page
    sign_in(page, live_server.url, card.citizen_id)
    page.goto(live_server.url + "/portal/loss")
    page.focus("form[action='/portal/loss/report'] button")
    page.keyboard.press("Enter")
    page.get_by_role("alertdialog").wait_for()
    settle_on(page, "e.tagName === 'BUTTON'")
    assert focused(page)["text"] == "确认挂失"  # the step asked for, not the top of the page
    page.keyboard.press("Enter")  # the same key again at once: a double press, not a reading
    page.wait_for_timeout(300)
    assert count_operation(app, "ss_loss.report_temporary") == 0
    assert page.get_by_role("alertdialog").is_visible()

    page.wait_for_timeout(900)
    page.keyboard.press("Enter")  # read, then confirmed
    page.get_by_role("status").wait_for()
    settle_on(page, "e.getAttribute('role') === 'status'")
    assert "已办理临时挂失" in focused(page)["text"]
    assert count_operation(app, "ss_loss.report_temporary") == 1

    page.focus("form[action='/portal/loss/cancel'] button")
    page.keyboard.press("Enter")
    page.get_by_role("alertdialog").wait_for()
    settle_on(page, "e.tagName === 'BUTTON'")
    assert focused(page)["text"] == "确认解除挂失"
    page.focus("#loss-panel a.button.secondary")
    page.wait_for_timeout(900)  # (the step's pause holds every Enter in it, "no" too)
    page.keyboard.press("Enter")  # "no": back to the panel, on its button again
    page.get_by_role("alertdialog").wait_for(state="detached")
    settle_on(page, "e.tagName === 'BUTTON'")
    assert focused(page)["text"] == "解除临时挂失"
    assert count_operation(app, "ss_loss.cancel") == 0
