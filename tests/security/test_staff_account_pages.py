"""The staff account pages from outside (real HTTP through the composed app): the supervisors' Staff page at
/console/staff and /bank/staff, "change my password" for everyone, the must-change flow after a reset, and a
disabled member's open session and API token dead on their next request (session 28)."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from sscard.composition import create_app
from sscard.core.roles import CLI_OPERATOR
from sscard.models.foundation import AuditRecord
from sscard.services import staff
from tests.support import STAFF_PASSWORD, bearer

LOGIN_TOKEN = re.compile(r'name="login_token" value="([^"]+)"')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SEALED = re.compile(r'name="sealed" value="([^"]+)"')
OP_KEY = re.compile(r'id="confirm".*?name="op_key" value="([^"]+)"', re.S)
ONE_TIME = re.compile(r'data-field="one_time_password">([^<]+)<')
NEW_PASSWORD = "Fresh-pass-2027"


def _sign_in(client: TestClient, area: str, username: str, password: str):
    page = client.get(f"/{area}/login")
    token = LOGIN_TOKEN.search(page.text).group(1)
    return client.post(f"/{area}/login", data={"login_token": token, "username": username, "password": password},
                       follow_redirects=False)


def _act(client: TestClient, area: str, username: str, action: str):
    """The Staff page's button, then its confirm step."""
    listing = client.get(f"/{area}/staff")
    assert listing.status_code == 200, listing.text
    csrf = CSRF.search(listing.text).group(1)
    asked = client.post(f"/{area}/staff/{username}/{action}", data={"csrf_token": csrf, "op_key": "k-" + action})
    assert asked.status_code == 200 and 'id="confirm"' in asked.text
    return client.post(f"/{area}/staff/{username}/{action}", data={
        "csrf_token": csrf, "op_key": OP_KEY.search(asked.text).group(1), "sealed": SEALED.search(asked.text).group(1),
        "confirmed": "1"})


@pytest.mark.parametrize("area, supervisor, member", [("console", "csup", "clerk"), ("bank", "bsup", "teller")])
def test_a_supervisor_disables_a_member_whose_open_session_and_token_die_at_once(app, city, area, supervisor,
                                                                                   member):
    token = city.token(member)
    with TestClient(create_app(app)) as boss, TestClient(create_app(app)) as them:
        assert _sign_in(them, area, member, STAFF_PASSWORD).status_code == 303
        assert them.get(f"/{area}", follow_redirects=False).status_code == 200
        assert them.get("/api/v1/persons?name=x", headers=bearer(token)).status_code != 401
        assert _sign_in(boss, area, supervisor, STAFF_PASSWORD).status_code == 303
        done = _act(boss, area, member, "disable")
        assert done.status_code == 200 and 'id="done"' in done.text
        assert "已停用" in boss.get(f"/{area}/staff").text
        after = them.get(f"/{area}", follow_redirects=False)
        assert after.status_code == 303 and after.headers["location"].endswith(f"/{area}/login")
        assert them.get("/api/v1/persons?name=x", headers=bearer(token)).status_code == 401
        assert _sign_in(them, area, member, STAFF_PASSWORD).status_code == 401  # as a wrong password


def test_after_a_reset_only_the_change_page_opens_then_everything(app, city, caplog):
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(app)) as boss, TestClient(create_app(app)) as clerk:
        assert _sign_in(boss, "console", "csup", STAFF_PASSWORD).status_code == 303
        done = _act(boss, "console", "clerk", "reset")
        one_time = ONE_TIME.search(done.text).group(1)
        assert len(one_time) == 12 and "待本人修改密码" in boss.get("/console/staff").text
        assert one_time not in boss.get("/console/staff").text  # shown once

        signed = _sign_in(clerk, "console", "clerk", one_time)
        assert signed.status_code == 303 and signed.headers["location"] == "/console/password"
        for path in ("/console", "/console/production", "/console/staff"):
            sent = clerk.get(path, follow_redirects=False)
            assert sent.status_code == 303 and sent.headers["location"] == "/console/password", path
        page = clerk.get("/console/password")
        assert page.status_code == 200 and 'id="must-change"' in page.text
        csrf = CSRF.search(page.text).group(1)
        same = clerk.post("/console/password", data={"csrf_token": csrf, "old": one_time, "new": one_time,
                                                      "new_again": one_time})
        assert same.status_code == 422
        changed = clerk.post("/console/password", data={"csrf_token": csrf, "old": one_time, "new": NEW_PASSWORD,
                                                         "new_again": NEW_PASSWORD}, follow_redirects=False)
        assert changed.status_code == 303 and changed.headers["location"] == "/console"
        assert clerk.get("/console", follow_redirects=False).status_code == 200
    assert one_time not in caplog.text and NEW_PASSWORD not in caplog.text  # no log line holds either
    assert staff.list_staff(app, CLI_OPERATOR)["staff"][1]["must_change_password"] is False


