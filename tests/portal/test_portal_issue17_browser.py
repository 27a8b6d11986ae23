"""Issue 17's portal points in Debian's Chromium, Chinese and English, on a 1366 px desktop and a 390 px phone:
confirmations before a loss and its cancel, a digits-only query password, the bank side's open risk after an
SS loss, tries left and a login that keeps the ID, insurance records that fit a phone, the proof of insurance
and its public check, English names; axe-core on every page."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from sscard.core.roles import SYSTEM_ACTOR
from sscard.models.foundation import AuditRecord, Person, ServiceCenter
from sscard.models.medical import PersonalAccount, PersonalAccountMovement
from sscard.services import insurance, passwords, production, replacement
from tests.browser import screenshot
from tests.portal.helpers import NEW_QUERY_PASSWORD
from tests.portal.test_portal_browser import serious_axe_violations

pytestmark = pytest.mark.browser
WIDTHS = {"desktop": 1366, "phone": 390}
COMBOS = [("zh", "phone"), ("zh", "desktop"), ("en", "phone"), ("en", "desktop")]
IDS = [f"{lang}-{size}" for lang, size in COMBOS]


def words(lang: str, zh: str, en: str) -> str:
    return en if lang == "en" else zh


@pytest.fixture
def opened(browser, live_server):
    """open(lang, size, js=True) -> a page in a fresh context at that width and language."""
    contexts = []

    def open_page(lang: str, size: str, js: bool = True):
        context = browser.new_context(viewport={"width": WIDTHS[size], "height": 860}, java_script_enabled=js,
                                      locale="zh-CN" if lang == "zh" else "en-US", accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        if lang == "en":
            page.goto(live_server.url + "/lang/en?next=/portal/login")
        return page

    yield open_page
    for context in contexts:
        context.close()


def ready_holder(city, app, name: str = "蒋文静"):
    """A cardholder who already chose a digits-only query password."""
    card = city.issued_card(name)
    passwords.change_query_password(app, city.cardholder(card), card.card_number[-6:], NEW_QUERY_PASSWORD,
                                    NEW_QUERY_PASSWORD)
    return card


def sign_in(page, base: str, login: str, password: str = NEW_QUERY_PASSWORD) -> None:
    page.goto(base + "/portal/login")
    page.fill("#login", login)
    page.fill("#password", password)
    page.click("form.stack button[type=submit]")
    page.wait_for_load_state("load")


def fits(page, width: int) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= width


def count_operation(app, operation: str, result: str = "ok") -> int:
    with app.db.session() as s:
        return len(s.scalars(select(AuditRecord.id).where(AuditRecord.operation == operation,
                                                          AuditRecord.result == result)).all())


# ---------------------------------------------------------------- point 2: confirm before a loss and its cancel


@pytest.mark.parametrize(("lang", "size"), COMBOS, ids=IDS)
def test_a_temporary_loss_and_its_cancel_ask_first_naming_the_cards_last_digits(live_server, opened, city, app,
                                                                                  lang, size):
    card = ready_holder(city, app)
    page = opened(lang, size)
    sign_in(page, live_server.url, card.citizen_id)
    page.goto(live_server.url + "/portal/loss")
    page.click("form[action='/portal/loss/report'] button")
    dialog = page.get_by_role("alertdialog")
    dialog.wait_for()
    assert f"{card.card_number[-2:]}" in dialog.get_by_role("heading").inner_text()
    assert card.pan[-4:] in dialog.inner_text()
    assert count_operation(app, "ss_loss.report_temporary") == 0  # nothing happened yet
    screenshot(page, f"portal-loss-confirm-{lang}-{size}")
    page.get_by_role("link", name=words(lang, "取消，不办理", "No, go back")).click()
    page.get_by_role("alertdialog").wait_for(state="detached")
    assert count_operation(app, "ss_loss.report_temporary") == 0
    page.click("form[action='/portal/loss/report'] button")
    confirm = page.get_by_role("button", name=words(lang, "确认挂失", "Yes, report it lost"))
    confirm.dblclick()  # a hurried double tap applies the loss once
    page.get_by_role("status").wait_for()
    assert words(lang, "已办理临时挂失", "temporarily") in page.get_by_role("status").inner_text()
    assert count_operation(app, "ss_loss.report_temporary") == 1
    assert page.locator(".msg.error[role=alert]").count() == 0
    assert fits(page, WIDTHS[size])
    page.click("form[action='/portal/loss/cancel'] button")
    dialog = page.get_by_role("alertdialog")
    assert card.card_number[-2:] in dialog.get_by_role("heading").inner_text()
    page.get_by_role("button", name=words(lang, "确认解除挂失", "Yes, cancel the loss")).click()
    page.get_by_role("status").wait_for()
    assert count_operation(app, "ss_loss.cancel") == 1


def test_without_javascript_the_loss_is_confirmed_on_its_own_page_and_a_resent_form_applies_once(
        live_server, opened, city, app):
    card = ready_holder(city, app)
    page = opened("zh", "phone", js=False)
    sign_in(page, live_server.url, card.citizen_id)
    page.goto(live_server.url + "/portal/loss")
    page.click("form[action='/portal/loss/report'] button")
    assert "确认临时挂失尾号" + card.card_number[-2:] in page.get_by_role("alertdialog").inner_text()
    form = page.locator("form[action='/portal/loss/report']")
    fields = {name: form.locator(f"input[name={name}]").get_attribute("value")
              for name in ("csrf_token", "idempotency_key", "confirm")}
    page.get_by_role("button", name="确认挂失").click()
    assert "已办理临时挂失" in page.get_by_role("status").inner_text()
    resent = page.request.post(live_server.url + "/portal/loss/report", form=fields)  # the browser's "resend"
    assert resent.ok and "已办理临时挂失" in resent.text()
    assert count_operation(app, "ss_loss.report_temporary") == 1
    screenshot(page, "portal-loss-done-nojs-zh-phone")


# ---------------------------------------------------------------- point 8: the bank side is not yet protected


@pytest.mark.parametrize(("lang", "size"), COMBOS, ids=IDS)
def test_after_an_ss_loss_the_card_page_says_the_bank_account_is_not_protected_with_a_tappable_hotline(
        live_server, opened, city, app, lang, size):
    card = ready_holder(city, app)
    city_teller = city.actor("teller")
    from sscard.services import banking
    banking.activate(app, city_teller, card.pan, card.citizen_id, "802461", "802461", cardholder_in_person=True)
    page = opened(lang, size)
    sign_in(page, live_server.url, card.citizen_id)
    page.goto(live_server.url + "/portal/loss")
    page.click("form[action='/portal/loss/report'] button")
    page.get_by_role("alertdialog").locator("button").click()  # the confirmation's button
    page.get_by_role("status").wait_for()
    reminder = page.locator(".portal-bank-open")
    assert reminder.count() == 1  # the reminder once on the loss page
    assert words(lang, "银行账户尚未挂失", "NOT reported lost") in reminder.inner_text()
    assert page.locator("main").inner_text().count("95588") == 1
    assert reminder.get_by_role("link").get_attribute("href") == "tel:95588"
    screenshot(page, f"portal-loss-bank-warning-{lang}-{size}")
    page.goto(live_server.url + "/portal/card")
    bank_side = page.locator(".portal-side").nth(1)
    text = bank_side.inner_text()
    assert words(lang, "银行账户尚未挂失", "NOT reported lost") in text
    assert words(lang, "拿到卡的人仍可能取款", "may still withdraw") in text
    assert bank_side.locator("a[href='tel:95588']").count() == 1
    assert page.locator("footer a[href='tel:12333']").count() == 1
    hrefs = page.eval_on_selector_all("main a, footer a", "els => els.map(e => [e.textContent, e.href])")
    for label, href in hrefs:  # every hotline number on the page is a tel: link
        if re.fullmatch(r"\s*(95588|12333)\s*", label):
            assert href.startswith("tel:"), label
    assert fits(page, WIDTHS[size])
    screenshot(page, f"portal-card-after-loss-{lang}-{size}")


# ---------------------------------------------------------------- point 9: tries left, the login keeps the ID


@pytest.mark.parametrize(("lang", "size"), COMBOS, ids=IDS)
def test_a_failed_login_keeps_the_id_and_states_the_lock_rule_without_a_count(live_server, opened, city, app,
                                                                              lang, size):
    card = ready_holder(city, app)
    page = opened(lang, size)
    page.goto(live_server.url + "/portal/login")
    rules = page.locator("#password-rules").inner_text()  # before the first attempt
    assert words(lang, "连续输错5次将锁定30分钟", "5 wrong passwords in a row lock it for 30 minutes") in rules
    sign_in(page, live_server.url, card.citizen_id, "13572468")
    alert = page.get_by_role("alert").inner_text()
    assert words(lang, "连续输错5次将锁定30分钟", "lock the password for 30 minutes") in alert
    assert words(lang, "还可尝试", "tries left") not in alert
    assert page.input_value("#login") == card.citizen_id and page.input_value("#password") == ""
    unknown_page = opened(lang, size)
    sign_in(unknown_page, live_server.url, "110105194912310021", "13572468")
    assert unknown_page.get_by_role("alert").inner_text() == alert  # an unknown login answers the same
    screenshot(page, f"portal-login-failed-{lang}-{size}")


@pytest.mark.parametrize(("lang", "size"), [("zh", "phone"), ("en", "desktop")], ids=["zh-phone", "en-desktop"])
def test_every_portal_password_error_says_how_many_tries_are_left(live_server, opened, city, app, lang, size):
    card = ready_holder(city, app)
    page = opened(lang, size)
    sign_in(page, live_server.url, card.citizen_id)
    page.goto(live_server.url + "/portal/password")
    assert words(lang, "6至20位数字", "6 to 20 digits") in page.locator("#q-rule").inner_text()
    page.fill("#q-old", "97531864")
    page.fill("#q-new", "80461357")
    page.fill("#q-again", "80461357")
    page.click("form[action='/portal/password/query'] button")
    assert words(lang, "还可尝试4次", "4 tries left") in page.get_by_role("alert").inner_text()
    page.fill("#s-old", "975318")
    page.fill("#s-new", "802461")
    page.fill("#s-again", "802461")
    page.click("form[action='/portal/password/ss'] button")
    assert words(lang, "还可尝试2次", "2 tries left") in page.get_by_role("alert").inner_text()
    assert fits(page, WIDTHS[size])
    screenshot(page, f"portal-password-tries-{lang}-{size}")


# ---------------------------------------------------------------- point 3: a password the phone can type


@pytest.mark.parametrize(("lang", "size"), [("zh", "phone"), ("en", "desktop")], ids=["zh-phone", "en-desktop"])
def test_the_new_query_password_is_digits_on_a_numeric_keypad_and_letters_are_refused(live_server, opened, city,
                                                                                      app, lang, size):
    card = city.issued_card()
    page = opened(lang, size)
    sign_in(page, live_server.url, card.citizen_id, card.card_number[-6:])
    assert page.url.endswith("/portal/password")
    assert page.get_attribute("#q-new", "inputmode") == "numeric"
    assert "12333" in page.locator("#q-rule").inner_text()
    page.fill("#q-old", card.card_number[-6:])
    page.fill("#q-new", "Lake-View-88")
    page.fill("#q-again", "Lake-View-88")
    page.click("form[action='/portal/password/query'] button")
    assert page.url.endswith("/portal/password")  # the browser holds it back: it does not match the rule
    assert page.locator("#q-new").evaluate("e => e.validity.patternMismatch") is True
    # the server says the same to a client that skips the browser's check
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(live_server.url + "/portal/password/query",
                               form={"csrf_token": csrf, "old": card.card_number[-6:], "new": "Lake-View-88",
                                     "new_again": "Lake-View-88"})
    assert answer.status == 422 and words(lang, "12333电话按键只能输入数字", "12333 keypad") in answer.text()
    page.fill("#q-new", NEW_QUERY_PASSWORD)
    page.fill("#q-again", NEW_QUERY_PASSWORD)
    page.click("form[action='/portal/password/query'] button")
    page.wait_for_url("**/portal/card?changed=1")
    screenshot(page, f"portal-password-digits-{lang}-{size}")


def test_a_legacy_letter_password_signs_in_and_the_card_page_asks_to_change_it(live_server, opened, city, app):
    card = city.issued_card()
    with app.db.session() as s:
        person = s.get(Person, card.person_id)
        person.query_pw_hash, person.query_pw_initial = app.secrets.hash_password("Lake-View-88"), False
    page = opened("zh", "phone")
    sign_in(page, live_server.url, card.citizen_id, "Lake-View-88")
    note = page.locator(".msg.note", has_text="含有字母")
    assert "12333" in note.inner_text()
    note.get_by_role("link").click()
    assert page.url.endswith("/portal/password")
    screenshot(page, "portal-password-letters-zh-phone")


# ---------------------------------------------------------------- point 10: insurance records on a phone


def record_years(app, person_id: int) -> None:
    months = [(y, m) for y in (2022, 2023, 2024, 2025) for m in range(1, 13) if (y, m) <= (2025, 6)]
    for i, (y, m) in enumerate(months):
        if (y, m) in ((2024, 7), (2024, 8)):
            continue  # between jobs
        insurance.record_month(app, SYSTEM_ACTOR, person_id, f"{y}-{m:02d}", "91330106MA2H000001",
                               "杭州西湖宏远科技有限公司", 1_500_000 + 20_000 * (i // 12))
    insurance.record_month(app, SYSTEM_ACTOR, person_id, "2021-12", "91330102MA2H000002", "上城恒泰贸易有限公司",
                           300_000, types=["pension"])  # a small year: 3,568-like amounts beside larger ones


@pytest.mark.parametrize(("lang", "size"), COMBOS, ids=IDS)
def test_insurance_records_fit_a_phone_total_months_per_kind_and_label_the_chart_in_one_unit(
        live_server, opened, city, app, lang, size):
    card = ready_holder(city, app)
    record_years(app, card.person_id)
    page = opened(lang, size)
    sign_in(page, live_server.url, card.citizen_id)
    page.goto(live_server.url + "/portal/insurance?year=")
    width = WIDTHS[size]
    assert fits(page, width)
    amounts = page.locator("table.portal-records td.num")
    assert amounts.count() > 100
    boxes = amounts.evaluate_all("els => els.map(e => e.getBoundingClientRect().right)")
    assert max(boxes) <= width  # no amount off-screen, without scrolling sideways
    months = page.locator(".portal-months").inner_text()
    assert words(lang, "养老保险\n41个月", "Pension\n41 months") in months  # 2021-12 + 42 months, less a gap of 2
    assert words(lang, "医疗保险\n40个月", "Medical\n40 months") in months
    labels = page.locator("svg.pension-chart text.value").evaluate_all("els => els.map(e => e.textContent)")
    unit = "万" if lang == "zh" else "k"
    assert labels and all(label.endswith(unit) for label in labels), labels  # not 3568 beside 4.5万
    screenshot(page, f"portal-insurance-{lang}-{size}")


@pytest.mark.parametrize(("lang", "size"), [("zh", "phone"), ("en", "desktop")], ids=["zh-phone", "en-desktop"])
def test_the_medical_accounts_opening_balance_is_labelled_as_such(live_server, opened, city, app, lang, size):
    card = ready_holder(city, app)
    then = datetime(2026, 1, 1, tzinfo=UTC)
    with app.db.session() as s:
        s.add(PersonalAccount(person_id=card.person_id, balance_fen=356_800, opened_at=then))
        s.add(PersonalAccountMovement(person_id=card.person_id, kind="credit", amount_fen=356_800,
                                      balance_after_fen=356_800, month=None, settlement_id=None, at=then))
    page = opened(lang, size)
    sign_in(page, live_server.url, card.citizen_id)
    page.goto(live_server.url + "/portal/medical")
    row = page.locator("table.portal-movements tbody tr").first.inner_text()
    assert words(lang, "期初余额", "Opening balance") in row and words(lang, "划入", "Monthly credit") not in row
    assert "3,568.00" in row and fits(page, WIDTHS[size])
    screenshot(page, f"portal-medical-{lang}-{size}")


# ---------------------------------------------------------------- point 6: the proof of insurance


def code_in(pdf_path) -> str:
    text = subprocess.run(["pdftotext", str(pdf_path), "-"], capture_output=True, check=True).stdout.decode()
    return next(w for w in text.split() if re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}-[0-9A-Z]", w))


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) reads the code")
@pytest.mark.parametrize(("lang", "size"), COMBOS, ids=IDS)
def test_a_downloaded_proof_of_insurance_is_confirmed_by_its_code_on_the_public_page(
        live_server, opened, city, app, tmp_path, lang, size):
    card = ready_holder(city, app)
    record_years(app, card.person_id)
    page = opened(lang, size)
    sign_in(page, live_server.url, card.citizen_id)
    page.get_by_role("link", name=words(lang, "参保证明", "Proof of insurance"), exact=True).click()
    page.fill("#c-from", "2023-01")
    page.fill("#c-to", "2025-06")
    screenshot(page, f"portal-certificate-{lang}-{size}")
    with page.expect_download() as download:
        page.click("form[action='/portal/certificate'] button")
    pdf = tmp_path / "proof.pdf"
    download.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF-")
    code = code_in(pdf)
    if lang == "zh" and size == "phone":
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-singlefile", str(pdf),
                        str(screenshot(page, "portal-certificate-pdf").with_suffix(""))], check=True)
    page.reload()
    assert "…" + code.replace("-", "")[-4:] in page.locator("table.portal-issued").inner_text()

    stranger = opened(lang, size)  # a landlord: nobody signed in
    stranger.goto(live_server.url + "/portal/verify")
    stranger.fill("#code", code.lower())
    stranger.click("form[action='/portal/verify'] button")
    result = stranger.get_by_role("status").inner_text()
    assert words(lang, "真实有效", "Genuine") in result
    shown = stranger.locator("main").inner_text()
    assert "蒋**" in shown and "蒋文静" not in shown and card.citizen_id not in shown
    assert "2023-01 – 2025-06" in shown and words(lang, "28个月", "28 months") in shown
    assert fits(stranger, WIDTHS[size])
    screenshot(stranger, f"portal-verify-genuine-{lang}-{size}")
    altered = code[:-3] + ("A" if code[-3] != "A" else "B") + code[-2:]
    stranger.fill("#code", altered)
    stranger.click("form[action='/portal/verify'] button")
    assert words(lang, "没有找到", "not found") in stranger.get_by_role("alert").inner_text()
    assert stranger.get_by_role("status").count() == 0
    screenshot(stranger, f"portal-verify-not-found-{lang}-{size}")


# ---------------------------------------------------------------- point 7: English names, no full-width brackets


def test_english_pages_show_english_names_no_full_width_brackets_and_no_long_hex(live_server, opened, city, app):
    card = ready_holder(city, app)
    record_years(app, card.person_id)
    with app.db.session() as s:
        s.execute(update(ServiceCenter).where(ServiceCenter.code == "C01")
                  .values(name_en="Xihu District Card Service Center"))
    clerk = city.actor("clerk")
    replacement.apply(app, clerk, card.card_number, "damaged", card.citizen_id, payment="cash")
    batch = production.start_batch(app, clerk, "C01")
    production.complete_batch(app, clerk, batch["batch"])
    page = opened("en", "phone")
    sign_in(page, live_server.url, card.citizen_id)
    for path in ("/portal/card", "/portal/progress", "/portal/insurance", "/portal/medical", "/portal/loss",
                 "/portal/password", "/portal/access", "/portal/certificate", "/portal/verify"):
        page.goto(live_server.url + path)
        text = page.locator("main").inner_text()
        assert not re.search(r"[（）【】，。：；]", text), (path, re.findall(r".{0,20}[（），。：；].{0,20}", text))
        assert not re.search(r"\b[0-9a-f]{32}\b", text), path
        assert "服务中心" not in text and "工商银行" not in text, path
    page.goto(live_server.url + "/portal/progress")
    assert "Xihu District Card Service Center" in page.locator("main").inner_text()
    page.goto(live_server.url + "/portal/card")
    assert "ICBC" in page.locator("main").inner_text()
    screenshot(page, "portal-progress-en-phone")


# ---------------------------------------------------------------- axe-core on every page, both languages and widths


PAGES = ("/portal/card", "/portal/insurance", "/portal/medical", "/portal/loss", "/portal/progress",
         "/portal/password", "/portal/access", "/portal/certificate", "/portal/verify")


@pytest.mark.parametrize(("lang", "size"), COMBOS, ids=IDS)
def test_every_portal_page_and_the_public_check_pass_axe_and_fit(live_server, opened, city, app, lang, size):
    card = ready_holder(city, app)
    record_years(app, card.person_id)
    from sscard.services import certificates
    issued = certificates.issue_certificate(app, city.cardholder(card))
    public = opened(lang, size)
    public.goto(f"{live_server.url}/portal/verify?code={issued['code']}")
    problems = {"verify (public, genuine)": serious_axe_violations(public)}
    public.goto(live_server.url + "/portal/login")
    problems["login"] = serious_axe_violations(public)
    page = opened(lang, size)
    sign_in(page, live_server.url, card.citizen_id)
    widths = {}
    for path in PAGES:
        page.goto(live_server.url + path)
        problems[path] = serious_axe_violations(page)
        widths[path] = page.evaluate("document.documentElement.scrollWidth")
        if size == "phone" or path in ("/portal/card", "/portal/verify"):
            screenshot(page, f"portal-{path.rsplit('/', 1)[1]}-{lang}-{size}")
    page.goto(live_server.url + "/portal/loss")
    page.click("form[action='/portal/loss/report'] button")
    page.get_by_role("alertdialog").wait_for()
    problems["loss confirmation"] = serious_axe_violations(page)
    assert {p: v for p, v in problems.items() if v} == {}
    assert {p: w for p, w in widths.items() if w > WIDTHS[size]} == {}
