"""A bank supervisor reads only their own bank's audit records; operators the city's (center supervisors the
agency's since session 23: test_audit_scope_by_side).

Found (review): `audit.read` was declared Scope.CITY for bank supervisors, so a JSB supervisor read every
record of the city: the social security side's (query passwords, the window's reads) and GSB's customers'
(person ids, before/after states). Now declared Scope.OWN, checked by `audit.bank_records` (the frame fails
closed if the read forgot it); a person who is not the bank's customer answers person_not_found, and no
"audit_log viewed" record is written about them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from sscard.core.errors import SscardError
from sscard.core.roles import CLI_OPERATOR
from sscard.models.foundation import AuditRecord
from sscard.services import audit, banking, loss, passwords, staff, window
from tests.support import STAFF_PASSWORD, bearer

PIN = "826451"


@pytest.fixture
def world(app, city):
    """A GSB and a JSB customer; each bank's teller records a written loss of its own customer's account; the
    GSB customer changes the query password (portal); a clerk reads the GSB customer's record; a JSB supervisor."""
    gsb, jsb = city.issued_card("张三", bank="GSB"), city.issued_card("李四", bank="JSB")
    for card, teller in ((gsb, city.actor("teller")), (jsb, city.actor("teller_jsb"))):
        banking.activate(app, teller, card.pan, card.citizen_id, PIN, PIN, cardholder_in_person=True)
        loss.report_written_loss(app, teller, card.pan, card.citizen_id)
    passwords.change_query_password(app, city.cardholder(gsb), gsb.card_number[-6:], "80468213", "80468213")
    window.person_overview(app, city.actor("clerk"), gsb.person_id)
    staff.add_user(app, CLI_OPERATOR, "bsup_jsb", STAFF_PASSWORD, "bank_supervisor", "bsup_jsb", outlet_code="JSB-001")
    return {"gsb": gsb, "jsb": jsb}


def _read(client, token: str, **params):
    return client.get("/api/v1/audit", params={"limit": 1000, **params}, headers=bearer(token))


def _viewed_about(app, person_id: int) -> int:
    with app.db.session() as s:
        return s.scalar(select(func.count()).select_from(AuditRecord).where(
            AuditRecord.operation == "audit.read", AuditRecord.person_id == person_id,
            AuditRecord.result == "viewed"))  # (the refused attempts are recorded: session 23)


def test_a_bank_supervisor_reads_only_their_own_banks_records_over_the_api(app, city, client, world):
    gsb, jsb = world["gsb"], world["jsb"]
    answer = _read(client, city.token("bsup"))
    assert answer.status_code == 200, answer.text
    records = answer.json()["records"]
    ops = {(r["operation"], r["person_id"]) for r in records}
    assert ("bank_loss.report_written", gsb.person_id) in ops  # its teller, its customer's account
    assert all(r["person_id"] != jsb.person_id for r in records)  # another bank's customer: nothing
    assert all(r["place"] != "JSB-001" for r in records)  # another bank's outlet: nothing
    assert "query_password.change" not in {r["operation"] for r in records}  # the social security side's
    assert not [r for r in records if r["result"] == "viewed" and r["actor"]["role"] == "clerk"]
    assert {r["actor"]["role"] for r in records} <= {"teller", "bank_supervisor", "clerk", "operator", "system"}
    # filters cannot reach past the scope: another bank's teller, or the person's SS-side records
    teller_jsb = city.actor("teller_jsb").id
    assert _read(client, city.token("bsup"), actor_id=teller_jsb).json()["records"] == []
    assert _read(client, city.token("bsup"), operation="query_password.change").json()["records"] == []
    # and the other way round: the JSB supervisor sees JSB's, not GSB's
    theirs = _read(client, city.token("bsup_jsb")).json()["records"]
    assert ("bank_loss.report_written", jsb.person_id) in {(r["operation"], r["person_id"]) for r in theirs}
    assert all(r["person_id"] != gsb.person_id for r in theirs)


def test_operators_keep_the_city_wide_view_and_center_supervisors_the_agencys(app, city, client, world):
    gsb, jsb = world["gsb"], world["jsb"]
    records = _read(client, city.token("operator")).json()["records"]
    ops = {(r["operation"], r["person_id"]) for r in records}
    assert {("bank_loss.report_written", gsb.person_id), ("bank_loss.report_written", jsb.person_id),
            ("query_password.change", gsb.person_id)} <= ops
    # session 23: a bank's written loss is the bank's business, not the agency's (test_audit_scope_by_side)
    records = _read(client, city.token("csup")).json()["records"]
    ops = {(r["operation"], r["person_id"]) for r in records}
    assert ("query_password.change", gsb.person_id) in ops
    assert not {o for o, _ in ops if o.startswith(("bank.", "bank_loss."))}


def test_a_bank_supervisor_asking_for_another_banks_customer_gets_not_found_and_records_no_view(
        app, city, client, world):
    gsb, jsb = world["gsb"], world["jsb"]
    refused = _read(client, city.token("bsup"), person_id=jsb.person_id)
    assert refused.status_code == 404 and refused.json()["code"] == "person_not_found"
    assert _read(client, city.token("bsup"), person_id=999_999).json()["code"] == "person_not_found"
    assert _viewed_about(app, jsb.person_id) == 0  # nothing says the GSB supervisor looked at the JSB customer
    # asked again (a client's retry), the same refusal and still no record
    assert _read(client, city.token("bsup"), person_id=jsb.person_id).status_code == 404
    assert _viewed_about(app, jsb.person_id) == 0
    # the bank's own customer: its own records of them, and the view is recorded
    mine = _read(client, city.token("bsup"), person_id=gsb.person_id)
    assert mine.status_code == 200
    assert {r["operation"] for r in mine.json()["records"]} >= {"bank_loss.report_written"}
    assert "query_password.change" not in {r["operation"] for r in mine.json()["records"]}
    assert _viewed_about(app, gsb.person_id) == 1
    with pytest.raises(SscardError) as err:
        audit.read_audit(app, city.actor("bsup"), person_id=jsb.person_id)
    assert err.value.code == "person_not_found"


def test_other_callers_are_refused_the_audit_log_whatever_they_hold(app, city, client, world):
    from sscard.api.sessions import issue_cardholder_token

    holder = issue_cardholder_token(app, world["gsb"].person_id)
    for token in (city.token("teller"), city.token("teller_jsb"), city.token("clerk"), holder,
                  city.token(terminal="ATM-GSB-1")):
        assert _read(client, token).status_code == 403
    assert _read(client, "nobody").status_code == 401


def test_the_audit_read_declares_its_bank_scope_and_fails_closed_without_the_check(app, city, monkeypatch):
    from sscard.services import access

    assert access.declaration("audit.read").scope is access.Scope.OWN
    monkeypatch.setattr(audit, "bank_records", lambda op: None)  # a read that forgot its scope
    with pytest.raises(RuntimeError, match="never checked"):
        audit.read_audit(app, city.actor("bsup"))
    assert audit.read_audit(app, city.actor("csup"))["records"] is not None  # not limited: nothing to check
