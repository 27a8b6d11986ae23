"""The bank-outlet console in a real browser, as a teller works it: Chinese by default, English by the switch."""

from __future__ import annotations

import re

import pytest

from sscard.core.errors import SscardError
from sscard.core.identifiers import mask_pan
from sscard.services import banking, loss
from tests.bank_console.conftest import GOOD_PIN
from tests.browser import screenshot
from tests.support import STAFF_PASSWORD

pytestmark = pytest.mark.browser


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


def test_teller_activates_on_the_pin_pad_and_works_the_counter_in_chinese(bank_city, app, live_server, page):
    card = bank_city.issued_card()
    page.goto(f"{live_server.url}/bank/login")
    screenshot(page, "bank-login-zh")
    sign_in(page, live_server)
    assert page.locator("h1").first.inner_text() == "银行网点柜台"

    page.click("nav >> text=启用金融功能")
    for name in ("pin", "pin_again"):
        field = page.locator(f"input[name={name}]")
        assert field.get_attribute("type") == "password"
        assert field.get_attribute("inputmode") == "numeric"
        assert field.get_attribute("autocomplete") == "off"
    page.fill("input[name=pan]", card.pan)
    page.fill("input[name=citizen_id]", card.citizen_id)
    page.check("input[name=in_person]")
    page.fill("input[name=pin]", GOOD_PIN)
    page.fill("input[name=pin_again]", GOOD_PIN)
    screenshot(page, "bank-activate-pinpad-zh")
    page.set_viewport_size({"width": 390, "height": 844})  # a counter tablet held upright
    screenshot(page, "bank-activate-pinpad-narrow")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 900})
    page.click("button:has-text('确认启用')")
    page.wait_for_selector("[data-result=activated]")
    assert "金融功能已启用" in page.inner_text("#desk")
    assert page.input_value("input[name=pin]") == ""  # never echoed back
    assert GOOD_PIN not in page.content()
    screenshot(page, "bank-activate-done-zh")

    page.click("nav >> text=存款")
    page.fill("input[name=pan]", card.pan)
    page.fill("input[name=amount]", "1,200.00")
    page.click("button:has-text('确认存款')")
    page.wait_for_selector("[data-result=deposit]")
    assert "已存入 1200.00 元" in page.inner_text("#desk")

    page.click("nav >> text=取款")
    page.fill("input[name=pan]", card.pan)
    page.fill("input[name=amount]", "200.50")
    page.fill("input[name=pin]", GOOD_PIN)
    page.click("button:has-text('确认取款')")
    page.wait_for_selector("[data-result=withdrawal]")
    assert page.inner_text("[data-result=withdrawal] [data-field=balance]") == "999.50"
    screenshot(page, "bank-withdraw-zh")

    page.click("nav >> text=柜台首页")
    page.fill("input[name=pan]", card.pan)
    page.click("button:has-text('查询账户')")
    page.wait_for_selector(".bank-account")
    assert page.inner_text(".bank-account [data-field=balance]") == "999.50"
    assert card.pan not in page.content() or page.input_value("input[name=pan]") == card.pan
    screenshot(page, "bank-home-lookup-zh")
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["balance_fen"] == 99950


def test_written_loss_confirmation_reminds_to_call_12333(bank_city, app, live_server, page):
    card = bank_city.issued_card()
    banking.activate(app, bank_city.actor("teller"), card.pan, card.citizen_id, GOOD_PIN, GOOD_PIN, cardholder_in_person=True)
    sign_in(page, live_server)
    page.click("nav >> text=挂失 / 解挂")
    page.fill("input[name=pan]", card.pan)
    page.fill("input[name=citizen_id]", card.citizen_id)
    page.check("input[value=written]")
    page.click("button:has-text('确认办理')")
    page.wait_for_selector("[data-result=written]")
    reminder = page.inner_text(".reminder")
    assert "12333" in reminder and "社会保障" in reminder
    assert mask_pan(card.pan) in page.inner_text("[data-result=written]")
    screenshot(page, "bank-loss-written-zh")
    page.fill("input[name=pan]", card.pan)
    page.fill("input[name=citizen_id]", card.citizen_id)
    page.check("input[value=cancel]")
    page.click("button:has-text('确认办理')")
    page.wait_for_selector("[data-result=cancel]")
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["status"] == "active"


def test_statement_and_pdf_in_english(bank_city, app, live_server, page, tmp_path):
    card = bank_city.issued_card()
    teller = bank_city.actor("teller")
    banking.activate(app, teller, card.pan, card.citizen_id, GOOD_PIN, GOOD_PIN, cardholder_in_person=True)
    banking.deposit(app, teller, card.pan, 300_00)
    banking.withdraw(app, teller, card.pan, 45_60, GOOD_PIN)
    loss.report_oral_loss(app, bank_city.cardholder(card), card.pan)
    sign_in(page, live_server, english=True)
    page.click("nav >> text=Statement")
    page.fill("input[name=pan]", card.pan)
    page.click("button:has-text('Show transactions')")
    page.wait_for_selector(".statement")
    text = page.inner_text(".statement")
    assert "Cash withdrawal" in text and "45.60" in text and "254.40" in text
    assert "Reported lost by phone" in text
    screenshot(page, "bank-statement-en")
    with page.expect_download() as download_info:
        page.click("[data-action=pdf]")
    download = download_info.value
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    assert target.read_bytes().startswith(b"%PDF")
    assert download.suggested_filename.endswith(".pdf")


