"""Staff accounts an operator and the supervisors can run (session 28): disable and enable, reset a forgotten
password to a one-time one that must be changed, lift a login lock early, change one's own password; each a
declared operation with its audit record, scoped to the actor's own center's clerks or own bank's tellers."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sscard.core.errors import SscardError
from sscard.core.passwords import check_new_staff_password, one_time_staff_password
from sscard.core.roles import CLI_OPERATOR, Channel
from sscard.models.foundation import ApiToken, AuditRecord, IdempotencyRecord, StaffUser, WebSession
from sscard.services import staff, websession
from tests.support import STAFF_PASSWORD

NEW_PASSWORD = "Fresh-pass-2027"


def _records(app, operation: str) -> list[tuple[str, str, str, str, str]]:
    def work(session):
        rows = session.scalars(select(AuditRecord).where(AuditRecord.operation == operation)
                               .order_by(AuditRecord.id)).all()
        return [(r.actor_id, r.object_id, r.before, r.after, r.result) for r in rows]

    return app.db.run(work)


def _user(app, username: str) -> StaffUser:
    def work(session):
        user = session.scalar(select(StaffUser).where(StaffUser.username == username))
        session.expunge(user)
        return user

    return app.db.run(work)


def _code(call) -> str:
    with pytest.raises(SscardError) as refused:
        call()
    return refused.value.code


def _add(app, username: str, role: str, **where) -> None:
    staff.add_user(app, CLI_OPERATOR, username, STAFF_PASSWORD, role, username, **where)


@pytest.mark.parametrize("operation", [staff.disable, staff.enable, staff.unlock,
                                       lambda app, actor, name: staff.reset_password(app, actor, name, NEW_PASSWORD)])
def test_who_may_run_whose_staff_account(app, city, operation):
    """The operator anyone's; a center supervisor only their own center's clerks; a bank supervisor only their
    own bank's tellers; never oneself, a peer supervisor, the other side's staff; clerks and tellers nobody's.
    Each refusal is a 403 with its record naming the account."""
    _add(app, "csup2", "center_supervisor", center_code="C01")
    _add(app, "bsup_jsb", "bank_supervisor", outlet_code="JSB-001")
    _add(app, "teller_gsb2", "teller", outlet_code="GSB-002")
    _add(app, "bsup2", "bank_supervisor", outlet_code="GSB-002")
    csup, bsup, clerk, teller = (city.actor(u) for u in ("csup", "bsup", "clerk", "teller"))
    refused = {
        (csup, "clerk2"): "wrong_center", (csup, "csup"): "staff_self", (csup, "csup2"): "forbidden",
        (csup, "teller"): "forbidden", (csup, "operator"): "forbidden",
        (bsup, "teller_jsb"): "wrong_bank", (bsup, "bsup"): "staff_self", (bsup, "clerk"): "forbidden",
        (bsup, "bsup_jsb"): "wrong_bank", (bsup, "bsup2"): "forbidden",
        (clerk, "clerk"): "forbidden", (clerk, "clerk2"): "forbidden", (teller, "teller_gsb2"): "forbidden",
    }
    for (actor, target), code in refused.items():
        assert _code(lambda a=actor, t=target: operation(app, a, t)) == code, (actor.name, target)
    allowed = [(csup, "clerk"), (bsup, "teller"), (bsup, "teller_gsb2"), (CLI_OPERATOR, "csup2"),
               (CLI_OPERATOR, "bsup_jsb"), (city.actor("operator"), "teller_jsb")]
    for actor, target in allowed:
        operation(app, actor, target)
    assert _code(lambda: operation(app, CLI_OPERATOR, "nobody")) == "not_found"


def test_the_refused_attempt_on_another_banks_teller_is_recorded_for_both_banks(app, city):
    assert _code(lambda: staff.disable(app, city.actor("bsup"), "teller_jsb")) == "wrong_bank"
    assert _records(app, "staff.disable") == [(city.actor("bsup").id, "teller_jsb", "", "", "wrong_bank")]
    assert _user(app, "teller_jsb").active


def test_disabling_ends_open_console_sessions_and_revokes_api_tokens_at_once(app, city, clock):
    web = websession.staff_login(app, "teller", STAFF_PASSWORD, Channel.BANK_OUTLET)
    assert web is not None and websession.resolve(app, web.token, "staff") is not None
    token = city.token("teller")
    assert staff.actor_for_token(app, token) is not None  # looked up and cached (api.token_cache_seconds)
    out = staff.disable(app, city.actor("bsup"), "teller")
    assert out == {"username": "teller", "active": False, "sessions_ended": 1, "tokens_revoked": 1}
    assert websession.resolve(app, web.token, "staff") is None
    assert staff.cached_actor(app, token) is None and staff.actor_for_token(app, token) is None
    assert websession.staff_login(app, "teller", STAFF_PASSWORD, Channel.BANK_OUTLET) is None  # as a wrong password
    assert _records(app, "staff.disable") == [(city.actor("bsup").id, "teller", "active", "disabled", "ok")]

    staff.enable(app, city.actor("bsup"), "teller")
    assert websession.staff_login(app, "teller", STAFF_PASSWORD, Channel.BANK_OUTLET) is not None
    assert staff.actor_for_token(app, token) is None  # its tokens stay revoked: the operator issues new ones
    assert _records(app, "staff.enable")[-1] == (city.actor("bsup").id, "teller", "disabled", "active", "ok")

    teller_id = _user(app, "teller").id

    def rows(session):
        return [(r.ended_at is not None) for r in session.scalars(select(WebSession).where(
            WebSession.digest == app.secrets.token_digest(web.token)))], [
            t.revoked for t in session.scalars(select(ApiToken).where(ApiToken.staff_user_id == teller_id))]

    assert app.db.run(rows) == ([True], [True])


def test_enabling_takes_the_account_out_of_the_disabled_set_and_its_new_tokens_are_cached_again(app, city):
    """Session 29: the per-process set of disabled accounts (whose tokens skip the lookup cache) was never
    emptied: an enabled account's tokens were looked up in the database on every request, for ever."""
    old = city.token("teller")
    assert staff.actor_for_token(app, old) is not None  # cached
    staff.disable(app, city.actor("bsup"), "teller")
    teller_id = str(_user(app, "teller").id)
    assert teller_id in app.extras[staff._DISABLED_STAFF]
    staff.enable(app, city.actor("bsup"), "teller")
    assert teller_id not in app.extras[staff._DISABLED_STAFF]
    assert staff.cached_actor(app, old) is None and staff.actor_for_token(app, old) is None  # still revoked
    fresh = city.token("teller")
    assert staff.actor_for_token(app, fresh) is not None
    assert staff.cached_actor(app, fresh) is not None  # its lookup is kept again (api.token_cache_seconds)


