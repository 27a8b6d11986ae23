"""The bank-outlet console in a real browser, as a teller works it: Chinese by default, English by the switch,
at a 1366 px counter screen and a 390 px tablet held upright; axe-core on every page.

`Hands` counts what the teller does (a click on a button, link, box, or on a field to put the cursor in;
each key typed): the card number is typed once per customer, and the counts of the five flows are checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sscard.services import banking
from tests.bank_console.conftest import GOOD_PIN
from tests.browser import screenshot
from tests.support import STAFF_PASSWORD

pytestmark = pytest.mark.browser
AXE = Path(__file__).resolve().parents[1] / "portal" / "axe.min.js"
WIDE, NARROW = {"width": 1366, "height": 900}, {"width": 390, "height": 844}
WRONG_PIN = "846093"


class Hands:
    """The teller's clicks and keystrokes (the cardholder's PIN on the pad is counted apart)."""

    def __init__(self, page):
        self.page, self.clicks, self.keys, self.cardholder_keys = page, 0, 0, 0

    def click(self, selector: str) -> None:
        self.page.click(selector)
        self.clicks += 1

    def check(self, selector: str) -> None:
        self.page.check(selector)
        self.clicks += 1

    def _focused(self, selector: str) -> bool:
        """Is the cursor in that field once the page has settled? The field first (a click that loads the next
        step returns before it is there), then up to 1.5 s for the page's own focus: on a loaded machine
        the check ran before the new step's autofocus and counted a click the teller never makes."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        self.page.wait_for_selector(selector)
        try:
            self.page.wait_for_function("s => document.activeElement === document.querySelector(s)", arg=selector,
                                        timeout=1500)
        except PlaywrightTimeout:
            return False
        return True

    def _type(self, selector: str, text: str) -> None:
        if not self._focused(selector):  # the cursor is not there: one click to put it there
            self.clicks += 1
        self.page.fill(selector, text)

    def type(self, selector: str, text: str) -> None:
        self._type(selector, text)
        self.keys += len(text)

    def cardholder_types(self, selector: str, text: str) -> None:
        self.page.fill(selector, text)
        self.cardholder_keys += len(text)

    def count(self) -> tuple[int, int]:
        out = (self.clicks, self.keys)
        self.clicks = self.keys = 0
        return out


def sign_in(page, server, username: str = "teller", english: bool = False) -> None:
    page.goto(f"{server.url}/bank")
    assert page.url.endswith("/bank/login")
    if english:
        page.click("text=English")
        page.wait_for_selector("text=Bank outlet counter · Sign in")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/bank")


def serious_axe_violations(page) -> list[dict]:
    page.evaluate(AXE.read_text())  # not add_script_tag: an inline <script> the CSP (rightly) refuses
    result = page.evaluate("axe.run()")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def fits(page, width: int) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= width


def active_account(city, app, name="张三", fen=0):
    card = city.issued_card(name)
    teller = city.actor("teller")
    banking.activate(app, teller, card.pan, card.citizen_id, GOOD_PIN, GOOD_PIN, cardholder_in_person=True)
    if fen:
        banking.deposit(app, teller, card.pan, fen)
    return card


