"""The outbox and its feed (issue 18 item 4): written with the change, scoped by who asks, paged by id."""

from __future__ import annotations

import threading
import time

import pytest

from sscard.core.errors import SscardError
from sscard.core.roles import SYSTEM_ACTOR
from sscard.services import banking, events, loss, outbox
from tests.ledger.helpers import PIN


def feed(app, actor, after=0, limit=100):
    return events.feed(app, actor, after, limit)


def all_events(app, actor, after=0):
    out = []
    while True:
        page = feed(app, actor, after, 500)
        out += page["events"]
        if page["next_after"] == after:
            return out
        after = page["next_after"]


def test_a_formal_loss_at_the_window_appears_once_in_its_banks_feed_and_not_in_another_banks(city):
    app = city.app
    card = city.issued_card("王五", bank="GSB")
    other = city.issued_card("赵六", bank="JSB")
    start_gsb = feed(app, city.actor("teller"))["next_after"]
    start_jsb = feed(app, city.actor("teller_jsb"))["next_after"]
    loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)

    gsb = feed(app, city.actor("teller"), start_gsb)["events"]
    losses = [e for e in gsb if e["type"] == "card.ss_status_changed" and e["after"] == "formal_loss"]
    assert len(losses) == 1 and len(gsb) == 1
    event = losses[0]
    assert event["before"] == "normal" and event["operation"] == "ss_loss.report_formal"
    assert event["bank"] == "GSB" and event["center"] == "C01"
    assert event["pan"] == card.pan  # the card's own bank sees its PAN
    assert event["card_number"] != card.card_number and event["card_number"][:2] == card.card_number[:2]
    assert event["audit_id"] and len(event["uuid"]) == 36
    assert "王五" not in str(event) and card.citizen_id not in str(event)

    assert feed(app, city.actor("teller_jsb"), start_jsb)["events"] == []  # another bank sees nothing of it
    assert all(e["bank"] == "JSB" for e in all_events(app, city.actor("teller_jsb")))
    assert other.pan in {e["pan"] for e in all_events(app, city.actor("teller_jsb"))}

    centre = [e for e in all_events(app, city.actor("clerk2")) if e["after"] == "formal_loss"]
    assert len(centre) == 1 and centre[0]["pan"] != card.pan and centre[0]["pan"].endswith(card.pan[-4:])
    assert [e["uuid"] for e in all_events(app, city.actor("operator")) if e["after"] == "formal_loss"] == [
        event["uuid"]]


def test_every_state_change_of_a_card_on_both_sides_is_an_event_written_with_its_audit_record(city):
    app = city.app
    card = city.issued_card("钱七")
    teller = city.actor("teller")
    banking.activate(app, teller, card.pan, card.citizen_id, PIN, PIN, cardholder_in_person=True)
    loss.report_written_loss(app, teller, card.pan, card.citizen_id)
    loss.cancel_bank_loss(app, teller, card.pan, card.citizen_id)
    banking.credit_pension(app, SYSTEM_ACTOR, card.pan, 150_000, period="2026-11")

    mine = [e for e in all_events(app, city.actor("operator")) if e["pan"] and e["pan"][-4:] == card.pan[-4:]]
    steps = [(e["type"], e["before"], e["after"], e["operation"]) for e in mine]
    assert steps == [
        ("card.ss_status_changed", None, "applied", "card.apply_first"),
        ("card.bank_status_changed", None, "not_activated", "card.apply_first"),
        ("card.ss_status_changed", "applied", "in_production", "production.start_batch"),
        ("card.ss_status_changed", "in_production", "ready", "production.complete_batch"),
        ("card.ss_status_changed", "ready", "normal", "card.collect"),
        ("card.bank_status_changed", "not_activated", "active", "bank.activate"),
        ("card.bank_status_changed", "active", "written_loss", "bank_loss.report_written"),
        ("card.bank_status_changed", "written_loss", "active", "bank_loss.cancel"),
        ("bank.pension_credited", None, None, "bank.credit_pension"),
    ]
    assert mine[-1]["data"]["amount_fen"] == 150_000
    from sscard.models.foundation import AuditRecord

    with app.db.session() as s:
        for e in mine:
            assert s.get(AuditRecord, e["audit_id"]).operation == e["operation"]


def test_a_refused_operation_leaves_no_event(city):
    app = city.app
    card = city.issued_card()
    before = feed(app, city.actor("operator"))["next_after"]
    with pytest.raises(SscardError):
        loss.report_formal_loss(app, city.actor("clerk"), card.card_number, "110105194912310021")
    with pytest.raises(SscardError) as refused:
        loss.report_written_loss(app, city.actor("teller_jsb"), card.pan, card.citizen_id)
    assert refused.value.code == "wrong_bank"
    assert feed(app, city.actor("operator"), before)["events"] == []


def test_a_reader_never_skips_an_event_whose_transaction_commits_after_a_later_ones(city, monkeypatch):
    """Two concurrent transactions: A writes its event first but commits last. A reader polling with
    after= all along must still get both (PostgreSQL hands out ids from a sequence before commit)."""
    app = city.app
    first, second = city.issued_card("甲"), city.issued_card("乙")
    clerk, reader = city.actor("clerk"), city.actor("teller")
    cursor = feed(app, reader)["next_after"]
    written, release = threading.Event(), threading.Event()
    real_write = outbox.write

    def write_then_hold(session, items, **kw):
        real_write(session, items, **kw)
        if threading.current_thread().name == "A":
            written.set()  # A's event row is in, A has not committed
            release.wait(10)

    monkeypatch.setattr(outbox, "write", write_then_hold)
    a = threading.Thread(target=loss.report_formal_loss, name="A",
                         args=(app, clerk, first.card_number, first.citizen_id))
    b = threading.Thread(target=loss.report_formal_loss, name="B",
                         args=(app, clerk, second.card_number, second.citizen_id))
    a.start()
    assert written.wait(10)
    b.start()
    seen = []
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # B tries to commit while A holds on
        page = feed(app, reader, cursor)
        seen += page["events"]
        cursor = page["next_after"]
        time.sleep(0.05)
    release.set()
    a.join(10)
    b.join(10)
    page = feed(app, reader, cursor)
    seen += page["events"]
    assert sorted(e["pan"] for e in seen) == sorted([first.pan, second.pan])
    assert [e["id"] for e in seen] == sorted(e["id"] for e in seen)


def test_a_partner_that_was_down_catches_up_page_by_page_from_its_last_id(city):
    app = city.app
    teller = city.actor("teller")
    card = city.issued_card("吴十")
    banking.activate(app, teller, card.pan, card.citizen_id, PIN, PIN, cardholder_in_person=True)
    seen_before_outage = all_events(app, teller)
    last_id = seen_before_outage[-1]["id"]
    for month in range(12):  # while the partner is away
        banking.credit_pension(app, SYSTEM_ACTOR, card.pan, 100, period=f"2026-{month + 1:02d}")
    loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)

    caught_up, after = [], last_id
    while True:
        page = feed(app, teller, after, limit=5)
        assert len(page["events"]) <= 5
        if not page["events"]:
            assert page["next_after"] == after
            break
        caught_up += page["events"]
        after = page["next_after"]
    assert [e["type"] for e in caught_up] == ["bank.pension_credited"] * 12 + ["card.ss_status_changed"]
    assert len({e["uuid"] for e in caught_up}) == 13 and all(e["id"] > last_id for e in caught_up)
    assert [e["data"]["period"] for e in caught_up[:12]] == [f"2026-{m + 1:02d}" for m in range(12)]