def test_disabling_again_after_enabling_refuses_the_cached_token_at_once(app, city):
    staff.disable(app, city.actor("bsup"), "teller")
    staff.enable(app, city.actor("bsup"), "teller")
    fresh = city.token("teller")
    assert staff.actor_for_token(app, fresh) is not None  # cached
    staff.disable(app, city.actor("bsup"), "teller")
    assert staff.cached_actor(app, fresh) is None and staff.actor_for_token(app, fresh) is None


def test_the_last_enabled_operator_account_cannot_be_disabled(app, city):
    """Session 29: `sscard user disable` (and the console) disabled the city's last operator account, and
    nobody was left to run staff accounts on the web."""
    assert _code(lambda: staff.disable(app, CLI_OPERATOR, "operator")) == "last_operator"
    assert _user(app, "operator").active
    _add(app, "op2", "operator")
    staff.disable(app, CLI_OPERATOR, "operator")  # another is enabled: allowed
    assert _code(lambda: staff.disable(app, CLI_OPERATOR, "op2")) == "last_operator"
    assert _user(app, "op2").active
    staff.enable(app, CLI_OPERATOR, "operator")
    staff.disable(app, CLI_OPERATOR, "op2")  # one left again: allowed
    assert not _user(app, "op2").active
    staff.disable(app, CLI_OPERATOR, "clerk")  # other roles: no such limit
    staff.disable(app, CLI_OPERATOR, "op2")  # a disabled one again: it changes nothing, allowed as before


def test_the_last_operator_refusal_has_its_words_in_both_languages():
    from sscard.core.errors import MESSAGES

    status, zh, en = MESSAGES["last_operator"]
    assert status == 409 and "最后一个" in zh and "last enabled operator" in en


