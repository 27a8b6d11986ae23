"""Who reads which side of the audit log (session 23's auditor).

- A center supervisor read the whole city's log, the banks' business included (a POS payment, a teller's
  deposit and written loss, a cardholder's transfer between accounts): now the agency's records only
  (`audit.records_in_scope`, models.foundation.AGENCY_RECORDS), the center's work on a card included;
  a bank supervisor reads their bank's records (the mirror), the operator all.
- A bank supervisor's read of another bank's customer's trail answered 404 and left no record: the refused
  attempt is recorded now (naming the trail it reached for), a person of nobody's alike.
- `replacement.apply`'s record named no bank when the replacement ran in a group-committed batch (the new
  card's row is written after the record): the bank whose account it opens did not see it.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sscard.core.roles import CLI_OPERATOR, Channel
from sscard.models.foundation import AuditRecord, Bank
from sscard.services import audit, banking, batching, loss, passwords, replacement, staff
from tests.audit.test_audit_reads_at_scale import page_plan
from tests.ledger.helpers import terminal
from tests.support import STAFF_PASSWORD

PIN = "826451"


@pytest.fixture
def world(app, city):
    """A GSB and a JSB customer, activated; a teller's deposit, a POS payment and a cardholder's transfer
    (GSB's money movements); a written loss at JSB; a query password change; the center's replacement."""
    gsb, jsb = city.issued_card("张三", bank="GSB"), city.issued_card("李四", bank="JSB")
    other = city.issued_card("王五", bank="GSB")
    for card, teller in ((gsb, "teller"), (jsb, "teller_jsb"), (other, "teller")):
        banking.activate(app, city.actor(teller), card.pan, card.citizen_id, PIN, PIN, cardholder_in_person=True)
    banking.deposit(app, city.actor("teller"), gsb.pan, 50_000)
    banking.purchase(app, terminal(city, "POS-1"), gsb.pan, 1_200, PIN)
    banking.transfer(app, city.cardholder(gsb, Channel.API), gsb.pan, other.pan, 300, PIN)
    passwords.change_query_password(app, city.cardholder(gsb), gsb.card_number[-6:], "80468213", "80468213")
    loss.report_written_loss(app, city.actor("teller_jsb"), jsb.pan, jsb.citizen_id)
    replacement.apply(app, city.actor("clerk"), gsb.card_number, "damaged", gsb.citizen_id, payment="cash")
    staff.add_user(app, CLI_OPERATOR, "bsup_jsb", STAFF_PASSWORD, "bank_supervisor", "bsup_jsb", outlet_code="JSB-001")
    return {"gsb": gsb, "jsb": jsb}


BANKS_BUSINESS = {"bank.deposit", "bank.purchase", "bank.transfer", "bank.activate", "bank_loss.report_written"}
AGENCYS = {"replacement.apply", "query_password.change", "card.apply_first", "card.collect", "person.register"}


def _operations(app, actor, **filters) -> set[str]:
    return {r["operation"] for r in audit.read_audit(app, actor, limit=1000, **filters)["records"]}


def test_a_center_supervisor_reads_the_agencys_records_not_the_banks_money_movements(app, city, world):
    seen = _operations(app, city.actor("csup"))
    assert not seen & BANKS_BUSINESS, seen & BANKS_BUSINESS
    assert AGENCYS <= seen, seen  # the center's work on the cards (naming the bank's cards), the SS side's
    # no filter reaches past the scope
    assert _operations(app, city.actor("csup"), operation="bank.purchase") == set()
    assert _operations(app, city.actor("csup"), person_id=world["gsb"].person_id).isdisjoint(BANKS_BUSINESS)
    # the operator runs the city: everything
    assert BANKS_BUSINESS | {"replacement.apply", "query_password.change"} <= _operations(app, city.actor("operator"))


def test_a_bank_supervisor_reads_the_mirror_their_banks_records_and_not_the_agencys_own(app, city, world):
    gsb_seen = _operations(app, city.actor("bsup"))
    assert {"bank.deposit", "bank.purchase", "bank.transfer", "bank.activate"} <= gsb_seen
    assert "replacement.apply" in gsb_seen  # the center's change to a GSB card (a new GSB account)
    assert "query_password.change" not in gsb_seen and "bank_loss.report_written" not in gsb_seen
    jsb = staff.authenticate_staff(app, "bsup_jsb", STAFF_PASSWORD, Channel.BANK_OUTLET)
    jsb_seen = _operations(app, jsb)
    assert "bank_loss.report_written" in jsb_seen
    assert not jsb_seen & {"bank.deposit", "bank.purchase", "bank.transfer", "replacement.apply"}


def test_a_center_supervisors_page_walks_the_agency_index_not_the_payments(app):
    """The plan for a center supervisor's page (the planner told not to read whole tables): the partial
    index of the agency's records (migration 0026), newest first, with no sort."""
    dialect, plan = page_plan(app, audit.newest_first([AuditRecord.id], [audit.agency_records()], [], 100))
    if dialect == "postgresql":
        # each partition's copy of the parent's partial index (named `<partition>_id_idx`), no filter
        assert "Scan Backward using audit_records_default_id_idx" in plan, plan
        assert "Sort  (" not in plan and "Filter" not in plan, plan
    else:
        assert "ix_audit_records_agency" in plan and "TEMP B-TREE" not in plan, plan


def test_a_bank_supervisors_read_of_another_banks_customer_is_refused_and_recorded(app, city, client, world):
    from tests.support import bearer

    jsb = world["jsb"]
    token = bearer(city.token("bsup"))
    for person_id in (jsb.person_id, 999_999):  # another bank's customer, and nobody: answered and recorded alike
        answer = client.get("/api/v1/audit", params={"person_id": person_id}, headers=token)
        assert answer.status_code == 404 and answer.json()["code"] == "person_not_found"
    with app.db.session() as s:
        refused = s.execute(select(AuditRecord.person_id, AuditRecord.object_type, AuditRecord.actor_role)
                            .where(AuditRecord.operation == "audit.read", AuditRecord.result == "person_not_found")
                            .order_by(AuditRecord.id)).all()
        viewed = s.scalar(select(AuditRecord.id).where(AuditRecord.operation == "audit.read",
                                                        AuditRecord.result == "viewed",
                                                        AuditRecord.person_id == jsb.person_id))
    assert [tuple(r) for r in refused] == [(jsb.person_id, "audit_log", "bank_supervisor"),
                                           (999_999, "audit_log", "bank_supervisor")]
    assert viewed is None  # refused, not viewed
    # the auditor sees the attempt; the reading bank's supervisor sees their own
    assert any(r["result"] == "person_not_found" for r in
               audit.read_audit(app, city.actor("operator"), operation="audit.read")["records"])
    assert any(r["result"] == "person_not_found" and r["person_id"] == jsb.person_id for r in
               audit.read_audit(app, city.actor("bsup"), operation="audit.read")["records"])


def test_a_batched_replacement_to_another_bank_names_the_new_cards_bank_for_its_supervisor(app, city, world):
    card = city.issued_card("赵六", bank="GSB")
    out = batching.call(app, replacement.apply, city.actor("clerk"), card.card_number, "bank_change",
                        card.citizen_id, bank_code="JSB", payment="cash")
    assert out["bank"] == "JSB"
    with app.db.session() as s:
        jsb_id = s.scalar(select(Bank.id).where(Bank.code == "JSB"))
        record = s.execute(select(AuditRecord.id, AuditRecord.object_bank_id).where(
            AuditRecord.operation == "replacement.apply", AuditRecord.person_id == card.person_id)).one()
    assert record.object_bank_id == jsb_id
    jsb = staff.authenticate_staff(app, "bsup_jsb", STAFF_PASSWORD, Channel.BANK_OUTLET)
    assert record.id in [r["id"] for r in audit.read_audit(app, jsb, operation="replacement.apply")["records"]]
