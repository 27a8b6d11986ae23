"""A center supervisor reverses a clerk's action (RULES §1): which, when, how often, and what is left behind."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sscard.core.errors import SscardError
from sscard.models.counter import PowerOfAttorney
from sscard.models.foundation import AuditRecord, BankAccount, Card
from sscard.services import attorney, enrolment, loss, reversal


def _record_of(app, operation: str) -> int:
    with app.db.session() as s:
        return s.scalar(select(AuditRecord.id).where(AuditRecord.operation == operation, AuditRecord.result == "ok")
                        .order_by(AuditRecord.id.desc()).limit(1))


def _card(app, number: str) -> Card:
    with app.db.session() as s:
        return s.scalar(select(Card).where(Card.card_number == number))


def _refusal(fn, *args, **kwargs) -> SscardError:
    with pytest.raises(SscardError) as err:
        fn(*args, **kwargs)
    return err.value


def test_a_formal_loss_recorded_in_error_is_undone_by_the_supervisor_with_a_reason_and_recorded(city, app):
    card = city.issued_card()
    loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)
    record = _record_of(app, "ss_loss.report_formal")
    out = reversal.reverse(app, city.actor("csup"), record, "认错了卡，持卡人未挂失")
    assert out["state_before"] == "formal_loss" and out["state_after"] == "normal"
    assert card.card_number not in str(out)  # the number masked
    assert _card(app, card.card_number).ss_status == "normal"
    with app.db.session() as s:
        audit = s.scalar(select(AuditRecord).where(AuditRecord.operation == "reversal.reverse"))
    assert (audit.result, audit.object_type, audit.object_id, audit.after) == ("ok", "audit_record", str(record), "reversed")
    assert audit.person_id == card.person_id and audit.detail["reason"] == "认错了卡，持卡人未挂失"
    assert audit.detail["reversed_operation"] == "ss_loss.report_formal"


def test_a_formal_loss_over_a_temporary_one_goes_back_to_the_temporary_loss_not_to_normal(city, app):
    card = city.issued_card()
    clerk = city.actor("clerk")
    loss.report_temporary_loss(app, clerk, card.card_number)
    loss.report_formal_loss(app, clerk, card.card_number, card.citizen_id)
    reversal.reverse(app, city.actor("csup"), _record_of(app, "ss_loss.report_formal"), "录入错误")
    after = _card(app, card.card_number)
    assert after.ss_status == "temporary_loss" and after.loss_expires_at is not None


def test_a_cancelled_loss_is_restored_and_a_temporary_loss_reported_in_error_is_lifted(city, app):
    card = city.issued_card()
    clerk, csup = city.actor("clerk"), city.actor("csup")
    loss.report_formal_loss(app, clerk, card.card_number, card.citizen_id)
    loss.cancel_ss_loss(app, clerk, card.card_number, card.citizen_id)
    reversal.reverse(app, csup, _record_of(app, "ss_loss.cancel"), "持卡人未要求解挂")
    assert _card(app, card.card_number).ss_status == "formal_loss"
    other = city.issued_card("李四")
    loss.report_temporary_loss(app, clerk, other.card_number)
    reversal.reverse(app, csup, _record_of(app, "ss_loss.report_temporary"), "挂错了卡")
    assert _card(app, other.card_number).ss_status == "normal"


def test_a_first_card_applied_for_in_error_is_withdrawn_and_the_person_may_apply_again(city, app):
    pid, _ = city.new_person("王五")
    clerk = city.actor("clerk")
    applied = enrolment.apply_first_card(app, clerk, pid, "GSB", "C01")
    reversal.reverse(app, city.actor("csup"), _record_of(app, "card.apply_first"), "应选建设银行")
    with app.db.session() as s:
        card = s.scalar(select(Card).where(Card.card_number == applied["card_number"]))
        account = s.scalar(select(BankAccount).where(BankAccount.card_id == card.id))
        assert (card.ss_status, account.status) == ("cancelled", "closed")
    again = enrolment.apply_first_card(app, clerk, pid, "JSB", "C01")
    assert again["bank"] == "JSB"


def test_a_power_of_attorney_recorded_in_error_is_revoked(city, app):
    from datetime import date, timedelta

    from sscard.core.identifiers import make_citizen_id

    card = city.issued_card()
    today = app.clock.today()
    agent = make_citizen_id("330106", date(1990, 3, 7), 123)
    poa = attorney.record(app, city.actor("clerk"), card.person_id, "李四", agent,
                          ["card.collect"], today, today + timedelta(days=30), "WT-1")
    out = reversal.reverse(app, city.actor("csup"), _record_of(app, "attorney.record"), "委托书未签字")
    assert out["state_after"] == "revoked"
    with app.db.session() as s:
        assert s.get(PowerOfAttorney, poa["id"]).revoked_at is not None


def test_a_temporary_loss_that_lapsed_since_is_no_longer_reversed(city, app, clock):
    card = city.issued_card()
    loss.report_temporary_loss(app, city.actor("clerk"), card.card_number)
    record = _record_of(app, "ss_loss.report_temporary")
    clock.advance(hours=1)
    with app.db.session() as s:  # a lapse within the day (a policy of days would move past today first)
        row = s.scalar(select(Card).where(Card.card_number == card.card_number))
        row.loss_expires_at = clock.now()
        s.commit()
    clock.advance(minutes=1)
    listed = {a["audit_record_id"]: a for a in reversal.candidates(app, city.actor("csup"))["actions"]}
    assert listed[record]["why_not"] == "changed"
    assert "changed since" in _refusal(reversal.reverse, app, city.actor("csup"), record, "x").message("en")


def test_an_action_is_reversed_once_and_not_after_its_object_moved_on(city, app):
    card = city.issued_card()
    clerk, csup = city.actor("clerk"), city.actor("csup")
    loss.report_temporary_loss(app, clerk, card.card_number)
    first = _record_of(app, "ss_loss.report_temporary")
    reversal.reverse(app, csup, first, "挂错了卡")
    err = _refusal(reversal.reverse, app, csup, first, "再来一次")
    assert (err.code, err.status) == ("not_reversible", 409) and "已撤销" in err.message("zh")
    # a loss cancelled since by the cardholder: its reporting can no longer be reversed
    loss.report_temporary_loss(app, clerk, card.card_number)
    second = _record_of(app, "ss_loss.report_temporary")
    loss.cancel_ss_loss(app, clerk, card.card_number, card.citizen_id)
    err = _refusal(reversal.reverse, app, csup, second, "挂错了卡")
    assert err.code == "not_reversible" and "changed since" in err.message("en")
    assert _card(app, card.card_number).ss_status == "normal"


def test_only_todays_clerks_actions_at_the_supervisors_own_center_are_reversed(city, app, clock):
    card = city.issued_card()
    loss.report_temporary_loss(app, city.actor("clerk"), card.card_number)
    record = _record_of(app, "ss_loss.report_temporary")
    # another center's supervisor
    from sscard.services import staff
    from tests.support import STAFF_PASSWORD

    staff.add_user(app, city.actor("operator"), "csup2", STAFF_PASSWORD, "center_supervisor", "csup2",
                   center_code="C02")
    csup2 = staff.authenticate_staff(app, "csup2", STAFF_PASSWORD, city.actor("csup").channel)
    assert "another service center" in _refusal(reversal.reverse, app, csup2, record, "x").message("en")
    # a clerk may not reverse; a reason is needed
    assert _refusal(reversal.reverse, app, city.actor("clerk"), record, "x").code == "forbidden"
    assert _refusal(reversal.reverse, app, city.actor("csup"), record, "  ").code == "reason_required"
    # the supervisor's own action is nobody's to reverse here
    other = city.issued_card("赵六")
    loss.report_temporary_loss(app, city.actor("csup"), other.card_number)
    own = _record_of(app, "ss_loss.report_temporary")
    assert "clerk's" in _refusal(reversal.reverse, app, city.actor("csup"), own, "x").message("en")
    # tomorrow is too late
    clock.advance(days=1)
    assert "of today" in _refusal(reversal.reverse, app, city.actor("csup"), record, "x").message("en")
    assert _card(app, card.card_number).ss_status == "temporary_loss"
    # every refusal but the malformed one (no reason: 422) left its record, naming whose data it was about
    with app.db.session() as s:
        refused = s.scalars(select(AuditRecord).where(AuditRecord.operation == "reversal.reverse")).all()
    assert sorted(r.result for r in refused) == ["forbidden"] + ["not_reversible"] * 3
    assert {r.person_id for r in refused if r.result.endswith("not_reversible")} == {card.person_id, other.person_id}


def test_a_card_already_in_a_production_batch_is_not_withdrawn(city, app):
    from sscard.services import production

    pid, _ = city.new_person("钱七")
    enrolment.apply_first_card(app, city.actor("clerk"), pid, "GSB", "C01")
    record = _record_of(app, "card.apply_first")
    production.start_batch(app, city.actor("clerk"), "C01")
    assert "production batch" in _refusal(reversal.reverse, app, city.actor("csup"), record, "x").message("en")


def test_the_list_shows_todays_reversible_actions_of_the_center_with_why_not(city, app):
    card = city.issued_card()
    clerk, csup = city.actor("clerk"), city.actor("csup")
    loss.report_temporary_loss(app, clerk, card.card_number)
    loss.cancel_ss_loss(app, clerk, card.card_number, card.citizen_id)
    listed = reversal.candidates(app, csup)
    by_op = {a["operation"]: a for a in listed["actions"]}
    assert set(by_op) >= {"ss_loss.report_temporary", "ss_loss.cancel", "card.apply_first"}
    assert by_op["ss_loss.cancel"]["why_not"] is None
    assert by_op["ss_loss.report_temporary"]["why_not"] == "changed"  # cancelled since
    assert by_op["card.apply_first"]["why_not"] == "in_production"  # the card went on to be made and collected
    assert card.card_number not in str(listed)
    reversal.reverse(app, csup, by_op["ss_loss.cancel"]["audit_record_id"], "误操作")
    again = {a["audit_record_id"]: a for a in reversal.candidates(app, csup)["actions"]}
    assert again[by_op["ss_loss.cancel"]["audit_record_id"]]["why_not"] == "reversed"
    assert _refusal(reversal.candidates, app, clerk).code == "forbidden"


def test_the_api_lists_and_reverses_for_the_supervisor_once_under_its_key_and_refuses_the_clerk(city, app, client):
    from tests.support import bearer

    card = city.issued_card()
    loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)
    sup, clerk = city.token("csup"), city.token("clerk")
    listed = client.get("/api/v1/counter/reversals", headers=bearer(sup))
    assert listed.status_code == 200, listed.text
    row = next(a for a in listed.json()["actions"] if a["operation"] == "ss_loss.report_formal")
    assert row["why_not"] is None and card.card_number not in listed.text
    body = {"audit_record_id": row["audit_record_id"], "reason": "认错了卡"}
    assert client.post("/api/v1/counter/reversals", json=body, headers=bearer(clerk, "k-clerk")).status_code == 403
    assert client.post("/api/v1/counter/reversals", json={**body, "reason": ""},
                       headers=bearer(sup, "k-empty")).json()["code"] == "reason_required"
    first = client.post("/api/v1/counter/reversals", json=body, headers=bearer(sup, "k-1"))
    assert first.status_code == 201, first.text
    assert first.json()["state_after"] == "normal"
    retry = client.post("/api/v1/counter/reversals", json=body, headers=bearer(sup, "k-1"))
    assert (retry.status_code, retry.json()) == (201, first.json())
    again = client.post("/api/v1/counter/reversals", json=body, headers=bearer(sup, "k-2"))
    assert (again.status_code, again.json()["code"]) == (409, "not_reversible")
    assert _card(app, card.card_number).ss_status == "normal"
    with app.db.session() as s:
        done = s.scalars(select(AuditRecord).where(AuditRecord.operation == "reversal.reverse",
                                                   AuditRecord.result == "ok")).all()
    assert len(done) == 1 and done[0].channel == "api"


def _csrf(html: str) -> str:
    import re

    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_the_console_asks_the_reason_shows_it_back_and_reverses_once_on_confirming(city, app, client):
    import re

    from sscard.core.roles import Channel
    from sscard.services import websession
    from tests.support import STAFF_PASSWORD

    card = city.issued_card()
    loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)
    record = _record_of(app, "ss_loss.report_formal")
    clerk_session = websession.staff_login(app, "clerk", STAFF_PASSWORD, Channel.WINDOW).token
    client.cookies.set("sscard_staff", clerk_session)
    assert client.get("/console/reversals").status_code == 403  # the supervisor's page
    client.cookies.set("sscard_staff", websession.staff_login(app, "csup", STAFF_PASSWORD, Channel.WINDOW).token)
    page = client.get("/console/reversals")
    assert page.status_code == 200 and f'id="action-{record}"' in page.text and card.card_number not in page.text
    key = re.search(rf'action="/console/reversals/{record}".*?name="op_key" value="([^"]+)"', page.text, re.S).group(1)
    form = {"csrf_token": _csrf(page.text), "op_key": key}
    blank = client.post(f"/console/reversals/{record}", data={**form, "reason": "  "})
    assert blank.status_code == 422 and "原因" in blank.text
    step = client.post(f"/console/reversals/{record}", data={**form, "reason": "认错了卡"})
    assert step.status_code == 200 and 'id="confirm-reason">认错了卡<' in step.text
    assert _card(app, card.card_number).ss_status == "formal_loss"  # nothing done before confirming
    sealed = re.search(r'name="sealed" value="([^"]+)"', step.text).group(1)
    confirmed = {**form, "reason": "认错了卡", "sealed": sealed, "confirmed": "1"}
    forged = client.post(f"/console/reversals/{record}", data={**confirmed, "reason": "另一个原因"})
    assert forged.status_code == 422 and _card(app, card.card_number).ss_status == "formal_loss"
    done = client.post(f"/console/reversals/{record}", data=confirmed)
    assert done.status_code == 200 and 'id="done"' in done.text, done.text
    again = client.post(f"/console/reversals/{record}", data=confirmed)  # a double click: the first answer
    assert again.status_code == 200
    assert _card(app, card.card_number).ss_status == "normal"
    with app.db.session() as s:
        assert len(s.scalars(select(AuditRecord).where(AuditRecord.operation == "reversal.reverse",
                                                       AuditRecord.result == "ok")).all()) == 1
    en = client.get("/console/reversals", headers={"Accept-Language": "en"}, cookies={"lang": "en"})
    assert "reversed already" in en.text


def test_two_supervisors_reversing_the_same_action_at_once_reverse_it_once(city, app):
    from concurrent.futures import ThreadPoolExecutor

    from sscard.services import staff
    from tests.support import STAFF_PASSWORD

    staff.add_user(app, city.actor("operator"), "csup_b", STAFF_PASSWORD, "center_supervisor", "csup_b",
                   center_code="C01")
    supervisors = [city.actor("csup"), staff.authenticate_staff(app, "csup_b", STAFF_PASSWORD, city.actor("csup").channel)]
    card = city.issued_card()
    loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)
    record = _record_of(app, "ss_loss.report_formal")

    def attempt(who):
        try:
            return reversal.reverse(app, who, record, "同时撤销")["state_after"]
        except SscardError as err:
            return err.code

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(attempt, supervisors))
    assert outcomes == ["normal", "not_reversible"]
    with app.db.session() as s:
        assert len(s.scalars(select(AuditRecord).where(AuditRecord.operation == "reversal.reverse",
                                                       AuditRecord.result == "ok")).all()) == 1
    assert _card(app, card.card_number).ss_status == "normal"


def test_every_other_kind_of_caller_is_refused_and_odd_bodies_change_nothing(city, app, client):
    from tests.support import bearer

    card = city.issued_card()
    loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)
    record = _record_of(app, "ss_loss.report_formal")
    body = {"audit_record_id": record, "reason": "probe"}
    tokens = {u: city.token(u) for u in ("clerk", "clerk2", "teller", "bsup", "operator")}
    tokens |= {t: city.token(terminal=t) for t in ("ATM-GSB-1", "POS-1", "KIOSK-1")}
    for who, token in tokens.items():
        for method, kwargs in (("get", {}), ("post", {"json": body})):
            answer = client.request(method, "/api/v1/counter/reversals", headers=bearer(token, f"k-{who}"), **kwargs)
            assert answer.status_code == 403, (who, method, answer.text)
    assert client.post("/api/v1/counter/reversals", json=body, headers={"Idempotency-Key": "k-none"}).status_code == 401
    sup = city.token("csup")
    for i, odd in enumerate([{**body, "audit_record_id": True}, {**body, "audit_record_id": float(record)},
                             {**body, "audit_record_id": 2**63}, {**body, "reason": "x" * 201},
                             {**body, "extra": 1}, {"reason": "probe"}]):
        answer = client.post("/api/v1/counter/reversals", json=odd, headers=bearer(sup, f"k-odd-{i}"))
        assert answer.status_code == 422, (odd, answer.text)
    for i, missing in enumerate((-1, 0, 10**12)):
        answer = client.post("/api/v1/counter/reversals", json={**body, "audit_record_id": missing},
                             headers=bearer(sup, f"k-missing-{i}"))
        assert answer.status_code == 404, (missing, answer.text)
    assert _card(app, card.card_number).ss_status == "formal_loss"


def test_the_day_report_lists_the_days_reversals_with_clerk_supervisor_and_reason(city, app):
    import csv
    import io

    from sscard.services import reports

    card = city.issued_card()
    loss.report_temporary_loss(app, city.actor("clerk"), card.card_number)
    reversal.reverse(app, city.actor("csup"), _record_of(app, "ss_loss.report_temporary"), "挂错了卡")
    report = reports.center_day(app, city.actor("csup"))
    assert [(r["operation"], r["clerk"], r["supervisor"], r["reason"]) for r in report["reversals"]] == [
        ("ss_loss.report_temporary", "clerk", "csup", "挂错了卡")]
    rows = list(csv.reader(io.StringIO(reports.to_csv(report, "en"))))
    assert ["reversed by a supervisor", "clerk", "Report temporarily lost: 挂错了卡 (csup)", "1", "",
            "ss_loss.report_temporary"] in rows


def test_a_reason_with_a_direction_control_is_refused_at_its_field_and_nothing_is_reversed(city, app, client):
    import re

    from sscard.core.roles import Channel
    from sscard.services import websession
    from tests.support import STAFF_PASSWORD

    card = city.issued_card()
    loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)
    record = _record_of(app, "ss_loss.report_formal")
    client.cookies.set("sscard_staff", websession.staff_login(app, "csup", STAFF_PASSWORD, Channel.WINDOW).token)
    page = client.get("/console/reversals")
    key = re.search(rf'action="/console/reversals/{record}".*?name="op_key" value="([^"]+)"', page.text, re.S).group(1)
    refused = client.post(f"/console/reversals/{record}",
                          data={"csrf_token": _csrf(page.text), "op_key": key, "reason": "认错\u202e了卡"})
    assert refused.status_code == 422 and 'data-code="invalid_text"' in refused.text
    assert _card(app, card.card_number).ss_status == "formal_loss"