def test_a_reset_password_signs_in_to_the_change_only_then_everything(app, city):
    one_time = one_time_staff_password()
    check_new_staff_password(one_time, "clerk")  # what a reset makes passes the rules it sets
    before = websession.staff_login(app, "clerk", STAFF_PASSWORD, Channel.WINDOW)
    out = staff.reset_password(app, city.actor("csup"), "clerk", one_time, idempotency_key="reset-1")
    assert out == {"username": "clerk", "must_change_password": True, "sessions_ended": 1, "tokens_revoked": 0}
    assert websession.resolve(app, before.token, "staff") is None  # the session of the old password is over
    assert websession.staff_login(app, "clerk", STAFF_PASSWORD, Channel.WINDOW) is None
    web = websession.staff_login(app, "clerk", one_time, Channel.WINDOW)
    assert web is not None and web.must_change_password
    actor, _row = websession.resolve(app, web.token, "staff")
    assert actor.must_change_password
    from sscard.services import window

    assert _code(lambda: window.queue(app, actor)) == "password_change_required"
    assert _code(lambda: staff.change_password(app, actor, one_time, one_time, one_time)) == "weak_password"
    staff.change_password(app, actor, one_time, NEW_PASSWORD, NEW_PASSWORD,
                          keep_session=websession.session_key(app, web.token))
    actor, _row = websession.resolve(app, web.token, "staff")  # the same session goes on, everything open
    assert not actor.must_change_password
    window.queue(app, actor)
    assert not _user(app, "clerk").must_change_password

    def stored(session):
        return [r.response for r in session.scalars(select(IdempotencyRecord))]

    assert not any(one_time in text for text in app.db.run(stored))  # the answer kept for its key holds none
    assert _records(app, "staff.reset_password") == [(city.actor("csup").id, "clerk", "", "password_reset", "ok")]


def test_a_token_issued_before_a_password_reset_is_refused_after_it(app, city):
    """Session 29: a reset ended the console sessions but left the API tokens live, so whoever had taken one
    with the old password kept the account's API."""
    token = city.token("teller")
    assert staff.actor_for_token(app, token) is not None  # looked up and cached (api.token_cache_seconds)
    out = staff.reset_password(app, city.actor("bsup"), "teller", NEW_PASSWORD)
    assert out["tokens_revoked"] == 1
    assert staff.cached_actor(app, token) is None and staff.actor_for_token(app, token) is None
    teller_id = _user(app, "teller").id

    def revoked(session):
        return [t.revoked for t in session.scalars(select(ApiToken).where(ApiToken.staff_user_id == teller_id))]

    assert app.db.run(revoked) == [True]
    fresh = staff.issue_token(app, CLI_OPERATOR, username="teller")["token"]  # the operator issues a new one
    assert staff.actor_for_token(app, fresh) is not None


def test_a_token_issued_before_a_reset_is_refused_by_the_api(app, city, client):
    path = f"/api/v1/cards/{city.issued_card().card_number}"
    token = city.token("clerk")
    assert client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200  # and cached
    staff.reset_password(app, city.actor("csup"), "clerk", NEW_PASSWORD)
    assert client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_reset_clears_the_lock_and_a_typed_password_keeps_the_rules(app, city, clock):
    _lock(app, "teller", Channel.BANK_OUTLET)
    assert _code(lambda: staff.reset_password(app, city.actor("bsup"), "teller", "short")) == "weak_password"
    assert _code(lambda: staff.reset_password(app, city.actor("bsup"), "teller", "x" * 129)) == "weak_password"
    assert _code(lambda: staff.reset_password(app, city.actor("bsup"), "teller", "TELLER")) == "weak_password"
    staff.reset_password(app, city.actor("bsup"), "teller", NEW_PASSWORD)
    user = _user(app, "teller")
    assert (user.pw_failures, user.pw_locked_until, user.must_change_password) == (0, None, True)


def _lock(app, username: str, channel: Channel) -> None:
    for n in range(5):
        try:
            assert websession.staff_login(app, username, f"wrong-password-{n}", channel) is None
        except SscardError as err:
            assert err.code == "password_locked"
    assert _code(lambda: websession.staff_login(app, username, STAFF_PASSWORD, channel)) == "password_locked"


