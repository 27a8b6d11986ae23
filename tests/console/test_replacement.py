"""Replacement and renewal: each reason, the fee (cash, card, waiver), production, collection, PAN policy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from sscard.core.errors import SscardError
from sscard.documents.receipts import (
    collection_receipt_lines,
    collection_receipt_pdf,
    fee_receipt_lines,
    fee_receipt_pdf,
)
from sscard.models.counter import FeeReceipt
from sscard.models.foundation import BankAccount, Card, IdempotencyRecord, ServiceCenter
from sscard.services import cards, ledger, loss, production, replacement

from .helpers import AGENT_ID, audits, poa, ready_replacement


def _card(app, number) -> Card:
    with app.db.session() as s:
        card = s.scalar(select(Card).where(Card.card_number == number))
        s.expunge(card)
        return card


def test_lost_card_needs_a_formal_loss_which_the_clerk_may_record_in_the_same_visit(city, app):
    card = city.issued_card()
    clerk = city.actor("clerk")
    with pytest.raises(SscardError) as err:
        replacement.apply(app, clerk, card.card_number, "lost", card.citizen_id, payment="cash")
    assert err.value.code == "formal_loss_required"
    out = replacement.apply(app, clerk, card.card_number, "lost", card.citizen_id, payment="cash",
                            record_formal_loss=True)
    assert out["formal_loss_recorded"] and out["old_card_status"] == "formal_loss"
    assert out["fee_fen"] == 2000 and out["fee_status"] == "paid" and out["receipt_no"]
    assert "银行账户尚未启用" in out["reminder"]["zh"]  # the old card's account, never activated: nothing to report
    assert out["card_number"] != card.card_number and out["ss_status"] == "applied"
    # the loss can no longer be cancelled
    with pytest.raises(SscardError) as err:
        loss.cancel_ss_loss(app, clerk, card.card_number, card.citizen_id)
    assert err.value.code == "replacement_exists"
    # and a second replacement is refused
    with pytest.raises(SscardError) as err:
        replacement.apply(app, clerk, card.card_number, "lost", card.citizen_id, payment="cash")
    assert err.value.code == "replacement_pending"


def test_lost_card_already_formally_lost_is_replaced_directly(city, app):
    card = city.issued_card()
    clerk = city.actor("clerk")
    loss.report_formal_loss(app, clerk, card.card_number, card.citizen_id)
    out = replacement.apply(app, clerk, card.card_number, "lost", card.citizen_id, payment="cash")
    assert not out["formal_loss_recorded"] and out["fee_fen"] == 2000


@pytest.mark.parametrize("reason,fee", [("damaged", 2000), ("data_change", 0)])
def test_damaged_costs_the_fee_and_data_change_is_free(city, app, reason, fee):
    card = city.issued_card()
    clerk = city.actor("clerk")
    if fee:
        with pytest.raises(SscardError) as err:
            replacement.apply(app, clerk, card.card_number, reason, card.citizen_id)
        assert err.value.code == "fee_payment_required"
    out = replacement.apply(app, clerk, card.card_number, reason, card.citizen_id, payment="cash" if fee else None)
    assert out["fee_fen"] == fee
    assert out["fee_status"] == ("paid" if fee else "none")
    assert (out["receipt_no"] is not None) == bool(fee)


def test_renewal_opens_window_days_before_expiry_and_is_free(city, app, clock):
    card = city.issued_card()
    clerk = city.actor("clerk")
    with pytest.raises(SscardError) as err:
        replacement.apply(app, clerk, card.card_number, "expiring", card.citizen_id)
    assert err.value.code == "renewal_too_early"
    expiry = _card(app, card.card_number).expiry_date
    clock.advance(days=(expiry - app.clock.today()).days - 60)
    out = replacement.apply(app, clerk, card.card_number, "expiring", card.citizen_id)
    assert out["fee_fen"] == 0 and out["fee_status"] == "none"


def test_renewal_window_is_a_policy(make_app, clock):
    from tests.support import City

    app = make_app(renewal={"window_days": 90})
    city = City(app)
    card = city.issued_card()
    expiry = _card(app, card.card_number).expiry_date
    clock.advance(days=(expiry - app.clock.today()).days - 90)
    out = replacement.apply(app, city.actor("clerk"), card.card_number, "expiring", card.citizen_id)
    assert out["reason"] == "expiring"


def test_bank_change_gives_a_card_of_the_other_bank_and_a_new_pan(city, app):
    card = city.issued_card()
    out = replacement.apply(app, city.actor("clerk"), card.card_number, "bank_change", card.citizen_id,
                            payment="cash", bank_code="JSB")
    assert out["bank"] == "JSB" and not out["pan_kept"]
    assert city.pan_of(out["card_number"]).startswith("621700")


def test_a_lost_card_is_not_replaced_for_another_reason(city, app):
    card = city.issued_card()
    loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)
    with pytest.raises(SscardError) as err:
        replacement.apply(app, city.actor("clerk"), card.card_number, "damaged", card.citizen_id, payment="cash")
    assert err.value.code == "card_lost"


def test_fee_waiver_needs_a_center_supervisor_and_a_reason(city, app):
    card = city.issued_card()
    with pytest.raises(SscardError) as err:
        replacement.apply_waived(app, city.actor("clerk"), card.card_number, "damaged", card.citizen_id, "低保户")
    assert err.value.code == "forbidden"
    with pytest.raises(SscardError) as err:
        replacement.apply_waived(app, city.actor("csup"), card.card_number, "damaged", card.citizen_id, "  ")
    assert err.value.code == "waive_reason_required"
    out = replacement.apply_waived(app, city.actor("csup"), card.card_number, "damaged", card.citizen_id, "低保户")
    assert out["fee_status"] == "waived" and out["fee_method"] == "waived"
    r = replacement.receipt(app, city.actor("csup"), out["receipt_no"])
    assert r["amount_fen"] == 0 and r["due_fen"] == 2000 and r["waive_reason"] == "低保户"
    assert audits(app, "replacement.apply_waived")[-1].detail["waive_reason"] == "低保户"


def test_cash_fee_goes_from_the_center_drawer_to_the_agency_fee_account(city, app):
    card = city.issued_card()
    out = replacement.apply(app, city.actor("clerk"), card.card_number, "damaged", card.citizen_id, payment="cash")
    with app.db.session() as s:
        income = ledger.system_account(s, replacement.FEE_INCOME, now=app.clock.now())
        assert ledger.balance(s, income).credits_posted == 2000
        receipt = s.scalar(select(FeeReceipt).where(FeeReceipt.receipt_no == out["receipt_no"]))
        assert receipt.amount_fen == 2000 and receipt.method == "cash" and receipt.ledger_transfer_id
        assert ledger.check_invariants(s)["ok"]


def test_card_fee_needs_an_active_bank_account_and_the_bank_pin(city, app):
    from sscard.services import banking

    card = city.issued_card()
    clerk, teller = city.actor("clerk"), city.actor("teller")
    with pytest.raises(SscardError) as err:
        replacement.apply(app, clerk, card.card_number, "damaged", card.citizen_id, payment="card", pin="730418")
    assert err.value.code == "not_activated"
    banking.activate(app, teller, card.pan, card.citizen_id, "730418", "730418", cardholder_in_person=True)
    banking.deposit(app, teller, card.pan, 5000)
    with pytest.raises(SscardError) as err:
        replacement.apply(app, clerk, card.card_number, "damaged", card.citizen_id, payment="card", pin="111999")
    assert err.value.code == "wrong_pin"
    with app.db.session() as s:
        account = s.scalar(select(BankAccount).where(BankAccount.pan == card.pan))
        assert account.pin_failures == 1  # the miss is counted, and nothing of the application was kept
        assert s.scalar(select(FeeReceipt.id)) is None
    out = replacement.apply(app, clerk, card.card_number, "damaged", card.citizen_id, payment="card", pin="730418")
    assert out["fee_method"] == "card" and out["fee_status"] == "paid"
    with app.db.session() as s:
        account = s.scalar(select(BankAccount).where(BankAccount.pan == card.pan))
        assert ledger.balance(s, account.ledger_account_id).posted == 3000
        income = ledger.system_account(s, replacement.FEE_INCOME, now=app.clock.now())
        assert ledger.balance(s, income).credits_posted == 2000
        assert ledger.check_invariants(s)["ok"]
    assert not any("730418" in str(r.detail) for r in audits(app, "replacement.apply"))


def test_a_card_paid_fee_goes_through_the_api_with_its_key_and_a_retry_pays_nothing_more(city, app, client):
    """Three outside testers (session 22): the route dropped the key of a request carrying a PIN, and the
    frame then refused it for want of one: no replacement could be paid by card through the API."""
    from sscard.services import banking
    from tests.foundation.helpers import headers

    card = city.issued_card()
    teller = city.actor("teller")
    banking.activate(app, teller, card.pan, card.citizen_id, "730418", "730418", cardholder_in_person=True)
    banking.deposit(app, teller, card.pan, 5000)
    body = {"card_number": card.card_number, "reason": "damaged", "presented_citizen_id": card.citizen_id,
            "payment": "card", "pin": "730418"}
    first = client.post("/api/v1/counter/replacements", json=body, headers=headers(city.token("clerk"), key="fee-1"))
    assert first.status_code == 201, first.text
    assert first.json()["fee_method"] == "card" and first.json()["fee_status"] == "paid"
    again = client.post("/api/v1/counter/replacements", json=body, headers=headers(city.token("clerk"), key="fee-1"))
    assert again.status_code == 201 and again.json() == first.json()
    other = client.post("/api/v1/counter/replacements", json={**body, "pin": "111999"},
                        headers=headers(city.token("clerk"), key="fee-1"))
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    with app.db.session() as s:
        account = s.scalar(select(BankAccount).where(BankAccount.pan == card.pan))
        assert ledger.balance(s, account.ledger_account_id).posted == 3000  # one fee of 20.00
        assert len(s.scalars(select(FeeReceipt)).all()) == 1
        stored = s.scalars(select(IdempotencyRecord.request_hash)).all()
    assert stored and not any("730418" in h for h in stored)


def test_new_card_is_made_ready_at_the_chosen_center_and_collected_there(city, app):
    card = city.issued_card()
    clerk = city.actor("clerk")
    out = replacement.apply(app, clerk, card.card_number, "damaged", card.citizen_id, payment="cash",
                            collect_center_code="C02")
    batch = production.start_batch(app, clerk, "C01")
    done = production.complete_batch(app, clerk, batch["batch"])
    assert done["routed_to_other_centers"] == 1
    with pytest.raises(SscardError) as err:
        cards.collect_card(app, clerk, out["card_number"], card.citizen_id)
    assert err.value.code == "wrong_center"
    got = cards.collect_card(app, city.actor("clerk2"), out["card_number"], card.citizen_id)
    assert got["ss_status"] == "normal" and got["cancelled_old_card"] == card.card_number
    assert got["activation_required"] is True
    assert (got["activation_deadline"]) == (app.clock.today() + timedelta(days=60)).isoformat()
    assert cards.card_status(app, clerk, card.card_number)["ss_status"] == "cancelled"


def test_agent_collects_with_a_power_of_attorney_naming_collection(city, app):
    card = city.issued_card()
    out = ready_replacement(city, card)
    clerk = city.actor("clerk")
    narrow = poa(city, card, scope=["replacement.apply"])
    with pytest.raises(SscardError) as err:
        cards.collect_card(app, clerk, out["card_number"], card.citizen_id, narrow["id"], AGENT_ID)
    assert err.value.code == "attorney_not_valid"
    good = poa(city, card, scope=["card.collect"])
    got = cards.collect_card(app, clerk, out["card_number"], card.citizen_id, good["id"], AGENT_ID)
    assert got["collected_by"] == "agent"
    record = audits(app, "card.collect")[-1]
    assert record.attorney_id == good["id"] and record.on_behalf_of == card.person_id
    assert record.object_id == out["card_number"] and record.after == "normal"
    with app.db.session() as session:  # the card keeps its collecting agent; the receipt reads it there
        assert session.scalar(select(Card.collecting_attorney_id)
                              .where(Card.card_number == out["card_number"])) == good["id"]
    receipt = cards.collection_receipt(app, clerk, out["card_number"])
    assert receipt["agent"]["name"] == "李*"
    text = " ".join(v for _, _, v in collection_receipt_lines(receipt))
    assert card.citizen_id not in text and out["card_number"] not in text


def test_agent_applies_and_pays_only_within_scope(city, app):
    card = city.issued_card()
    clerk = city.actor("clerk")
    apply_only = poa(city, card, scope=["replacement.apply"])
    with pytest.raises(SscardError) as err:
        replacement.apply(app, clerk, card.card_number, "damaged", card.citizen_id, payment="cash",
                          attorney_id=apply_only["id"], agent_citizen_id=AGENT_ID)
    assert err.value.code == "attorney_not_valid"
    both = poa(city, card, scope=["replacement.apply", "replacement.pay_fee"])
    out = replacement.apply(app, clerk, card.card_number, "damaged", card.citizen_id, payment="cash",
                            attorney_id=both["id"], agent_citizen_id=AGENT_ID)
    assert replacement.receipt(app, clerk, out["receipt_no"])["agent"]["name"] == "李*"
    assert audits(app, "replacement.apply")[-1].attorney_id == both["id"]


@pytest.mark.parametrize("keep", [False, True])
def test_pan_is_new_unless_the_policy_keeps_it(make_app, keep):
    from tests.support import City

    app = make_app(bank={"keep_pan_on_replacement": keep})
    city = City(app)
    card = city.issued_card()
    out = ready_replacement(city, card)
    assert out["pan_kept"] is keep
    got = cards.collect_card(app, city.actor("clerk"), out["card_number"], card.citizen_id)
    new_pan = city.pan_of(out["card_number"])
    assert (new_pan == card.pan) is keep
    if keep:
        assert got["pan"].endswith(card.pan[-4:])
    else:
        # the old account stays with the old card until the new one is activated
        assert city.pan_of(card.card_number) == card.pan


def test_fee_policy_at_another_value(make_app):
    from tests.support import City

    app = make_app(fee={"replacement_fen": 1500})
    city = City(app)
    card = city.issued_card()
    out = replacement.apply(app, city.actor("clerk"), card.card_number, "damaged", card.citizen_id, payment="cash")
    assert out["fee_fen"] == 1500
    assert replacement.receipt(app, city.actor("clerk"), out["receipt_no"])["amount_fen"] == 1500


def test_receipts_are_pdfs_with_a_cjk_font_and_masked_numbers(city, app):
    card = city.issued_card()
    out = ready_replacement(city, card, reason="lost", record_formal_loss=True)
    clerk = city.actor("clerk")
    r = replacement.receipt(app, clerk, out["receipt_no"])
    lines = fee_receipt_lines(r)
    assert ("实收金额", "Amount paid", "¥20.00") in lines
    pdf = fee_receipt_pdf(r)
    assert pdf.startswith(b"%PDF") and (b"WenQuanYi" in pdf or b"STSong" in pdf)
    cards.collect_card(app, clerk, out["card_number"], card.citizen_id)
    c = cards.collection_receipt(app, clerk, out["card_number"])
    assert c["activation_deadline"] == (app.clock.today() + timedelta(days=60)).isoformat()
    pdf = collection_receipt_pdf(c)
    assert pdf.startswith(b"%PDF")
    with pytest.raises(SscardError) as err:
        replacement.receipt(app, city.actor("clerk2"), out["receipt_no"])
    assert err.value.code == "wrong_center"


def test_a_retried_application_with_the_same_key_is_answered_once(city, app):
    card = city.issued_card()
    clerk = city.actor("clerk")
    first = replacement.apply(app, clerk, card.card_number, "damaged", card.citizen_id, payment="cash",
                              idempotency_key="window-1")
    again = replacement.apply(app, clerk, card.card_number, "damaged", card.citizen_id, payment="cash",
                              idempotency_key="window-1")
    assert again == first
    with app.db.session() as s:
        assert len(s.scalars(select(FeeReceipt)).all()) == 1
    with pytest.raises(SscardError) as err:
        replacement.apply(app, clerk, card.card_number, "lost", card.citizen_id, payment="cash",
                          idempotency_key="window-1")
    assert err.value.code == "idempotency_key_reused"


def test_a_card_not_yet_issued_cannot_be_replaced(city, app):
    card = city.issued_card()
    clerk = city.actor("clerk")
    out = replacement.apply(app, clerk, card.card_number, "damaged", card.citizen_id, payment="cash")
    with pytest.raises(SscardError) as err:
        replacement.apply(app, clerk, out["card_number"], "damaged", card.citizen_id, payment="cash")
    assert err.value.code == "replacement_not_allowed"
    with pytest.raises(SscardError) as err:
        replacement.apply(app, clerk, card.card_number, "damaged", "11010519491231002X", payment="cash")
    assert err.value.code == "identity_mismatch"


def _collect_by(route: str, city, app, card_number: str, citizen_id: str) -> dict:
    """Hand a card over through one of the routes that can (each twin answers through one operation)."""
    clerk = city.actor("clerk")
    if route == "card.collect":
        return cards.collect_card(app, clerk, card_number, citizen_id)
    from fastapi.testclient import TestClient

    from sscard.composition import create_app
    from tests.support import bearer

    path = {"api /cards": f"/api/v1/cards/{card_number}/collect",
            "api /counter": f"/api/v1/counter/cards/{card_number}/collect"}[route]
    with TestClient(create_app(app)) as client:
        r = client.post(path, json={"presented_citizen_id": citizen_id}, headers=bearer(city.token("clerk"), "c-1"))
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("route", ["card.collect", "api /cards", "api /counter"])
def test_a_kept_pan_replacement_is_collected_with_its_account_through_every_route(make_app, route):
    """Before: card.collect (and its API route) answered account_not_found for a card keeping its PAN."""
    from tests.support import City

    app = make_app(bank={"keep_pan_on_replacement": True})
    city = City(app)
    card = city.issued_card()
    out = ready_replacement(city, card)
    got = _collect_by(route, city, app, out["card_number"], card.citizen_id)
    assert got["ss_status"] == "normal"
    assert city.pan_of(out["card_number"]) == card.pan
    assert cards.card_status(app, city.actor("clerk"), card.card_number)["ss_status"] == "cancelled"


def _complete_by(route: str, city, app, batch: str) -> None:
    clerk = city.actor("clerk")
    if route == "production.complete_batch":
        production.complete_batch(app, clerk, batch)
    else:
        from fastapi.testclient import TestClient

        from sscard.composition import create_app
        from tests.support import bearer

        path = {"api /production-batches": f"/api/v1/production-batches/{batch}/complete",
                "api /counter": f"/api/v1/counter/production-batches/{batch}/complete"}[route]
        with TestClient(create_app(app)) as client:
            r = client.post(path, headers=bearer(city.token("clerk"), "b-1"))
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("route", ["production.complete_batch", "api /production-batches", "api /counter"])
def test_a_replacement_batch_completed_through_every_route_lands_at_the_chosen_center(city, app, route):
    """Before: production.complete_batch (and its API route) made the card ready where it was applied for."""
    card = city.issued_card()
    first = city.new_person("李四")
    clerk = city.actor("clerk")
    out = replacement.apply(app, clerk, card.card_number, "damaged", card.citizen_id, payment="cash",
                            collect_center_code="C02")
    from sscard.services import enrolment

    enrolment.apply_first_card(app, clerk, first[0], "GSB", "C01")
    batch = production.start_batch(app, clerk, "C01")["batch"]
    _complete_by(route, city, app, batch)
    with app.db.session() as s:
        new = s.scalar(select(Card).where(Card.card_number == out["card_number"]))
        firsts = s.scalars(select(Card).where(Card.person_id == first[0])).all()
        centers = {c.id: c.code for c in s.scalars(select(ServiceCenter))}
        assert (new.ss_status, centers[new.ready_center_id]) == ("ready", "C02")
        assert [(c.ss_status, centers[c.ready_center_id]) for c in firsts] == [("ready", "C01")]


def test_migration_0010_takes_each_collecting_agent_from_the_audit_records(city, app):
    """Cards collected before the card kept its collecting agent get it from their collection's audit
    record; a card collected by the cardholder in person keeps none."""
    from alembic import command
    from sqlalchemy import create_engine

    from sscard.db import alembic_config

    in_person = city.issued_card()
    card = city.issued_card("王五")
    out = ready_replacement(city, card)
    good = poa(city, card, scope=["card.collect"])
    cards.collect_card(app, city.actor("clerk"), out["card_number"], card.citizen_id, good["id"], AGENT_ID)
    cfg = alembic_config(app.db.url)
    # as an operator migrates: on PostgreSQL at READ COMMITTED, not in a serializable transaction that the
    # server's background sealer (writing audit records) can cancel
    engine = create_engine(app.db.url, isolation_level="READ COMMITTED") if app.db.dialect == "postgresql" \
        else app.db.engine
    with engine.begin() as conn:  # back to before the column, then forward again: the backfill runs
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009_english_names")
        command.upgrade(cfg, "heads")
    if engine is not app.db.engine:
        engine.dispose()
    with app.db.session() as session:
        agents = dict(session.execute(select(Card.card_number, Card.collecting_attorney_id)
                                      .where(Card.collected_at.is_not(None))).all())
    assert agents[out["card_number"]] == good["id"]
    assert agents[in_person.card_number] is None