def test_the_staff_page_is_the_supervisors_and_refuses_another_centers_clerk(app, city):
    with TestClient(create_app(app)) as client:
        assert _sign_in(client, "console", "clerk", STAFF_PASSWORD).status_code == 303
        assert client.get("/console/staff").status_code == 403
        csrf = CSRF.search(client.get("/console/password").text).group(1)
        assert client.post("/console/staff/clerk2/disable", data={"csrf_token": csrf}).status_code == 403
    with TestClient(create_app(app)) as client:
        assert _sign_in(client, "console", "csup", STAFF_PASSWORD).status_code == 303
        listing = client.get("/console/staff")
        assert 'id="staff-clerk"' in listing.text and "clerk2" not in listing.text
        refused = _act(client, "console", "clerk2", "disable")
        assert refused.status_code == 403 and "此业务不属于本服务网点" in refused.text
        forged = client.post("/console/staff/clerk/disable", data={
            "csrf_token": CSRF.search(listing.text).group(1), "confirmed": "1", "sealed": "forged"})
        assert forged.status_code == 422  # not the confirm step shown
        no_csrf = client.post("/console/staff/clerk/disable", data={"confirmed": "1"})
        assert no_csrf.status_code == 403
    assert staff.list_staff(app, CLI_OPERATOR)["staff"][1]["active"]

    def refusals(session):
        return [(r.object_id, r.result) for r in session.scalars(select(AuditRecord).where(
            AuditRecord.operation == "staff.disable"))]

    assert app.db.run(refusals) == [("clerk2", "wrong_center")]


def test_a_teller_changes_their_own_password_at_the_bank_and_a_wrong_old_one_counts(app, city):
    with TestClient(create_app(app)) as client:
        assert _sign_in(client, "bank", "teller", STAFF_PASSWORD).status_code == 303
        page = client.get("/bank/password")
        csrf = CSRF.search(page.text).group(1)
        wrong = client.post("/bank/password", data={"csrf_token": csrf, "old": "not-my-password",
                                                    "new": NEW_PASSWORD, "new_again": NEW_PASSWORD})
        assert wrong.status_code == 401 and "密码错误" in wrong.text
        done = client.post("/bank/password", data={"csrf_token": csrf, "old": STAFF_PASSWORD, "new": NEW_PASSWORD,
                                                   "new_again": NEW_PASSWORD})
        assert done.status_code == 200 and 'id="done"' in done.text
        assert client.get("/bank", follow_redirects=False).status_code == 200  # this session goes on
        assert STAFF_PASSWORD not in done.text and NEW_PASSWORD not in done.text
    with TestClient(create_app(app)) as client:
        assert _sign_in(client, "bank", "teller", NEW_PASSWORD).status_code == 303


def test_a_bank_supervisor_lifts_a_lock_from_the_staff_page(app, city):
    with TestClient(create_app(app)) as guesser:
        for n in range(5):
            _sign_in(guesser, "bank", "teller", f"guess-{n}-password")
        assert _sign_in(guesser, "bank", "teller", STAFF_PASSWORD).status_code == 423
    with TestClient(create_app(app)) as boss:
        assert _sign_in(boss, "bank", "bsup", STAFF_PASSWORD).status_code == 303
        assert "锁定至" in boss.get("/bank/staff").text
        assert _act(boss, "bank", "teller", "unlock").status_code == 200
        assert "锁定至" not in boss.get("/bank/staff").text
    with TestClient(create_app(app)) as client:
        assert _sign_in(client, "bank", "teller", STAFF_PASSWORD).status_code == 303


def test_the_operator_signs_in_at_the_window_for_the_staff_page_only_and_runs_anyones_account(app, city):
    """The operator had no web page: at /console now, for the staff accounts (every center's and bank's staff)
    and their own password; every other window page refuses them (403), as before."""
    with TestClient(create_app(app)) as client:
        signed = _sign_in(client, "console", "operator", STAFF_PASSWORD)
        assert signed.status_code == 303 and signed.headers["location"] == "/console/staff"
        assert client.get("/console", follow_redirects=False).status_code == 403
        assert client.get("/console/production", follow_redirects=False).status_code == 403
        listing = client.get("/console/staff")
        assert all(f'id="staff-{u}"' in listing.text for u in ("clerk2", "teller_jsb", "bsup"))
        assert _act(client, "console", "teller_jsb", "disable").status_code == 200
        assert client.get("/console/password").status_code == 200
    listed = {e["username"]: e for e in staff.list_staff(app, CLI_OPERATOR)["staff"]}
    assert not listed["teller_jsb"]["active"]


def test_a_double_click_on_the_reset_confirmation_resets_once_and_shows_the_same_password(app, city):
    with TestClient(create_app(app)) as boss:
        assert _sign_in(boss, "bank", "bsup", STAFF_PASSWORD).status_code == 303
        listing = boss.get("/bank/staff")
        csrf = CSRF.search(listing.text).group(1)
        asked = boss.post("/bank/staff/teller/reset", data={"csrf_token": csrf, "op_key": "k-reset"})
        confirmed = {"csrf_token": csrf, "op_key": OP_KEY.search(asked.text).group(1),
                     "sealed": SEALED.search(asked.text).group(1), "confirmed": "1"}
        first, second = (boss.post("/bank/staff/teller/reset", data=confirmed) for _ in range(2))
        assert first.status_code == second.status_code == 200
        shown = ONE_TIME.search(first.text).group(1)
        assert ONE_TIME.search(second.text).group(1) == shown

    def resets(session):
        return session.scalars(select(AuditRecord.result).where(AuditRecord.operation == "staff.reset_password")).all()

    assert app.db.run(resets) == ["ok"]
    with TestClient(create_app(app)) as teller:
        signed = _sign_in(teller, "bank", "teller", shown)
        assert signed.status_code == 303 and signed.headers["location"] == "/bank/password"
