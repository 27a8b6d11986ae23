"""Issue 17 on the window console in Chromium, as a hurried clerk would use it: Chinese and English, at a
1366 px desk screen and a 390 px phone; confirmations (double click, back button), an agent's visit with
the power of attorney's scope shown before any click, the audited ID "show", the 12333 callback queue,
receipts; axe-core with no serious or critical violation on every window-console page.
Screenshots: var/screenshots/window-*.png."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from sscard.services import attorney, hotline
from tests.browser import screenshot
from tests.support import STAFF_PASSWORD

from .helpers import AGENT_ID, audits, ready_replacement

pytestmark = pytest.mark.browser
AXE = Path(__file__).resolve().parent.parent / "portal" / "axe.min.js"
SIZES = {"1366": {"width": 1366, "height": 900}, "390": {"width": 390, "height": 844}}


@pytest.fixture
def open_page(browser):
    contexts = []

    def make(live_server, lang: str, size: str, user: str = "clerk"):
        ctx = browser.new_context(viewport=SIZES[size], locale="en-US" if lang == "en" else "zh-CN")
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{live_server.url}/lang/{lang}?next=/console/login")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", STAFF_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(live_server.url + "/console")
        return page

    yield make
    for ctx in contexts:
        ctx.close()


def serious_axe_violations(page) -> list[dict]:
    page.evaluate(AXE.read_text())  # evaluated, not a <script> tag: the CSP refuses inline scripts
    result = page.evaluate("axe.run()")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def fits_the_screen(page) -> bool:
    """Nothing but a table's own scroller is wider than the window (no sideways page scrolling)."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def queue_a_callback(app, sid: str, number: str, node: str = "loss_confirm") -> dict:
    hotline.create_call(app, {"call_sid": sid, "line": hotline.LINE_12333, "node": node, "lang": "zh",
                              "status": "agent"})
    return hotline.request_agent(app, hotline.gateway(hotline.LINE_12333), sid, node, node, callback_number=number)


def start_visit(page, live_server, card) -> str:
    page.goto(f"{live_server.url}/console/persons/{card.person_id}")
    page.fill("#identity input[name=citizen_id]", card.citizen_id)
    page.click("#identity button[type=submit]")
    page.wait_for_url("**/console/visits/*")
    return page.url


@pytest.mark.parametrize("size", ["1366", "390"])
def test_a_clerk_confirms_a_formal_loss_once_despite_a_double_click_and_the_back_button_in_chinese(
        open_page, live_server, city, app, size):
    card = city.issued_card("蒋文")
    page = open_page(live_server, "zh", size)
    url = start_visit(page, live_server, card)
    assert page.inner_text("#holder-name") == "蒋文" and card.citizen_id not in page.content()

    # the full ID only on an explicit show (htmx swaps it in place), audited as a viewed record
    page.click("#show-id")
    page.wait_for_selector(f"#holder-id:has-text('{card.citizen_id}')")
    assert audits(app, "window.reveal_citizen_id")[-1].result == "viewed"

    page.click("form[action$='/formal-loss'] button")
    confirm = page.locator("#confirm")
    confirm.wait_for()
    text = confirm.inner_text()
    assert "请确认：办理社会保障卡正式挂失" in text and "蒋文" in text and f"银行卡尾号 {card.pan[-4:]}" in text
    assert page.url == url  # htmx showed the step in place: the address is still the visit's
    assert not audits(app, "ss_loss.report_formal")
    screenshot(page, f"window-confirm-formal-loss-zh-{size}")
    assert fits_the_screen(page)
    page.dblclick("#confirm-yes")
    page.wait_for_selector("#done")
    assert "已办理社会保障卡正式挂失" in page.inner_text("#done")
    page.go_back()
    page.wait_for_load_state("load")
    page.goto(url)  # the clerk comes back to the visit: the card is lost, nothing is offered twice
    assert page.locator("form[action$='/formal-loss']").count() == 0
    assert [r.result for r in audits(app, "ss_loss.report_formal")] == ["ok"]
    screenshot(page, f"window-after-formal-loss-zh-{size}")
    assert fits_the_screen(page)


