"""The portal in Debian's Chromium: forced change, lockout, online temporary loss and its lapse, isolation,
axe-core (no serious/critical violations) on every page, and a 375 px wide phone layout."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from sscard.core.errors import SscardError
from sscard.core.roles import SYSTEM_ACTOR
from sscard.services import insurance, passwords
from sscard.services import staff as staff_svc
from tests.browser import screenshot
from tests.portal.helpers import NEW_QUERY_PASSWORD, initial_password

pytestmark = pytest.mark.browser
AXE = Path(__file__).with_name("axe.min.js")
PAGES = ("/portal/card", "/portal/insurance", "/portal/medical", "/portal/loss", "/portal/progress",
         "/portal/password", "/portal/access")


def sign_in(page, base: str, login: str, password: str) -> None:
    page.goto(base + "/portal/login")
    page.get_by_label("社会保障号码或卡号").fill(login)
    page.get_by_label("信息查询密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state("load")


def sign_in_changed(page, base: str, card) -> None:
    sign_in(page, base, card.citizen_id, initial_password(card.card_number))
    assert page.url.endswith("/portal/password")
    page.get_by_label("原密码").fill(initial_password(card.card_number))
    page.get_by_label("新密码", exact=True).fill(NEW_QUERY_PASSWORD)
    page.get_by_label("再次输入新密码").fill(NEW_QUERY_PASSWORD)
    page.get_by_role("button", name="修改信息查询密码").click()
    page.wait_for_url("**/portal/card?changed=1")


def serious_axe_violations(page) -> list[dict]:
    page.evaluate(AXE.read_text())  # not add_script_tag: an inline <script> the CSP (rightly) refuses
    result = page.evaluate("axe.run()")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def kiosk(city, app):
    return staff_svc.actor_for_token(app, city.token(terminal="KIOSK-1"))


def test_first_login_with_the_initial_password_forces_a_change(live_server, page, city):
    card = city.issued_card()
    sign_in(page, live_server.url, card.card_number, initial_password(card.card_number))
    assert page.url.endswith("/portal/password")
    assert page.get_by_role("alert").inner_text().startswith("您正在使用初始信息查询密码")
    page.goto(live_server.url + "/portal/insurance")
    assert page.url.endswith("/portal/password")  # nothing else before the change but the card and its loss
    assert page.get_by_role("link", name="参保缴费").count() == 0
    page.get_by_role("navigation").get_by_role("link", name="挂失").click()
    assert page.url.endswith("/portal/loss") and page.get_by_role("button", name="临时挂失").is_visible()
    page.get_by_role("navigation").get_by_role("link", name="修改密码").click()
    screenshot(page, "portal-forced-change")
    page.get_by_label("原密码").fill(initial_password(card.card_number))
    page.get_by_label("新密码", exact=True).fill(NEW_QUERY_PASSWORD)
    page.get_by_label("再次输入新密码").fill(NEW_QUERY_PASSWORD[:-1] + "9")  # digits, but not the same
    page.get_by_role("button", name="修改信息查询密码").click()
    assert "两次输入的新密码不一致" in page.get_by_role("alert").last.inner_text()
    page.get_by_label("原密码").fill(initial_password(card.card_number))
    page.get_by_label("新密码", exact=True).fill(NEW_QUERY_PASSWORD)
    page.get_by_label("再次输入新密码").fill(NEW_QUERY_PASSWORD)
    page.get_by_role("button", name="修改信息查询密码").click()
    page.wait_for_url("**/portal/card?changed=1")
    assert "信息查询密码已修改" in page.get_by_role("status").inner_text()
    page.get_by_role("link", name="参保缴费").click()
    assert page.url.endswith("/portal/insurance")


def test_five_wrong_passwords_lock_and_the_lock_end_is_shown(live_server, page, city, clock):
    card = city.issued_card()
    for attempt in range(5):
        sign_in(page, live_server.url, card.citizen_id, f"wrong-{attempt}x")
    message = page.get_by_role("alert").inner_text()
    assert message == "密码已锁定至2026年1月5日10:30"
    screenshot(page, "portal-locked")
    sign_in(page, live_server.url, card.citizen_id, initial_password(card.card_number))
    assert "密码已锁定" in page.get_by_role("alert").inner_text()  # even the right one, while locked
    clock.advance(minutes=31)
    sign_in(page, live_server.url, card.citizen_id, initial_password(card.card_number))
    assert page.url.endswith("/portal/password")


def test_an_online_temporary_loss_refuses_ss_use_and_lapses_after_the_policy_days(live_server, page, city, app,
                                                                                    clock):
    card = city.issued_card()
    sign_in_changed(page, live_server.url, card)
    page.get_by_role("link", name="挂失").click()
    page.get_by_role("button", name="临时挂失").click()
    page.get_by_role("button", name="确认挂失").click()  # the confirmation names the card first
    status = page.get_by_role("status")
    status.wait_for()
    assert "已办理临时挂失" in status.inner_text() and "2026-01-12 10:00" in status.inner_text()
    reminder = page.get_by_role("note").inner_text()
    assert "工商银行" in reminder and "95588" in reminder
    screenshot(page, "portal-loss-reported")
    with pytest.raises(SscardError) as err:
        passwords.verify_ss_password(app, kiosk(city, app), card.card_number, "123456")
    assert err.value.code == "card_lost"
    page.goto(live_server.url + "/portal/card")
    assert "临时挂失" in page.locator(".portal-side").first.inner_text()
    clock.advance(timedelta(days=app.policy.ss_loss.temporary_days, minutes=1))
    sign_in(page, live_server.url, card.citizen_id, NEW_QUERY_PASSWORD)  # the idle session is over by then
    ss_side = page.locator(".portal-side").first.inner_text()
    assert "正常使用" in ss_side and "临时挂失" not in ss_side
    assert passwords.verify_ss_password(app, kiosk(city, app), card.card_number, "123456")["verified"] is True


def test_another_persons_data_is_never_reachable(live_server, page, city, app):
    mine = city.issued_card("李四")
    other = city.issued_card("王五")
    insurance.record_month(app, SYSTEM_ACTOR, other.person_id, "2025-06", "91330106MA2H000077", "别人的公司",
                           900_000)
    sign_in_changed(page, live_server.url, mine)
    for path in PAGES:
        page.goto(f"{live_server.url}{path}?person_id={other.person_id}&card_number={other.card_number}")
        text = page.locator("main").inner_text()
        assert "王*" not in text and "别人的公司" not in text and other.pan[-4:] not in text, path
    csv = page.request.get(f"{live_server.url}/portal/insurance.csv?year=&person_id={other.person_id}")
    assert csv.ok and "别人的公司" not in csv.text()
    # a forged form field naming the other person's card changes nothing: the server picks the card
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    forged = page.request.post(live_server.url + "/portal/loss/report",
                               form={"csrf_token": csrf, "card_number": other.card_number,
                                     "person_id": str(other.person_id), "confirm": "yes"})
    assert forged.ok
    with pytest.raises(SscardError):
        passwords.verify_ss_password(app, kiosk(city, app), mine.card_number, "123456")  # mine is lost
    assert passwords.verify_ss_password(app, kiosk(city, app), other.card_number, "123456")["verified"] is True
    token = page.request.post(live_server.url + "/api/v1/cardholder/login",
                              data={"login": mine.citizen_id, "password": NEW_QUERY_PASSWORD}).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert page.request.get(f"{live_server.url}/api/v1/persons/{mine.person_id}/cards", headers=headers).ok
    answer = page.request.get(f"{live_server.url}/api/v1/persons/{other.person_id}/cards", headers=headers)
    assert answer.status == 404


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_portal_page_is_accessible_and_fits_a_phone(live_server, browser, city, app, lang):
    card = city.issued_card("孙悟空")
    year_month = [(y, m) for y in (2023, 2024, 2025) for m in range(1, 13) if (y, m) <= (2025, 3)]  # to date
    for i, (y, m) in enumerate(year_month):
        if (y, m) in ((2024, 7), (2024, 8)):
            continue  # a gap between jobs
        employer = ("91330106MA2H000001", "杭州西湖宏远科技有限公司") if (y, m) < (2024, 7) else \
            ("91330102MA2H000002", "上城恒泰贸易有限公司")
        insurance.record_month(app, SYSTEM_ACTOR, card.person_id, f"{y}-{m:02d}", *employer, 600_000 + 10_000 * (i // 12))
    context = browser.new_context(viewport={"width": 375, "height": 812}, locale="zh-CN" if lang == "zh" else "en-US")
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(live_server.url + "/portal/login" + ("?lang=en" if lang == "en" else ""))
        problems = {"/portal/login": serious_axe_violations(page)}
        widths = {"/portal/login": page.evaluate("document.documentElement.scrollWidth")}
        screenshot(page, f"portal-login-{lang}")
        if lang == "en":
            page.goto(live_server.url + "/lang/en")
        sign_in_changed_any(page, live_server.url, card, lang)
        for path in PAGES if lang == "zh" else ("/portal/card", "/portal/insurance", "/portal/loss", "/portal/access"):
            page.goto(live_server.url + path)
            problems[path] = serious_axe_violations(page)
            widths[path] = page.evaluate("document.documentElement.scrollWidth")
            screenshot(page, f"portal-{path.rsplit('/', 1)[1]}-{lang}")
        assert {p: v for p, v in problems.items() if v} == {}
        assert {p: w for p, w in widths.items() if w > 375} == {}
        if lang == "zh":  # the records filter swaps the table in place (htmx) and keeps the URL shareable
            page.goto(live_server.url + "/portal/insurance")
            assert page.locator(".portal-count").inner_text() == "共15条记录"
            page.select_option("#f-type", "pension")
            page.wait_for_url("**/portal/insurance?year=2025&type=pension")
            assert page.locator(".portal-count").inner_text() == "共3条记录"
            # htmx ignores a change while the form's previous request is still settling: wait for it
            # (locator waits, not wait_for_function: a string predicate is eval, which the CSP refuses)
            expect(page.locator(".htmx-request, .htmx-settling, .htmx-swapping")).to_have_count(0)
            page.select_option("#f-year", "")
            page.wait_for_url("**type=pension")
            expect(page.locator(".portal-count")).to_contain_text("25")
            assert page.locator("table.portal-records tbody tr").count() == 25
    finally:
        context.close()


def sign_in_changed_any(page, base: str, card, lang: str) -> None:
    """The same forced change, by form field names (works in either language)."""
    page.goto(base + "/portal/login")
    page.fill("#login", card.citizen_id)
    page.fill("#password", initial_password(card.card_number))
    page.click("form.stack button[type=submit]")
    page.wait_for_url("**/portal/password")
    page.fill("#q-old", initial_password(card.card_number))
    page.fill("#q-new", NEW_QUERY_PASSWORD)
    page.fill("#q-again", NEW_QUERY_PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url("**/portal/card?changed=1")