def test_one_customer_from_lookup_to_statement_with_the_card_typed_once_in_chinese(bank_city, app, live_server,
                                                                                   page):
    """Look up, activate, deposit, withdraw, statement: 19 digits typed once, 11 clicks, 47 keys in all."""
    card = bank_city.issued_card("欧阳明月")
    page.set_viewport_size(WIDE)
    sign_in(page, live_server)
    hands = Hands(page)
    counts = {}

    hands.type("input[name=pan]", card.pan)  # the home page's cursor is already in the card number field
    hands.click("button:has-text('查询账户')")
    page.wait_for_selector(".bank-account")
    assert page.inner_text("#customer [data-field=holder_name]") == "欧阳明月"
    assert "未启用" in page.inner_text("#customer")
    screenshot(page, "bank-customer-zh")
    counts["lookup"] = hands.count()

    hands.click("nav >> text=启用金融功能")
    assert page.locator("input[name=pan]").count() == 0  # the customer's card, not typed again
    hands.type("input[name=citizen_id]", card.citizen_id)
    hands.check("input[name=in_person]")
    hands.cardholder_types("input[name=pin]", GOOD_PIN)
    hands.cardholder_types("input[name=pin_again]", GOOD_PIN)
    hands.click("button:has-text('确认启用')")
    page.wait_for_selector("[data-result=activated]")
    assert "正常" in page.inner_text("#customer")  # the bar follows the account's state
    counts["activate"] = hands.count()

    hands.click("nav >> text=存款")
    hands.type("input[name=amount]", "1200")
    hands.click("button:has-text('下一步：核对')")
    page.wait_for_selector("[data-step=confirm]")
    assert page.inner_text("[data-field=last4]") == card.pan[-4:]
    assert page.inner_text("[data-field=confirm_holder]") == "欧阳明月"
    assert page.inner_text("[data-field=confirm_amount]") == "¥1,200.00"
    assert page.inner_text("[data-field=confirm_capitals]") == "壹仟贰佰元整"
    screenshot(page, "bank-deposit-confirm-zh")
    hands.click("button:has-text('确认存款')")
    page.wait_for_selector("[data-slip]")
    assert page.inner_text("[data-slip] [data-field=capitals]") == "壹仟贰佰元整"
    screenshot(page, "bank-deposit-slip-zh")
    counts["deposit"] = hands.count()

    hands.click("nav >> text=取款")
    hands.type("input[name=amount]", "200.50")
    hands.click("button:has-text('下一步：核对')")
    page.wait_for_selector("[data-step=confirm] input[name=pin]")
    hands.cardholder_types("input[name=pin]", GOOD_PIN)
    screenshot(page, "bank-withdraw-confirm-zh")
    hands.click("button:has-text('确认取款')")
    page.wait_for_selector("[data-result=withdrawal]")
    assert page.inner_text("[data-result=withdrawal] [data-field=balance]") == "999.50"
    assert page.inner_text("[data-slip] [data-field=capitals]") == "贰佰元伍角"
    slip_ref = page.inner_text("[data-slip] [data-field=ref]")
    screenshot(page, "bank-withdraw-slip-zh")
    counts["withdraw"] = hands.count()

    hands.click("nav >> text=对账单")
    page.wait_for_selector(".statement")
    assert slip_ref in page.inner_text(".statement")
    assert "999.50" in page.inner_text(".statement")
    screenshot(page, "bank-statement-zh")
    counts["statement"] = hands.count()

    assert card.pan not in page.content() and GOOD_PIN not in page.content()
    assert counts == {"lookup": (1, 19), "activate": (3, 18), "deposit": (3, 4), "withdraw": (3, 6),
                      "statement": (1, 0)}, counts
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["balance_fen"] == 99950


def test_the_same_visit_in_english_on_a_390px_tablet(bank_city, app, live_server, page):
    card = active_account(bank_city, app, "王五", 5000)
    page.set_viewport_size(NARROW)
    sign_in(page, live_server, english=True)
    assert "ICBC Xihu Sub-branch" in page.inner_text(".bank-who") and "GSB-001" not in page.inner_text(".bank-who")
    page.fill("input[name=pan]", card.pan)
    page.click("button:has-text('Look up')")
    page.wait_for_selector(".bank-account")
    assert "Account holder" in page.inner_text("#customer") and "王五" in page.inner_text("#customer")
    assert fits(page, 390)
    screenshot(page, "bank-customer-en-narrow")
    page.click("nav >> text=Deposit")
    page.fill("input[name=amount]", "1234.5")
    page.click("button:has-text('Next: check with the customer')")
    page.wait_for_selector("[data-step=confirm]")
    page.click("[data-action=edit]")  # back to the form, the amount kept
    page.wait_for_selector("input[name=amount]")
    assert page.input_value("input[name=amount]") == "1234.5" and page.locator("[data-step=confirm]").count() == 0
    page.click("button:has-text('Next: check with the customer')")
    page.wait_for_selector("[data-step=confirm]")
    assert page.inner_text("[data-field=confirm_amount]") == "¥1,234.50"
    assert page.inner_text("[data-field=confirm_capitals]") == "壹仟贰佰叁拾肆元伍角"
    assert fits(page, 390)
    screenshot(page, "bank-deposit-confirm-en-narrow")
    page.click("[data-action=confirm]")
    page.wait_for_selector("[data-slip]")
    slip = page.inner_text("[data-slip]")
    assert "ICBC Xihu Sub-branch" in slip and "1,284.50" in slip and "（" not in slip
    assert fits(page, 390)
    screenshot(page, "bank-deposit-slip-en-narrow")
    page.click("nav >> text=Statement")
    page.wait_for_selector(".statement")
    assert "ICBC" in page.inner_text(".statement") and "工商银行" not in page.content()
    assert "Cash deposit · ICBC Xihu Sub-branch" in page.inner_text(".statement")
    assert fits(page, 390)
    screenshot(page, "bank-statement-en-narrow")