def test_a_supervisor_lifts_a_lock_a_guesser_put_on_their_teller(app, city):
    """One attacker typing a teller's user name five times locked the teller out of the counter for 15 minutes,
    and again: the teller's supervisor lifts the lock at once (recorded), the teller signs in."""
    _lock(app, "teller", Channel.BANK_OUTLET)
    assert staff.unlock(app, city.actor("bsup"), "teller") == {"username": "teller", "was_locked": True}
    assert websession.staff_login(app, "teller", STAFF_PASSWORD, Channel.BANK_OUTLET) is not None
    records = _records(app, "staff.unlock")
    assert records == [(city.actor("bsup").id, "teller", "locked", "unlocked", "ok")]
    assert _code(lambda: staff.unlock(app, city.actor("bsup"), "teller_jsb")) == "wrong_bank"


def test_changing_ones_own_password_counts_a_wrong_old_one_and_ends_the_other_sessions(app, city):
    first = websession.staff_login(app, "teller", STAFF_PASSWORD, Channel.BANK_OUTLET)
    second = websession.staff_login(app, "teller", STAFF_PASSWORD, Channel.BANK_OUTLET)
    actor, _row = websession.resolve(app, first.token, "staff")
    wrong = _code(lambda: staff.change_password(app, actor, "not-the-password", NEW_PASSWORD, NEW_PASSWORD))
    assert wrong == "wrong_password" and _user(app, "teller").pw_failures == 1  # counted as a login failure
    assert _code(lambda: staff.change_password(app, actor, STAFF_PASSWORD, NEW_PASSWORD, "Other-pass-2027")) \
        == "password_mismatch"
    assert _code(lambda: staff.change_password(app, actor, STAFF_PASSWORD, STAFF_PASSWORD, STAFF_PASSWORD)) \
        == "weak_password"
    out = staff.change_password(app, actor, STAFF_PASSWORD, NEW_PASSWORD, NEW_PASSWORD,
                                keep_session=websession.session_key(app, first.token))
    assert out == {"changed": True, "sessions_ended": 1}
    assert websession.resolve(app, first.token, "staff") is not None
    assert websession.resolve(app, second.token, "staff") is None
    assert websession.staff_login(app, "teller", STAFF_PASSWORD, Channel.BANK_OUTLET) is None
    assert websession.staff_login(app, "teller", NEW_PASSWORD, Channel.BANK_OUTLET) is not None
    assert [r[3:] for r in _records(app, "staff.change_password")] == [
        ("", "wrong_password"), ("password_changed", "ok")]  # the mismatch and the same one: 422, unrecorded


def test_wrong_old_passwords_lock_the_account_like_sign_ins(app, city):
    web = websession.staff_login(app, "clerk", STAFF_PASSWORD, Channel.WINDOW)
    actor, _row = websession.resolve(app, web.token, "staff")
    codes = [_code(lambda n=n: staff.change_password(app, actor, f"guess-{n}-password", NEW_PASSWORD, NEW_PASSWORD))
             for n in range(6)]
    assert codes == ["wrong_password"] * 4 + ["password_locked"] * 2
    assert _code(lambda: websession.staff_login(app, "clerk", STAFF_PASSWORD, Channel.WINDOW)) == "password_locked"


def test_no_password_reaches_an_audit_record(app, city):
    one_time = one_time_staff_password()
    staff.reset_password(app, CLI_OPERATOR, "clerk", one_time)
    web = websession.staff_login(app, "clerk", one_time, Channel.WINDOW)
    actor, _row = websession.resolve(app, web.token, "staff")
    staff.change_password(app, actor, one_time, NEW_PASSWORD, NEW_PASSWORD)

    def everything(session):
        return [repr((r.before, r.after, r.detail)) for r in session.scalars(select(AuditRecord))]

    text = "\n".join(app.db.run(everything))
    assert one_time not in text and NEW_PASSWORD not in text and STAFF_PASSWORD not in text


def test_the_staff_list_shows_each_supervisor_their_own_staff_with_their_state(app, city):
    _lock(app, "clerk", Channel.WINDOW)
    staff.disable(app, CLI_OPERATOR, "teller")
    listed = staff.list_staff(app, city.actor("csup"))["staff"]
    assert [(e["username"], e["active"], e["locked_until"] is not None) for e in listed] == [("clerk", True, True)]
    assert [e["username"] for e in staff.list_staff(app, city.actor("bsup"))["staff"]] == ["teller"]
    assert not staff.list_staff(app, city.actor("bsup"))["staff"][0]["active"]
    assert {e["username"] for e in staff.list_staff(app, city.actor("operator"))["staff"]} == set(city.users) - {"operator"}
    assert _code(lambda: staff.list_staff(app, city.actor("clerk"))["staff"]) == "forbidden"
