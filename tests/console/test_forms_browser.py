"""The window's forms that the browser sends itself (not htmx) in Chromium, as a hurried clerk uses them:
a double click or Enter pressed twice sends one request, the form says it is busy, and Back finds it ready
again; a refusal about a field (a pasted bidirectional control) is shown next to that field."""

from __future__ import annotations

import pytest

from tests.browser import screenshot

from .helpers import AGENT_ID, audits
from .test_window_browser import open_page  # noqa: F401  (the fixture)

pytestmark = pytest.mark.browser


def _posts(page, path_end: str) -> list[str]:
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" and r.url.endswith(path_end) else None)
    return sent


def test_clicks_repeated_on_the_identity_check_send_one_request_and_back_finds_the_form_ready(
        open_page, live_server, city, app):  # noqa: F811
    card = city.issued_card("蒋文")
    page = open_page(live_server, "zh", "1366")
    page.goto(f"{live_server.url}/console/persons/{card.person_id}")
    sent = _posts(page, "/identity-check")
    page.fill("#identity input[name=citizen_id]", card.citizen_id)

    # a double click as the browser gets it: the button's click twice before the answer is back
    page.evaluate("""() => { const b = document.querySelector('#identity button[type=submit]');
                             b.click(); setTimeout(() => b.click(), 20); setTimeout(() => b.click(), 40); }""")
    page.wait_for_url("**/console/visits/*")
    assert len(sent) == 1
    assert len(audits(app, "attorney.identity_check")) == 1
    page.go_back()
    page.wait_for_selector("#identity button[type=submit]")
    assert page.locator("#identity button[type=submit]").is_enabled()
    assert page.locator("#identity [data-busy]").count() == 0


def test_enter_pressed_twice_in_the_search_sends_one_request(open_page, live_server, city, app):  # noqa: F811
    card = city.issued_card("蒋文")
    page = open_page(live_server, "zh", "390")
    sent = _posts(page, "/console/find")
    box = page.locator("input[name=query]").first
    box.fill(card.citizen_id)
    box.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/console/persons/{card.person_id}")
    assert len(sent) == 1


def test_a_pasted_direction_control_is_refused_next_to_its_field(open_page, live_server, city, app):  # noqa: F811
    card = city.issued_card("蒋文")
    page = open_page(live_server, "en", "1366")
    page.goto(f"{live_server.url}/console/persons/{card.person_id}")
    page.click("summary")
    poa = "form[action$='/attorneys']"
    page.fill(f"{poa} input[name=agent_name]", "李四")
    page.fill(f"{poa} input[name=agent_citizen_id]", AGENT_ID)
    page.check(f"{poa} input[name=scope][value='card.collect']")
    page.fill(f"{poa} input[name=document_ref]", "WT-\u202e2026")
    page.click(f"{poa} button[type=submit]")
    field = page.locator("input[name=document_ref]")
    page.wait_for_selector("input[name=document_ref][aria-invalid=true]")
    note = page.locator("input[name=document_ref] + .field-error")
    assert "text-direction control characters" in note.inner_text()
    assert page.evaluate("document.activeElement.name") == "document_ref"
    assert field.input_value() == "WT-2026"
    screenshot(page, "window-form-text-refused-en")
    field.fill("WT-2026")
    assert note.count() == 0
    assert not audits(app, "attorney.record") or all(r.result != "ok" for r in audits(app, "attorney.record"))


def test_a_form_sent_after_the_session_ended_is_back_with_what_was_typed_after_signing_in(
        open_page, live_server, city, app):  # noqa: F811
    from sscard.services import websession
    from tests.support import STAFF_PASSWORD

    card = city.issued_card("蒋文")
    page = open_page(live_server, "zh", "1366")
    person = f"{live_server.url}/console/persons/{card.person_id}"
    page.goto(person)
    page.click("summary")
    poa = "form[action$='/attorneys']"
    page.fill(f"{poa} input[name=agent_name]", "欧阳诸葛司马上官东方皇甫尉迟公孙慕容长孙宇文司徒轩辕")
    page.fill(f"{poa} input[name=agent_citizen_id]", AGENT_ID)
    page.check(f"{poa} input[name=scope][value='card.collect']")
    page.fill(f"{poa} input[name=document_ref]", "WT-2026-009")
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "sscard_staff")
    websession.logout(app, token)  # the session ended while the clerk was typing
    page.click(f"{poa} button[type=submit]")
    page.wait_for_url("**/console/login?unsent=1")
    draft = page.evaluate("sessionStorage.getItem('sscard:draft')")
    assert "WT-2026-009" in draft and "csrf" not in draft and "op_key" not in draft
    page.fill("input[name=username]", "clerk")
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(person)
    assert page.locator(f"{poa}[data-restored]").count() == 1
    assert page.input_value(f"{poa} input[name=document_ref]") == "WT-2026-009"
    assert page.input_value(f"{poa} input[name=agent_name]").startswith("欧阳诸葛")
    assert page.is_checked(f"{poa} input[name=scope][value='card.collect']")
    assert STAFF_PASSWORD not in (page.evaluate("JSON.stringify(sessionStorage)") or "")
    assert page.evaluate("sessionStorage.getItem('sscard:draft')") is None  # restored once
    screenshot(page, "window-draft-restored-zh")
    page.reload()
    assert page.input_value(f"{poa} input[name=document_ref]") == ""
    assert not audits(app, "attorney.record")


def test_back_and_reload_after_a_paid_replacement_ask_nothing_and_take_the_fee_once(
        open_page, live_server, city, app):  # noqa: F811
    from .test_window_browser import fits_the_screen, start_visit

    card = city.issued_card("蒋文")
    page = open_page(live_server, "zh", "390")
    url = start_visit(page, live_server, card)
    replace = "form[action$='/replace']"
    page.select_option(f"{replace} select[name=reason]", "damaged")
    page.select_option(f"{replace} select[name=payment]", "cash")
    page.click(f"{replace} button[type=submit]")
    page.wait_for_url(f"{url}/fee?*")  # the fee step is a page of its own address
    assert "贰拾元整" in page.inner_text("#confirm") and fits_the_screen(page)
    page.wait_for_timeout(900)  # the confirm step's pause
    page.click("#confirm-yes")
    page.wait_for_url(f"{url}/done?*")
    assert "已收工本费 ¥20.00" in page.inner_text("#done")
    page.reload()  # a plain GET: no "confirm form resubmission", the same result, nothing done again
    assert "已收工本费 ¥20.00" in page.inner_text("#done")
    page.go_back()  # the fee step's address: asked again, it says the replacement is under way
    page.wait_for_url(f"{url}/fee?*")
    assert "此卡已在办理补换卡" in page.inner_text("main")
    assert [a.result for a in audits(app, "replacement.apply")] == ["ok"]