def test_a_wrong_pin_shows_the_tries_left_and_keeps_the_amount(bank_city, app, live_server, page):
    card = active_account(bank_city, app, fen=10_000)
    page.set_viewport_size(WIDE)
    amount_typed(page, live_server, card, "50", "取款")
    page.click("button:has-text('下一步：核对')")
    page.fill("input[name=pin]", WRONG_PIN)
    page.click("button:has-text('确认取款')")
    page.wait_for_selector("[data-code=wrong_pin]")
    assert "还可尝试2次" in page.inner_text("[data-code=wrong_pin]")
    assert page.inner_text("[data-field=confirm_amount]") == "¥50.00"  # still at the PIN pad, amount kept
    assert page.input_value("input[name=pin]") == "" and WRONG_PIN not in page.content()
    screenshot(page, "bank-withdraw-wrong-pin-zh")
    page.fill("input[name=pin]", GOOD_PIN)
    page.click("button:has-text('确认取款')")
    page.wait_for_selector("[data-result=withdrawal]")
    page.click("text=English")
    page.click("nav >> text=Withdraw")
    page.fill("input[name=amount]", "1")
    page.click("button:has-text('Next: check with the customer')")
    page.fill("input[name=pin]", WRONG_PIN)
    page.click("[data-action=confirm]")
    page.wait_for_selector("[data-code=wrong_pin]")
    assert "2 tries left" in page.inner_text("[data-code=wrong_pin]")
    screenshot(page, "bank-withdraw-wrong-pin-en")
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["balance_fen"] == 5000


def amount_typed(page, server, card, amount: str, task: str = "存款") -> None:
    """Sign in, look the card up, open a money task (存款, 取款) and type its amount, sending nothing yet."""
    sign_in(page, server)
    page.fill("input[name=pan]", card.pan)
    page.click("button:has-text('查询账户')")
    page.click(f"nav >> text={task}")
    page.fill("input[name=amount]", amount)


def to_the_deposits_confirm_step(page, server, card, amount: str) -> None:
    """Sign in, look the card up, and type a deposit up to its confirm step."""
    amount_typed(page, server, card, amount)
    page.click("button:has-text('下一步：核对')")


def test_a_double_click_on_confirm_deposits_once(bank_city, app, live_server, page):
    card = active_account(bank_city, app)
    to_the_deposits_confirm_step(page, live_server, card, "10")
    page.dblclick("button:has-text('确认存款')")
    page.wait_for_selector("[data-slip]")
    page.wait_for_timeout(500)
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["balance_fen"] == 1000


def test_enter_pressed_twice_on_the_amount_stops_at_the_confirm_step_which_enter_then_confirms(
        bank_city, app, live_server, page):
    """Session 25's browser probe: Enter, Enter in the deposit amount field made the deposit, the second key
    landing on the confirm button the step focuses: a confirmation nobody read. An Enter in the step's first
    moments is dropped; read, Enter confirms it (the keyboard's way stays)."""
    card = active_account(bank_city, app)
    amount_typed(page, live_server, card, "10")
    page.press("input[name=amount]", "Enter")
    page.wait_for_selector("[data-action=confirm]")
    page.keyboard.press("Enter")  # the hurried second press
    page.keyboard.press("Enter")
    page.wait_for_timeout(400)
    assert page.query_selector("[data-slip]") is None and page.query_selector("[data-action=confirm]")
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["balance_fen"] == 0
    page.wait_for_timeout(600)
    page.keyboard.press("Enter")  # read, then confirmed
    page.wait_for_selector("[data-slip]")
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["balance_fen"] == 1000