@pytest.mark.parametrize("size", ["1366", "390"])
def test_a_collection_only_agent_sees_what_the_poa_covers_before_any_click_and_collects_in_english(
        open_page, live_server, city, app, size, tmp_path):
    card = city.issued_card("蒋文")
    ready_replacement(city, card)
    today = app.clock.today()
    poa = attorney.record(app, city.actor("clerk"), card.person_id, "李四", AGENT_ID, ["card.collect"],
                          today, today + timedelta(days=10), "WT-17")
    page = open_page(live_server, "en", size)
    assert "蒋文" in page.inner_text("main")  # the collection queue: the name the clerk calls out
    page.goto(f"{live_server.url}/console/persons/{card.person_id}")
    page.check("input[name=presenter][value=agent]")
    page.fill("#identity input[name=citizen_id]", card.citizen_id)
    page.select_option("select[name=attorney_id]", str(poa["id"]))
    page.fill("#identity input[name=agent_citizen_id]", AGENT_ID)
    page.click("#identity button[type=submit]")
    page.wait_for_url("**/console/visits/*")

    reset = page.locator("form[action$='/ss-password']").first  # the old card, still in use
    assert reset.locator("button").is_disabled()
    assert "does not cover this; it would need: Reset SS application password" in reset.inner_text()
    loss = page.locator("form[action$='/formal-loss']").first
    assert loss.locator("button").is_disabled() and "already under way" in loss.inner_text()
    assert page.locator("#query-password button").is_disabled()
    assert "Only the cardholder in person" in page.inner_text("#query-password")
    screenshot(page, f"window-agent-scope-en-{size}")
    assert fits_the_screen(page)

    page.click("form[action$='/collect'] button")
    confirm = page.inner_text("#confirm")
    assert "Confirm: hand over the new card and cancel the old one" in confirm and "cancelled on the social security side at the same time" in confirm
    screenshot(page, f"window-confirm-collect-en-{size}")
    page.click("#confirm-yes")
    assert "New card handed over" in page.inner_text("#done")
    assert "（" not in page.inner_text("main")
    with page.expect_download() as dl:
        page.click("#collection-receipt")
    dl.value.save_as(tmp_path / "collect.pdf")
    assert (tmp_path / "collect.pdf").read_bytes().startswith(b"%PDF")
    assert [r.attorney_id for r in audits(app, "card.collect")][1:] == [poa["id"]]


@pytest.mark.parametrize(("lang", "size"), [("zh", "1366"), ("en", "390")])
def test_the_callback_queue_gives_the_number_and_topic_and_records_call_back_and_done(
        open_page, live_server, city, app, lang, size):
    req = queue_a_callback(app, "CA-win-1", "+8613912345678")
    page = open_page(live_server, lang, size)
    row = page.locator(f"#callback-{req['id']}")
    assert row.locator("a[href='tel:+8613912345678']").count() == 1
    assert ("社会保障卡临时挂失" if lang == "zh" else "Temporary loss of the card") in row.inner_text()
    assert "loss_confirm" not in row.inner_text() and "接听" not in page.content()
    screenshot(page, f"window-callbacks-{lang}-{size}")
    assert fits_the_screen(page)
    row.locator("button").click()
    row = page.locator(f"#callback-{req['id']}")
    assert ("回拨中" if lang == "zh" else "Calling back") in row.inner_text()
    row.locator("input[name=note]").fill("已回电，已说明临时挂失")
    row.locator("button").click()
    page.wait_for_load_state("load")
    assert page.locator(f"#callback-{req['id']}").count() == 0 and "13912345678" not in page.content()
    assert [r.result for r in audits(app, "hotline.agent_take")] == ["ok"]
    assert [r.result for r in audits(app, "hotline.agent_close")] == ["ok"]


@pytest.mark.parametrize(("lang", "size"), [("zh", "390"), ("en", "1366")])
def test_sending_a_batch_names_how_many_cards_first_and_a_double_click_sends_one(
        open_page, live_server, city, app, lang, size):
    from sscard.services import replacement

    for c in [city.issued_card(n) for n in ("甲一", "乙二", "丙三")]:
        replacement.apply(app, city.actor("clerk"), c.card_number, "damaged", c.citizen_id, payment="cash")
    before = len(audits(app, "production.start_batch"))
    page = open_page(live_server, lang, size)
    page.goto(live_server.url + "/console/production")
    page.click("form[action='/console/production/start'] button")
    assert ("确认送制 3 张" if lang == "zh" else "Send 3 cards to production") in page.inner_text("#confirm")
    screenshot(page, f"window-confirm-batch-{lang}-{size}")
    assert fits_the_screen(page)
    page.dblclick("#confirm-yes")
    page.wait_for_selector("#done")
    assert len(audits(app, "production.start_batch")) == before + 1


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("size", ["1366", "390"])
def test_every_window_console_page_has_no_serious_accessibility_violation(
        open_page, browser, live_server, city, app, lang, size):
    card = city.issued_card("蒋文")
    ready_replacement(city, card)
    queue_a_callback(app, f"CA-axe-{lang}-{size}", "+8613912345678")
    problems = {}
    login = browser.new_context(viewport=SIZES[size])
    lp = login.new_page()
    lp.goto(f"{live_server.url}/lang/{lang}?next=/console/login")
    problems["login"] = serious_axe_violations(lp)
    login.close()
    page = open_page(live_server, lang, size)
    problems["home"] = serious_axe_violations(page)
    page.goto(f"{live_server.url}/console/persons/{card.person_id}")
    page.click("#attorneys summary")
    problems["person"] = serious_axe_violations(page)
    url = start_visit(page, live_server, card)
    problems["visit"] = serious_axe_violations(page)
    page.click("form[action$='/collect'] button")
    page.locator("#confirm").wait_for()
    problems["visit-confirm"] = serious_axe_violations(page)
    page.goto(url)
    page.click("#show-id")
    problems["visit-id-shown"] = serious_axe_violations(page)
    page.goto(live_server.url + "/console/production")
    problems["production"] = serious_axe_violations(page)
    page.goto(live_server.url + "/console/report")
    problems["forbidden"] = serious_axe_violations(page)
    sup = open_page(live_server, lang, size, "csup")
    sup.goto(live_server.url + "/console/report")
    problems["report"] = serious_axe_violations(sup)
    assert {k: v for k, v in problems.items() if v} == {}