def test_teller_of_another_bank_is_told_in_words(bank_city, app, live_server, page):
    card = bank_city.issued_card()
    sign_in(page, live_server, "teller_jsb")
    page.click("nav >> text=存款")
    page.fill("input[name=pan]", card.pan)
    page.fill("input[name=amount]", "10")
    page.click("button:has-text('确认存款')")
    page.wait_for_selector("[data-code=wrong_bank]")
    assert "此卡不属于本行，请到卡面所示银行的网点办理" in page.inner_text("[data-code=wrong_bank]")
    screenshot(page, "bank-wrong-bank-zh")
    page.click("text=English")
    page.click("nav >> text=Deposit")
    page.fill("input[name=pan]", card.pan)
    page.fill("input[name=amount]", "10")
    page.click("button:has-text('Deposit')")
    page.wait_for_selector("[data-code=wrong_bank]")
    assert "belongs to another bank" in page.inner_text("[data-code=wrong_bank]")
    screenshot(page, "bank-wrong-bank-en")


def test_supervisor_extends_an_expired_window_then_teller_activates(bank_city, app, live_server, page, clock,
                                                                    browser):
    card = bank_city.issued_card()
    clock.advance(days=70)
    sign_in(page, live_server, "bsup")
    page.click("nav >> text=启用金融功能")
    page.fill("input[name=pan]", card.pan)
    page.fill("input[name=citizen_id]", card.citizen_id)
    page.check("input[name=in_person]")
    page.fill("input[name=pin]", GOOD_PIN)
    page.fill("input[name=pin_again]", GOOD_PIN)
    page.click("button:has-text('确认启用')")
    page.wait_for_selector("[data-code=activation_window_expired]")
    page.click("#desk >> text=办理启用期限延期")
    page.fill("input[name=pan]", card.pan)
    page.check("input[value=extend]")
    page.fill("input[name=days]", "15")
    page.fill("input[name=reason]", "持卡人住院")
    page.click("button:has-text('确认办理')")
    page.wait_for_selector("[data-result=extend]")
    assert re.search(r"启用期限已延长15天", page.inner_text("#desk"))
    assert page.is_checked("input[value=extend]")  # the form is ready for the next card
    screenshot(page, "bank-supervisor-extend-zh")
    page.click("nav >> text=启用金融功能")
    page.fill("input[name=pan]", card.pan)
    page.fill("input[name=citizen_id]", card.citizen_id)
    page.check("input[name=in_person]")
    page.fill("input[name=pin]", GOOD_PIN)
    page.fill("input[name=pin_again]", GOOD_PIN)
    page.click("button:has-text('确认启用')")
    page.wait_for_selector("[data-result=activated]")


def test_idle_session_takes_the_teller_back_to_login(bank_city, live_server, page, clock):
    sign_in(page, live_server)
    page.click("nav >> text=存款")
    clock.advance(minutes=16)
    page.fill("input[name=pan]", "6222020000000000000")
    page.fill("input[name=amount]", "1")
    page.click("button:has-text('确认存款')")  # htmx answers 401 + HX-Redirect
    page.wait_for_url(f"{live_server.url}/bank/login")
    assert page.locator("input[name=username]").is_visible()


def test_pin_reset_and_account_close_in_english(bank_city, app, live_server, page):
    card = bank_city.issued_card()
    teller = bank_city.actor("teller")
    banking.activate(app, teller, card.pan, card.citizen_id, GOOD_PIN, GOOD_PIN, cardholder_in_person=True)
    banking.deposit(app, teller, card.pan, 88_80)
    for _ in range(3):
        with pytest.raises(SscardError):
            banking.withdraw(app, teller, card.pan, 100, "846093")
    sign_in(page, live_server, english=True)
    page.click("nav >> text=Reset PIN")
    page.fill("input[name=pan]", card.pan)
    page.fill("input[name=citizen_id]", card.citizen_id)
    page.check("input[name=in_person]")
    page.fill("input[name=new]", "846093")
    page.fill("input[name=new_again]", "846093")
    page.click("button:has-text('Reset the PIN')")
    page.wait_for_selector("[data-result=pin_reset]")
    assert "The PIN lock is lifted" in page.inner_text("[data-result=pin_reset]")
    assert page.input_value("input[name=new]") == ""
    screenshot(page, "bank-pin-reset-en")

    page.click("nav >> text=Close account")
    page.fill("input[name=pan]", card.pan)
    page.fill("input[name=citizen_id]", card.citizen_id)
    page.check("input[name=confirm]")
    page.click("button:has-text('Close the account')")
    page.wait_for_selector("[data-result=closed]")
    assert "Pay the cardholder 88.80 yuan in cash" in page.inner_text("[data-result=closed]")
    screenshot(page, "bank-close-en")
    assert banking.statement(app, teller, card.pan)["status"] == "closed"