def test_a_lost_answer_is_said_so_and_pressing_confirm_again_shows_the_first_result_once(
        bank_city, app, live_server, page):
    """Session 22's browser probe: a confirm whose answer was lost left the step as it was, in silence, and
    the teller reloaded and did it again (twice the money). The page now says the answer was lost, that the
    same button is safe, and focus goes there; the button answers the first result, doing nothing again.
    The confirm step focuses its button (it fell to <body>: 15 Tabs to reach it)."""
    card = active_account(bank_city, app)
    to_the_deposits_confirm_step(page, live_server, card, "44.44")
    page.wait_for_function("() => document.activeElement && document.activeElement.dataset.action === 'confirm'")

    def drop_the_answer(route):
        if route.request.method == "POST" and "step=confirmed" in (route.request.post_data or ""):
            route.fetch()  # the server does it...
            route.abort("connectionreset")  # ...and its answer never arrives
        else:
            route.continue_()

    page.route("**/bank/deposit", drop_the_answer)
    page.click("button:has-text('确认存款')")
    status = page.wait_for_selector("#net-status:not([hidden])")
    assert "不会重复办理" in status.inner_text()
    assert page.evaluate("document.activeElement.id") == "net-status"
    screenshot(page, "bank-lost-answer")
    page.unroute("**/bank/deposit")
    page.click("button:has-text('确认存款')")  # the same button: the first result, nothing done again
    page.wait_for_selector("[data-slip]")
    assert page.locator("#net-status").is_hidden()
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["balance_fen"] == 4444


def test_without_javascript_the_confirm_step_is_a_page_and_a_resent_form_applies_once(bank_city, app, live_server,
                                                                                     browser):
    card = active_account(bank_city, app, fen=2000)
    context = browser.new_context(viewport=WIDE, locale="zh-CN", java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, live_server)
        page.fill("input[name=pan]", card.pan)
        page.click("button:has-text('查询账户')")
        page.wait_for_url(f"{live_server.url}/bank")
        page.click("nav >> text=取款")
        page.fill("input[name=amount]", "7")
        page.click("button:has-text('下一步：核对')")
        page.wait_for_selector("[data-step=confirm]")
        assert page.inner_text("[data-field=confirm_capitals]") == "柒元整"
        page.click("button:has-text('返回修改')")
        page.wait_for_selector("input[name=amount]")
        assert page.input_value("input[name=amount]") == "7"
        page.click("button:has-text('下一步：核对')")
        page.wait_for_selector("[data-step=confirm]")
        screenshot(page, "bank-withdraw-confirm-nojs")
        page.fill("input[name=pin]", GOOD_PIN)
        page.click("button:has-text('确认取款')")
        page.wait_for_selector("[data-slip]")
        page.reload()  # the browser sends the same form again: the same key, so the same answer
        page.wait_for_selector("[data-slip]")
    finally:
        context.close()
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["balance_fen"] == 1300


def test_written_loss_and_closing_ask_for_confirmation_in_english(bank_city, app, live_server, page):
    card = active_account(bank_city, app, fen=8880)
    page.set_viewport_size(WIDE)
    sign_in(page, live_server, english=True)
    page.fill("input[name=pan]", card.pan)
    page.click("button:has-text('Look up')")
    page.click("nav >> text=Loss")
    page.fill("input[name=citizen_id]", card.citizen_id)
    page.check("input[value=written]")
    page.click("button:has-text('Confirm')")
    page.wait_for_selector("[data-step=confirm]")
    assert page.inner_text("[data-field=last4]") == card.pan[-4:]
    screenshot(page, "bank-loss-confirm-en")
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["status"] == "active"
    page.click("[data-action=confirm]")
    page.wait_for_selector("[data-result=written]")
    assert "12333" in page.inner_text(".reminder")
    page.fill("input[name=citizen_id]", card.citizen_id)
    page.check("input[value=cancel]")
    page.click("button:has-text('Confirm')")
    page.wait_for_selector("[data-result=cancel]")
    page.click("nav >> text=Close account")
    page.fill("input[name=citizen_id]", card.citizen_id)
    page.check("input[name=confirm]")
    page.click("button:has-text('Next: check with the customer')")
    page.wait_for_selector("[data-step=confirm]")
    assert page.inner_text("[data-field=confirm_amount]") == "¥88.80"
    assert page.inner_text("[data-field=confirm_capitals]") == "捌拾捌元捌角"
    screenshot(page, "bank-close-confirm-en")
    page.click("[data-action=confirm]")
    page.wait_for_selector("[data-result=closed]")
    assert "Pay the cardholder 88.80 yuan in cash" in page.inner_text("[data-result=closed]")
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["status"] == "closed"


