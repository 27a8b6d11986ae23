"""The supervisor reverses a clerk's mistaken formal loss in Chromium, keyboard first, as at a busy counter."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sscard.models.foundation import Card
from sscard.services import loss
from tests.browser import screenshot
from tests.support import STAFF_PASSWORD

pytestmark = pytest.mark.browser


def test_a_supervisor_types_the_reason_confirms_and_sees_the_card_back_in_use(page, live_server, city, app):
    card = city.issued_card("张三")
    loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)
    page.goto(live_server.url + "/console/login")
    page.fill("input[name=username]", "csup")
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/console")
    page.click("a[href='/console/reversals']")
    page.wait_for_url("**/console/reversals")
    row = page.locator("tr", has_text="正式挂失").first
    assert card.card_number not in page.content()
    row.locator("input[name=reason]").fill("认错了卡，持卡人并未挂失")
    row.locator("input[name=reason]").press("Enter")
    page.wait_for_selector("#confirm")
    assert "认错了卡，持卡人并未挂失" in page.inner_text("#confirm-reason")
    screenshot(page, "console-reversal-confirm")
    page.click("#confirm-yes")
    page.wait_for_selector("#done")
    assert "正常使用" in page.inner_text("#done")
    assert "已撤销" in page.inner_text("#done")
    screenshot(page, "console-reversal-done")
    with app.db.session() as s:
        assert s.scalar(select(Card.ss_status).where(Card.card_number == card.card_number)) == "normal"
    assert "该业务已撤销" in page.content()  # the row now says why it cannot be reversed again
