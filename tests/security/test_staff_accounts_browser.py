"""A center supervisor resets a clerk's forgotten password in Chromium, and the clerk, signed in with the
one-time password, is kept on the change page until they choose their own (RULES R1.10)."""

from __future__ import annotations

import pytest

from sscard.core.roles import CLI_OPERATOR
from sscard.services import staff
from tests.browser import screenshot
from tests.support import STAFF_PASSWORD

pytestmark = pytest.mark.browser
NEW_PASSWORD = "Clerk-own-2026"


def _sign_in(page, url: str, username: str, password: str) -> None:
    page.goto(url + "/console/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_a_supervisor_resets_a_clerks_password_and_the_clerk_must_change_it_first(browser, live_server, city):
    url = live_server.url
    boss = browser.new_context(locale="zh-CN").new_page()
    _sign_in(boss, url, "csup", STAFF_PASSWORD)
    boss.wait_for_url(url + "/console")
    boss.goto(url + "/console/staff")
    assert boss.locator("#staff-clerk2").count() == 0  # another center's clerk is not listed
    boss.locator("#staff-clerk [data-action=reset]").click()
    boss.wait_for_selector("#confirm")
    assert "clerk" in boss.inner_text("#confirm-title")
    boss.click("#confirm-yes")
    one_time = boss.inner_text("[data-field=one_time_password]").strip()
    assert len(one_time) == 12
    assert "待本人修改密码" in boss.inner_text("#staff-clerk")
    screenshot(boss, "console-staff-reset")
    boss.goto(url + "/console/staff")
    assert one_time not in boss.content()  # shown once

    clerk = browser.new_context(locale="zh-CN").new_page()
    _sign_in(clerk, url, "clerk", STAFF_PASSWORD)  # the old password no longer opens anything
    assert clerk.url.startswith(url + "/console/login")
    _sign_in(clerk, url, "clerk", one_time)
    clerk.wait_for_url(url + "/console/password")
    assert clerk.locator("#must-change").is_visible()
    clerk.goto(url + "/console/production")  # any other page sends them back to the change
    clerk.wait_for_url(url + "/console/password")
    clerk.fill("input[name=old]", one_time)
    clerk.fill("input[name=new]", NEW_PASSWORD)
    clerk.fill("input[name=new_again]", NEW_PASSWORD)
    clerk.click(".staff-password button[type=submit]")  # (the header's sign-out is a submit button too)
    clerk.wait_for_url(url + "/console")
    clerk.goto(url + "/console/production")
    assert clerk.url == url + "/console/production"
    screenshot(clerk, "console-staff-changed")
    for opened in (boss, clerk):
        opened.context.close()
    listed = {s["username"]: s for s in staff.list_staff(city.app, CLI_OPERATOR)["staff"]}
    assert listed["clerk"]["must_change_password"] is False and listed["clerk"]["failures"] == 0
