"""The window console driven in Chromium as a clerk would: Chinese by default, English by the switch."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from sscard.core.errors import SscardError
from sscard.models.counter import FeeReceipt
from sscard.services import attorney, passwords
from tests.browser import screenshot
from tests.support import STAFF_PASSWORD

from .helpers import AGENT_ID, ready_replacement

pytestmark = pytest.mark.browser


def _login(page, live_server, user="clerk"):
    page.goto(live_server.url + "/console/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/console")


def _lock_ss_password(app, city, card):
    holder = city.cardholder(card)
    for _ in range(3):
        with pytest.raises(SscardError):
            passwords.verify_ss_password(app, holder, card.card_number, "908172")


def test_clerk_serves_a_cardholder_from_loss_to_collection_in_chinese(page, live_server, city, app, tmp_path):
    card = city.issued_card("张三")
    _lock_ss_password(app, city, card)
    page.goto(live_server.url + "/console")
    assert page.url.endswith("/console/login")
    screenshot(page, "console-login")
    _login(page, live_server)
    assert "西湖区社保卡服务中心" in page.inner_text("h1")

    # find the person by citizen ID; the page shows only masked numbers
    page.fill("input[name=query]", card.citizen_id)
    page.click("form:has(input[name=query]) button")
    page.wait_for_url("**/console/persons/*")
    body = page.content()
    assert card.citizen_id not in body and card.card_number not in body
    assert "张*" in body and "社保应用密码已锁定" in body
    screenshot(page, "console-person")

    # identity check by the cardholder opens the visit
    page.fill("#identity input[name=citizen_id]", card.citizen_id)
    page.click("text=核验并开始办理")
    page.wait_for_url("**/console/visits/*")
    assert "已核验持卡人本人身份证件" in page.inner_text(".visit-head")

    # formal loss: the confirmation reminds of the bank side and its hotline
    page.click("text=办理正式挂失")
    assert "张三" in page.inner_text("#confirm")
    page.click("#confirm-yes")
    assert "已办理社会保障卡正式挂失" in page.inner_text("#done")
    assert "95588" in page.inner_text("#reminder")

    # replacement for a lost card, fee paid in cash, receipt downloaded
    form = page.locator("form[action$='/replace']")
    form.locator("select[name=reason]").select_option("lost")
    form.locator("select[name=payment]").select_option("cash")
    form.locator("button[type=submit]").click()
    step = page.inner_text("#confirm")  # nothing taken yet: the fee in figures and 大写, paid in cash
    assert "¥20.00" in step and "贰拾元整" in step and "现金" in step
    screenshot(page, "console-visit-replacement-fee-step")
    page.dblclick("#confirm-yes")  # a double click takes the fee once
    done = page.inner_text("#done")
    assert "补换卡申请已受理" in done and "¥20.00" in done
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(FeeReceipt)) == 1
    screenshot(page, "console-visit-replacement")
    with page.expect_download() as dl:
        page.click("#fee-receipt")
    path = tmp_path / "fee.pdf"
    dl.value.save_as(path)
    assert path.read_bytes().startswith(b"%PDF")
    visit_url = page.url.rsplit("/", 1)[0] if page.url.endswith("/replace") else page.url

    # production: send the batch, then it comes back ready
    page.click("nav >> text=制卡批次")
    page.click("text=送制新批次")
    page.click("#confirm-yes")
    assert "已送制" in page.inner_text("#done")
    page.click("text=制卡完成，入库待领")
    assert "待领取" in page.inner_text("#done")
    screenshot(page, "console-production")

    # collection in the same visit: old card cancelled, 60-day activation deadline shown
    page.goto(visit_url)
    page.locator("form[action$='/collect'] button").click()
    page.click("#confirm-yes")
    done = page.inner_text("#done")
    deadline = (app.clock.today() + timedelta(days=60)).isoformat()
    assert "原社会保障卡已注销" in done and deadline in done
    with page.expect_download() as dl:
        page.click("#collection-receipt")
    dl.value.save_as(tmp_path / "collect.pdf")
    assert (tmp_path / "collect.pdf").read_bytes().startswith(b"%PDF")
    screenshot(page, "console-visit-collected")

    # the SS password of the new card, and the query password, reset at the window
    page.locator("form[action$='/ss-password'] button").first.click()
    assert "社保应用密码已重置为初始密码" in page.inner_text("#done")
    page.click("text=重置信息查询密码")
    assert "信息查询密码已重置" in page.inner_text("#done")
    assert card.citizen_id not in page.content()


def test_agent_collects_with_a_valid_power_of_attorney_and_is_refused_with_an_expired_one_in_english(
        page, live_server, city, app, clock):
    card = city.issued_card("张三")
    ready_replacement(city, card)
    today = app.clock.today()
    expired = attorney.record(app, city.actor("clerk"), card.person_id, "赵六", AGENT_ID, ["card.collect"],
                              today - timedelta(days=30), today - timedelta(days=1), "WT-OLD-1")
    page.goto(live_server.url + "/lang/en")
    _login(page, live_server)
    assert "Cards awaiting collection" in page.content()
    screenshot(page, "console-home-en")
    page.click("text=Hand over")
    page.wait_for_url("**/console/persons/*")

    # the expired power of attorney is refused at the identity check
    page.check("input[name=presenter][value=agent]")
    page.fill("#identity input[name=citizen_id]", card.citizen_id)
    page.select_option("select[name=attorney_id]", str(expired["id"]))
    page.fill("input[name=agent_citizen_id]", AGENT_ID)
    page.click("text=Check and start")
    assert "not valid, has expired" in page.inner_text(".msg.error")
    screenshot(page, "console-poa-expired-en")

    # record a valid one naming collection, through the page
    page.click("text=Record a power of attorney")
    page.fill("input[name=agent_name]", "李四")
    page.fill("#attorneys input[name=agent_citizen_id]", AGENT_ID)
    page.check("input[name=scope][value='card.collect']")
    page.fill("input[name=document_ref]", "WT-2026-88")
    page.click("#attorneys button:has-text('Record')")
    assert "Power of attorney recorded" in page.inner_text(".msg.ok")
    valid_id = attorney.list_for_person(app, city.actor("clerk"), card.person_id)["attorneys"][0]["id"]

    page.check("input[name=presenter][value=agent]")
    page.fill("#identity input[name=citizen_id]", card.citizen_id)
    page.select_option("select[name=attorney_id]", str(valid_id))
    page.fill("input[name=agent_citizen_id]", AGENT_ID)
    page.click("text=Check and start")
    page.wait_for_url("**/console/visits/*")
    shown = page.inner_text("#poa-shown")
    assert "李*" in shown and "WT-2026-88" in shown and "Collect the new card" in shown
    assert AGENT_ID not in page.content()
    page.locator("form[action$='/collect'] button").click()
    page.click("#confirm-yes")
    assert "New card handed over" in page.inner_text("#done")
    screenshot(page, "console-agent-collected-en")
    with page.expect_download() as dl:
        page.click("#collection-receipt")
    assert dl.value.suggested_filename.endswith(".pdf")

    # the power of attorney is revoked from the person's page (htmx swaps the list in place)
    page.click("text=Person and powers of attorney")
    page.on("dialog", lambda dialog: dialog.accept())
    row = page.locator("#attorneys tr", has_text="WT-2026-88")
    row.locator("button:has-text('Revoke')").click()
    page.wait_for_selector("#attorneys tr:has-text('WT-2026-88') .poa-revoked")
    assert attorney.view(app, city.actor("clerk"), valid_id)["status"] == "revoked"


def test_agent_without_collection_in_scope_sees_collection_disabled_with_the_reason(page, live_server, city, app):
    card = city.issued_card("张三")
    ready_replacement(city, card)
    poa = attorney.record(app, city.actor("clerk"), card.person_id, "李四", AGENT_ID, ["replacement.apply"],
                          app.clock.today(), app.clock.today() + timedelta(days=10), "WT-9")
    _login(page, live_server)
    page.goto(f"{live_server.url}/console/persons/{card.person_id}")
    page.check("input[name=presenter][value=agent]")
    page.fill("#identity input[name=citizen_id]", card.citizen_id)
    page.select_option("select[name=attorney_id]", str(poa["id"]))
    page.fill("input[name=agent_citizen_id]", AGENT_ID)
    page.click("text=核验并开始办理")
    page.wait_for_url("**/console/visits/*")
    button = page.locator("form[action$='/collect'] button")
    assert button.is_disabled()
    assert "授权委托书未委托此事项：领取新卡" in page.locator("form[action$='/collect']").inner_text()


def test_supervisor_waives_a_fee_and_reads_the_day_report_with_csv(page, live_server, city, app, tmp_path):
    from sscard.services import replacement

    paid, waived = city.issued_card("张三"), city.issued_card("王五")
    replacement.apply(app, city.actor("clerk"), paid.card_number, "damaged", paid.citizen_id, payment="cash")
    _login(page, live_server, "csup")
    page.fill("input[name=query]", waived.card_number)
    page.click("form:has(input[name=query]) button")
    page.wait_for_url("**/console/persons/*")
    page.fill("#identity input[name=citizen_id]", waived.citizen_id)
    page.click("text=核验并开始办理")
    form = page.locator("form[action$='/replace']")
    form.locator("select[name=reason]").select_option("damaged")
    form.locator("select[name=payment]").select_option("waived")
    form.locator("input[name=waive_reason]").fill("低保对象")
    form.locator("button[type=submit]").click()
    assert "工本费已由主管减免" in page.inner_text("#done")
    page.click("nav >> text=业务日报")
    assert page.inner_text("#fees-total") == "20.00"
    body = page.inner_text("main")
    assert "补换卡受理\t1" in body and "补换卡受理（减免）\t1" in body  # in words: codes are the CSV's (session 22)
    assert "replacement.apply" not in body
    screenshot(page, "console-report")
    with page.expect_download() as dl:
        page.click("#csv")
    dl.value.save_as(tmp_path / "day.csv")
    text = (tmp_path / "day.csv").read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].startswith("类别,工作人员")
    assert "20.00" in text
