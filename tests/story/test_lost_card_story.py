"""The lost-card story end to end, through the channels people use: 12333 (the API), the bank counter, the
service-center window, the factory, an agent with a power of attorney, and the bank again.

Zhang San has an activated card with money on it. He loses it: he reports the social security side by
12333 (a temporary loss) and the bank side at his bank's counter (a written loss). At the window he makes
the loss formal and applies for a replacement, paying the fee in cash against a receipt, and leaves a
power of attorney for his daughter to collect the new card. The card is made; she collects it. Within
the activation window he activates the new card at the bank: the old account's whole balance moves over
and the old account closes. From then on the old card is refused everywhere.
"""

from __future__ import annotations

from datetime import date

import httpx
import pytest
from sqlalchemy import select

from sscard.core.identifiers import make_citizen_id, mask_pan
from sscard.models.foundation import Card
from sscard.services import banking, cards, ledger
from tests.bank_console.conftest import GOOD_PIN
from tests.browser import screenshot
from tests.support import STAFF_PASSWORD, City

pytestmark = pytest.mark.browser
OLD_BALANCE_FEN = 1_234_56
NEW_PIN = "592807"


def staff_page(browser, server, console: str, username: str):
    """A browser window of its own (the staff cookie is per browser), signed in at /console or /bank."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(10_000)
    sign_in(page, server, console, username)
    return page


def sign_in(page, server, console: str, username: str) -> None:
    page.goto(f"{server.url}/{console}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/{console}")


def open_person(page, server, citizen_id: str) -> None:
    page.goto(f"{server.url}/console")
    page.fill("form[action='/console/find'] input[name=query]", citizen_id)
    page.click("form[action='/console/find'] button[type=submit] >> nth=0")
    page.wait_for_url(f"{server.url}/console/persons/*")


def new_card_of(city: City, old_number: str) -> tuple[str, str]:
    """The replacement's card number and PAN (the page shows them masked; the test reads them)."""
    with city.app.db.session() as s:
        old_id = s.scalar(select(Card.id).where(Card.card_number == old_number))
        number = s.scalar(select(Card.card_number).where(Card.replaces_card_id == old_id))
    return number, city.pan_of(number)