def test_a_slip_is_found_by_its_reference_and_prints(bank_city, app, live_server, page, tmp_path):
    card = active_account(bank_city, app)
    sign_in(page, live_server)
    page.fill("input[name=pan]", card.pan)
    page.click("button:has-text('查询账户')")
    refs = []
    for yuan in ("3", "4"):
        page.click("nav >> text=存款")
        page.fill("input[name=amount]", yuan)
        page.click("button:has-text('下一步：核对')")
        page.click("button:has-text('确认存款')")
        page.wait_for_selector("[data-slip]")
        refs.append(page.inner_text("[data-slip] [data-field=ref]"))
    page.click("nav >> text=对账单")
    page.fill("input[data-field=ref-search]", refs[0].lower())
    page.click("button:has-text('查找')")
    page.wait_for_selector("text=显示全部")  # the search's answer has been swapped in
    assert page.locator("tr[data-ref]").count() == 1
    assert page.locator(f"tr[data-ref='{refs[0]}']").count() == 1
    screenshot(page, "bank-statement-ref-search-zh")
    page.click(f"tr[data-ref='{refs[0]}'] a")
    page.wait_for_selector("[data-slip]")
    assert page.inner_text("[data-slip] [data-field=capitals]") == "叁元整"
    with page.expect_download() as download_info:
        page.click("[data-action=slip-pdf]")
    target = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(target)
    assert target.read_bytes().startswith(b"%PDF") and refs[0] in target.name


def test_teller_of_another_bank_is_told_in_words_and_sees_no_name(bank_city, app, live_server, page):
    card = active_account(bank_city, app, "赵六")
    sign_in(page, live_server, "teller_jsb")
    page.fill("input[name=pan]", card.pan)
    page.click("button:has-text('查询账户')")
    page.wait_for_selector("[data-code=wrong_bank]")
    assert "此卡不属于本行" in page.inner_text("[data-code=wrong_bank]")
    assert "赵六" not in page.content()
    assert page.input_value("input[name=pan]") == card.pan  # kept, to correct a typo
    screenshot(page, "bank-wrong-bank-zh")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_bank_page_passes_axe_at_both_widths(bank_city, app, live_server, page, lang):
    card = active_account(bank_city, app, fen=1000)
    sign_in(page, live_server, "bsup", english=lang == "en")
    problems = {}
    page.set_viewport_size(WIDE)
    problems["home"] = serious_axe_violations(page)
    page.fill("input[name=pan]", card.pan)
    page.click("button[type=submit]:not(.secondary)")
    page.wait_for_selector(".bank-account")
    for width in (WIDE, NARROW):
        page.set_viewport_size(width)
        for path in ("/bank", "/bank/activate", "/bank/loss", "/bank/deposit", "/bank/withdraw", "/bank/pin-reset",
                     "/bank/close", "/bank/statement", "/bank/supervisor"):
            page.goto(live_server.url + path)
            problems[f"{path}@{width['width']}"] = serious_axe_violations(page)
            assert fits(page, width["width"]) or width is WIDE, path
        page.goto(live_server.url + "/bank/deposit")
        page.fill("input[name=amount]", "5")
        page.click("[data-field=amount] >> xpath=ancestor::form//button")
        page.wait_for_selector("[data-step=confirm]")
        problems[f"confirm@{width['width']}"] = serious_axe_violations(page)
        page.click("[data-action=confirm]")
        page.wait_for_selector("[data-slip]")
        problems[f"slip@{width['width']}"] = serious_axe_violations(page)
        screenshot(page, f"bank-slip-{lang}-{width['width']}")
    page.click(".bank-who button")
    page.wait_for_url(re.compile(r".*/bank/login$"))
    problems["login"] = serious_axe_violations(page)
    assert {k: v for k, v in problems.items() if v} == {}
