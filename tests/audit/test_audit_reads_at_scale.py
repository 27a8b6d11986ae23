"""The audit log's reads, as they are built for a city's millions of records (migrations 0019, 0021): each
filter walks an index ending with the id, and a bank supervisor's read walks the bank columns that the log's
insert trigger derives as each record is written.

Every kind of record the bank rule knows (made at an outlet, a bank's terminal, a terminal of no bank, on a
bank's hotline, by a bank's staff elsewhere, about a bank; about an account or a card of a bank, a read of
one; made by one bank about another bank's card) gets the banks the rule gives it as it is written, before
any sealer passes, and sealing changes no reader's records."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from sscard.core.roles import CLI_OPERATOR, Channel
from sscard.models.foundation import AuditRecord, Bank
from sscard.services import audit, audit_chain, banking, loss, staff, window
from tests.support import STAFF_PASSWORD

PIN = "826451"


@pytest.fixture
def records(app, city):
    """Real records (tellers of both banks, a clerk's reads, the city's set-up) and one of each kind the
    bank rule tells apart, written as the writers write them."""
    gsb, jsb = city.issued_card("张三", bank="GSB"), city.issued_card("李四", bank="JSB")
    for card, teller in ((gsb, city.actor("teller")), (jsb, city.actor("teller_jsb"))):
        banking.activate(app, teller, card.pan, card.citizen_id, PIN, PIN, cardholder_in_person=True)
        loss.report_written_loss(app, teller, card.pan, card.citizen_id)
    window.person_overview(app, city.actor("clerk"), gsb.person_id)
    staff.add_user(app, CLI_OPERATOR, "bsup_jsb", STAFF_PASSWORD, "bank_supervisor", "bsup_jsb", outlet_code="JSB-001")
    teller_gsb = city.actor("teller").id
    kinds = [  # (actor kind, actor id, place, object type, object id, result)
        ("terminal", "ATM-GSB-1", "ATM-GSB-1", "card", jsb.card_number, "ok"),  # GSB's ATM, JSB's card
        ("terminal", "KIOSK-1", "KIOSK-1", "card", gsb.card_number, "refused"),  # no bank's terminal
        ("cardholder", str(jsb.person_id), "bank:JSB", "person", str(jsb.person_id), "wrong_password"),
        ("caller", "", "bank:GSB", "bank", "GSB", "not_found"),
        ("staff", str(teller_gsb), "", "bank_account", jsb.pan, "ok"),  # GSB staff, no place, JSB's account
        ("staff", str(city.actor("clerk").id), "C01", "card", jsb.card_number, "viewed"),  # a read: not JSB's
        ("staff", str(city.actor("clerk").id), "C01", "card", jsb.card_number, "ok"),
        ("operator", "cli", "", "bank", "JSB", "ok"),
        ("staff", str(city.actor("clerk").id), "C01", "bank_account", "6222020000000000", "ok"),  # no such PAN
        ("system", "system", "", "person", str(gsb.person_id), "ok"),
    ]
    with app.db.session() as s:
        now = app.clock.now()
        for i, (kind, actor_id, place, object_type, object_id, result) in enumerate(kinds):
            s.add(AuditRecord(at=now + timedelta(seconds=i), actor_kind=kind, actor_id=actor_id, actor_role=kind,
                              channel="test", place=place, operation=f"kind.{i}", object_type=object_type,
                              object_id=object_id, person_id=None, result=result, detail={}))
    return {"gsb": gsb, "jsb": jsb}


READERS = ("bsup", "bsup_jsb", "csup", "operator")
FILTERS = ({}, {"result": "ok"}, {"channel": "test"}, {"operation": "bank_loss.report_written"},
           {"limit": 3}, {"limit": 3, "offset": 2}, {"result": "viewed"})


def _bsup_jsb(app):
    """JSB's supervisor, signed in once per app: a sign-in is a record of its own (`staff.login`), which a
    second sign-in between two reads would add to what the second read finds."""
    if "test_bsup_jsb" not in app.extras:
        app.extras["test_bsup_jsb"] = staff.authenticate_staff(app, "bsup_jsb", STAFF_PASSWORD, Channel.BANK_OUTLET)
    return app.extras["test_bsup_jsb"]


def _reads(app, city) -> dict:
    actors = {**{who: city.actor(who) for who in ("bsup", "csup", "operator")},
              "bsup_jsb": _bsup_jsb(app)}
    return {(who, str(f)): [r["id"] for r in audit.read_audit(app, actors[who], **f)["records"]]
            for who in READERS for f in FILTERS}


def test_each_record_gets_its_banks_as_it_is_written_and_sealing_changes_no_read(app, city, records):
    before = _reads(app, city)
    with app.db.session() as s:
        derived = s.execute(select(AuditRecord.operation, AuditRecord.maker_bank_id, AuditRecord.object_bank_id)
                            .where(AuditRecord.channel == "test").order_by(AuditRecord.id)).all()
        gsb_id, jsb_id = (s.scalar(select(Bank.id).where(Bank.code == code)) for code in ("GSB", "JSB"))
    assert [(m, o) for _, m, o in derived] == [
        (gsb_id, jsb_id), (None, gsb_id), (jsb_id, None), (gsb_id, None), (gsb_id, jsb_id), (None, jsb_id),
        (None, jsb_id), (jsb_id, None), (None, None), (None, None)]
    assert audit_chain.seal(app) > 0
    after = _reads(app, city)
    assert after == before
    assert audit_chain.verify(app)["ok"]  # the bank columns are outside the chain's hash
    # the reads found something to compare: each bank its own, not the other's
    assert before[("bsup", "{}")] and before[("bsup_jsb", "{}")]
    assert set(before[("bsup", "{}")]) != set(before[("bsup_jsb", "{}")])


def test_a_record_made_by_one_bank_about_another_banks_card_is_read_by_both_and_listed_once(app, city, records):
    audit_chain.seal(app)
    actors = {"bsup": city.actor("bsup"),
              "bsup_jsb": _bsup_jsb(app)}
    for who, actor in actors.items():
        ops = [r["operation"] for r in audit.read_audit(app, actor, channel="test")["records"]]
        assert ops.count("kind.0") == 1, who  # GSB's ATM, JSB's card: both banks', once each
        assert ops.count("kind.4") == 1, who  # GSB's teller, JSB's account
    jsb_ops = {r["operation"] for r in audit.read_audit(app, actors["bsup_jsb"], channel="test")["records"]}
    assert "kind.5" not in jsb_ops  # the clerk's read of JSB's card is not JSB's business
    assert "kind.6" in jsb_ops  # the clerk's change to it is


def test_the_cardholders_access_log_lists_a_record_about_them_and_made_for_them_once(app, city, records):
    gsb = records["gsb"]
    with app.db.session() as s:
        s.add(AuditRecord(at=app.clock.now(), actor_kind="staff", actor_id=str(city.actor("clerk").id),
                          actor_role="clerk", channel="window", place="C01", operation="agent.both",
                          object_type="person", object_id=str(gsb.person_id), person_id=gsb.person_id,
                          on_behalf_of=gsb.person_id, result="ok", detail={}))
        s.add(AuditRecord(at=app.clock.now(), actor_kind="staff", actor_id=str(city.actor("clerk").id),
                          actor_role="clerk", channel="window", place="C01", operation="agent.for_them",
                          object_type="person", object_id="1", person_id=None, on_behalf_of=gsb.person_id,
                          result="ok", detail={}))
    listed = [r["operation"] for r in audit.about_me(app, city.cardholder(gsb))["records"]]
    assert listed.count("agent.both") == 1 and listed.count("agent.for_them") == 1
    assert "bank_loss.report_written" in listed


def test_a_rare_filters_page_walks_an_index_backwards_not_the_table(app):
    """The plan the database makes for one filter's page (the planner told not to read whole tables, which
    for a test's handful of records would be its cheapest choice): the filter's index, newest first."""
    dialect, plan = page_plan(app, audit.newest_first([AuditRecord.id], [AuditRecord.result == "refused"], [], 100))
    if dialect == "postgresql":
        assert "Scan Backward using" in plan and "result_id_idx" in plan, plan
        assert "Sort  (" not in plan, plan  # (a Merge Append's "Sort Key" is the partitions' merge)
    else:
        assert "INDEX ix_audit_records_result" in plan and "TEMP B-TREE" not in plan, plan


def page_plan(app, query) -> tuple[str, str]:
    """The database's plan for an audit page's query, the planner told not to read whole tables (which for
    a test's handful of records would be its cheapest choice): (dialect name, plan text)."""
    with app.db.session() as s:
        dialect = s.get_bind().dialect
        sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        if dialect.name == "postgresql":
            s.execute(text("SET LOCAL enable_seqscan = off"))
            s.execute(text("SET LOCAL enable_bitmapscan = off"))
            return dialect.name, "\n".join(r[0] for r in s.execute(text("EXPLAIN " + sql)))
        return dialect.name, "\n".join(r[-1] for r in s.execute(text("EXPLAIN QUERY PLAN " + sql)))


def test_a_page_deeper_than_the_bound_is_refused_with_a_code_not_a_server_error(app, city, client):
    from tests.support import bearer

    token = bearer(city.token("operator"))
    for offset in (audit.MAX_OFFSET + 1, 10**20):
        answer = client.get("/api/v1/audit", params={"offset": offset}, headers=token)
        assert answer.status_code == 422 and answer.json()["code"], answer.text
    deepest = client.get("/api/v1/audit", params={"offset": audit.MAX_OFFSET}, headers=token)
    assert deepest.status_code == 200 and deepest.json()["records"] == []