def test_lost_card_story(app, city, live_server, browser, clock, tmp_path):
    server = live_server
    teller, clerk = city.actor("teller"), city.actor("clerk")
    zhang = city.issued_card("张三")
    banking.activate(app, teller, zhang.pan, zhang.citizen_id, GOOD_PIN, GOOD_PIN, cardholder_in_person=True)
    banking.deposit(app, teller, zhang.pan, OLD_BALANCE_FEN)
    daughter_id = make_citizen_id("330106", date(2005, 3, 9), 124)
    api = httpx.Client(base_url=server.url, timeout=10)

    # Day 10: the card is lost. 12333 (the API twin of the hotline): a temporary SS loss.
    clock.advance(days=10)
    login = api.post("/api/v1/cardholder/login", json={"login": zhang.citizen_id,
                                                        "password": zhang.card_number[-6:]})
    assert login.status_code == 200, login.text
    assert login.json()["must_change_password"]  # the initial one opens its own change only (RULES R4.9)
    first = {"Authorization": f"Bearer {login.json()['token']}"}
    own = "80468213"
    changed = api.post("/api/v1/cardholder/query-password/change", json={"old": zhang.card_number[-6:], "new": own,
                       "new_again": own}, headers={**first, "Idempotency-Key": "qp-1"})
    assert changed.status_code == 200, changed.text
    login = api.post("/api/v1/cardholder/login", json={"login": zhang.citizen_id, "password": own})
    holder = {"Authorization": f"Bearer {login.json()['token']}"}
    temporary = api.post(f"/api/v1/cards/{zhang.card_number}/ss-loss/temporary",
                         headers={**holder, "Idempotency-Key": "tl-1"})
    assert temporary.status_code == 200, temporary.text
    assert temporary.json()["ss_status"] == "temporary_loss"
    assert "95588" in temporary.json()["reminder"]["zh"]  # the bank side is separate: call the bank

    # ... and the bank side at the counter of his bank: a written loss, reminding him of 12333.
    bank = staff_page(browser, server, "bank", "teller")
    serve_customer(bank, zhang.pan)
    bank.click("nav >> text=挂失 / 解挂")
    bank.fill("input[name=citizen_id]", zhang.citizen_id)
    bank.check("input[value=written]")
    bank.click("button:has-text('确认办理')")
    bank.wait_for_selector("[data-step=confirm]")  # names the card's last digits before anything is done
    bank.click("[data-action=confirm]")
    bank.wait_for_selector("[data-result=written]")
    assert "12333" in bank.inner_text(".reminder")
    screenshot(bank, "bank-story-1-written-loss")

    # Day 12, the window: ID check, formal loss, replacement with the fee in cash, a power of attorney.
    clock.advance(days=2)
    window = staff_page(browser, server, "console", "clerk")
    open_person(window, server, zhang.citizen_id)
    window.click("#attorneys summary")
    poa_form = window.locator("form[action$='/attorneys']")
    poa_form.locator("input[name=agent_name]").fill("张小花")
    poa_form.locator("input[name=agent_citizen_id]").fill(daughter_id)
    poa_form.locator("input[name=scope][value='card.collect']").check()
    poa_form.locator("input[name=document_ref]").fill("WT-2026-0117")
    poa_form.locator("button[type=submit]").click()
    window.wait_for_selector("text=授权委托书已登记")
    window.check("#identity input[name=presenter][value=cardholder]")
    window.fill("#identity input[name=citizen_id]", zhang.citizen_id)
    window.click("#identity button[type=submit]")
    window.wait_for_url(f"{server.url}/console/visits/*")
    window.click("form[action$='/formal-loss'] button[type=submit]")
    window.click("#confirm-yes")  # the step that names the person and the card's last digits
    window.wait_for_selector("#done")
    assert "正式挂失" in window.inner_text("#done")
    assert "95588" in window.inner_text("#reminder")
    replace = window.locator("form[action$='/replace']")
    replace.locator("select[name=reason]").select_option("lost")
    replace.locator("select[name=payment]").select_option("cash")
    replace.locator("button[type=submit]").click()
    assert "贰拾元整" in window.inner_text("#confirm")  # the fee in words, before it is taken
    window.click("#confirm-yes")
    window.wait_for_selector("#fee-receipt")
    assert "20.00" in window.inner_text("#done")
    with window.expect_download() as receipt:
        window.click("#fee-receipt")
    receipt_path = tmp_path / "receipt.pdf"
    receipt.value.save_as(receipt_path)
    assert receipt_path.read_bytes().startswith(b"%PDF")
    new_number, new_pan = new_card_of(city, zhang.card_number)
    assert new_number and new_number != zhang.card_number and new_pan != zhang.pan

    # Production: the batch goes to the factory and comes back 15 working days later.
    window.goto(f"{server.url}/console/production")
    window.click("form[action='/console/production/start'] button")
    window.click("#confirm-yes")
    window.wait_for_selector("#done")
    clock.advance(days=21)
    sign_in(window, server, "console", "clerk")
    window.goto(f"{server.url}/console/production")
    window.click("form[action$='/complete'] button")
    window.wait_for_selector("#done")

    # Day 33: the daughter collects the new card with the power of attorney and her own ID.
    open_person(window, server, zhang.citizen_id)
    window.check("#identity input[name=presenter][value=agent]")
    window.fill("#identity input[name=citizen_id]", zhang.citizen_id)
    window.locator("#identity select[name=attorney_id]").select_option(index=1)
    window.fill("#identity input[name=agent_citizen_id]", daughter_id)
    window.click("#identity button[type=submit]")
    window.wait_for_url(f"{server.url}/console/visits/*")
    assert "张*" in window.inner_text("#poa-shown")
    window.click("form[action$='/collect'] button[type=submit]")
    window.click("#confirm-yes")
    window.wait_for_selector("#done")
    assert "原社会保障卡已注销" in window.inner_text("#done")
    collected = cards.card_status(app, clerk, new_number)
    assert collected["ss_status"] == "normal" and collected["bank"]["status"] == "not_activated"
    assert cards.card_status(app, clerk, zhang.card_number)["ss_status"] == "cancelled"
    # the old account waits, with its money, until the new card's financial function is activated
    assert banking.statement(app, teller, zhang.pan)["balance_fen"] == OLD_BALANCE_FEN

    # Day 73 (40 days after collection, inside the 60-day window): activation at the bank, in person.
    clock.advance(days=40)
    sign_in(bank, server, "bank", "teller")
    serve_customer(bank, new_pan)
    bank.click("nav >> text=启用金融功能")
    bank.fill("input[name=citizen_id]", zhang.citizen_id)
    bank.check("input[name=in_person]")
    bank.fill("input[name=pin]", NEW_PIN)
    bank.fill("input[name=pin_again]", NEW_PIN)
    bank.click("button:has-text('确认启用')")
    bank.wait_for_selector("[data-result=activated]")
    carried = bank.inner_text("[data-field=carried]")
    assert mask_pan(zhang.pan) in carried and "1,234.56" in carried
    assert bank.inner_text("[data-result=activated] [data-field=balance]").replace(",", "") == "1234.56"
    screenshot(bank, "bank-story-2-activation-carry-over")

    # The old card refuses every use from now on.
    kiosk = {"Authorization": f"Bearer {city.token(terminal='KIOSK-1')}", "Idempotency-Key": "v-1"}
    verify = api.post(f"/api/v1/terminal/cards/{zhang.card_number}/ss-password/verify", json={"password": "123456"},
                      headers=kiosk)
    # refused as a cancelled card (services.passwords answers card_not_usable naming the state)
    assert verify.status_code == 409 and verify.json()["code"] in ("card_cancelled", "card_not_usable"), verify.text
    assert verify.json()["code"] == "card_cancelled" or "cancelled" in verify.text
    # the query password is the person's: the one he chose still logs him in (a fresh token, day 73)
    login = api.post("/api/v1/cardholder/login", json={"login": zhang.citizen_id, "password": own})
    holder = {"Authorization": f"Bearer {login.json()['token']}"}
    status = api.get(f"/api/v1/cards/{zhang.card_number}", headers=holder)
    assert status.status_code == 200
    assert status.json()["ss_status"] == "cancelled" and status.json()["bank"]["status"] == "closed"
    atm = {"Authorization": f"Bearer {city.token(terminal='ATM-GSB-1')}"}
    withdrawal = api.post("/api/v1/terminal/withdrawal", json={"pan": zhang.pan, "amount_fen": 100, "pin": GOOD_PIN},
                          headers={**atm, "Idempotency-Key": "w-1"})
    assert withdrawal.status_code == 409 and withdrawal.json()["code"] == "account_closed", withdrawal.text
    pos = {"Authorization": f"Bearer {city.token(terminal='POS-1')}", "Idempotency-Key": "p-1"}
    payment = api.post("/api/v1/terminal/payments", json={"pan": zhang.pan, "amount_fen": 100, "pin": GOOD_PIN},
                       headers=pos)
    assert payment.status_code == 409 and payment.json()["code"] == "account_closed", payment.text
    serve_customer(bank, zhang.pan)
    bank.click("nav >> text=取款")
    bank.fill("input[name=amount]", "1")
    bank.click("button:has-text('下一步：核对')")
    bank.wait_for_selector("[data-code=account_closed], [data-step=confirm] input[name=pin]")
    if not bank.locator("[data-code=account_closed]").count():
        bank.fill("input[name=pin]", GOOD_PIN)
        bank.click("button:has-text('确认取款')")
        bank.wait_for_selector("[data-code=account_closed]")
    screenshot(bank, "bank-story-3-old-card-refused")

    # The new card works with the new PIN and holds the old balance; the money added up all along.
    serve_customer(bank, new_pan)
    bank.click("nav >> text=取款")
    bank.fill("input[name=amount]", "34.56")
    bank.click("button:has-text('下一步：核对')")
    bank.fill("[data-step=confirm] input[name=pin]", NEW_PIN)
    bank.click("button:has-text('确认取款')")
    bank.wait_for_selector("[data-result=withdrawal]")
    assert bank.inner_text("[data-result=withdrawal] [data-field=balance]").replace(",", "") == "1200.00"
    with app.db.session() as s:
        books = ledger.check_invariants(s)
    assert books["problems"] == [] and books["sum_posted_fen"] == 0
    api.close()


def serve_customer(bank, pan: str) -> None:
    """The bank counter serves one customer at a time: end the one at the desk, then read the card once."""
    if bank.locator("[data-action=end-customer]").count():
        bank.click("[data-action=end-customer]")
    bank.wait_for_selector("input[name=pan]")
    bank.fill("input[name=pan]", pan)
    bank.click("button:has-text('查询账户')")
    bank.wait_for_selector("[data-action=end-customer]")
