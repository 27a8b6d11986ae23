"""The demo city: deterministic for a seed, valid identifiers, a realistic mix of states, usable logins."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from sscard.core.clock import as_utc, shanghai_day
from sscard.core.identifiers import (
    citizen_id_facts,
    validate_card_number,
    validate_citizen_id,
    validate_ident_code,
    validate_pan,
)
from sscard.core.passwords import weak_pin_reason
from sscard.core.roles import SYSTEM_ACTOR, Channel, Role
from sscard.demo import people as demo_people
from sscard.demo.city import DEMO_STAFF_PASSWORD, STAFF, TERMINALS
from sscard.demo.run import REPORT_KEYS, DemoRefused, run_demo
from sscard.models.foundation import AuditRecord, Bank, BankAccount, Card, Person, ProductionBatch
from sscard.services import cards, loss, staff
from sscard.services import passwords as pw
from sscard.services.app import build_app
from sscard.services.staff import STAFF_ROLES, TERMINAL_KINDS

N = 300


def snapshot(app) -> dict:
    """Everything the seed decides, in id order."""
    with app.db.session() as s:
        persons = s.execute(select(Person.citizen_id, Person.name, Person.sex, Person.birth_date,
                                   Person.first_card_number, Person.phone).order_by(Person.id)).all()
        card_rows = s.execute(select(Card.card_number, Card.ident_code, Card.ss_status, Card.reason,
                                     Card.person_id, Card.replaces_card_id).order_by(Card.id)).all()
        accounts = s.execute(select(BankAccount.pan, BankAccount.status, BankAccount.card_id)
                             .order_by(BankAccount.id)).all()
    return {"persons": [tuple(r) for r in persons], "cards": [tuple(r) for r in card_rows],
            "accounts": [tuple(r) for r in accounts]}


@pytest.fixture
def demo(app):
    return run_demo(app, N, 7, chunk_size=100)


def test_same_seed_gives_the_same_people_cards_and_pans_in_a_second_database(app, demo, backend, settings, clock):
    first = snapshot(app)
    app.close()
    second_app = build_app(settings.__class__(database_url=backend.fresh_url(), secret_key=settings.secret_key,
                                              var_dir=settings.var_dir, fast_hashing=True), clock=clock)
    try:
        assert snapshot(second_app)["persons"] == []  # really another (or emptied) database
        report = run_demo(second_app, N, 7, chunk_size=70)  # other chunking, same people
        assert snapshot(second_app) == first
        assert report["sample_cardholders"] == demo["sample_cardholders"]
    finally:
        second_app.close()


def test_another_seed_gives_other_people(app, demo, backend, settings, clock):
    first = snapshot(app)
    other_app = build_app(settings.__class__(database_url=backend.fresh_url(), secret_key=settings.secret_key,
                                             var_dir=settings.var_dir, fast_hashing=True), clock=clock)
    try:
        run_demo(other_app, N, 8)
        other = snapshot(other_app)
    finally:
        other_app.close()
    assert {p[0] for p in other["persons"]}.isdisjoint({p[0] for p in first["persons"]})


def test_every_identifier_is_valid_unique_and_agrees_with_the_person(app, demo):
    with app.db.session() as s:
        persons = s.scalars(select(Person)).all()
        all_cards = s.scalars(select(Card)).all()
        accounts = s.scalars(select(BankAccount)).all()
        bins = {b.id: b.bin for b in s.scalars(select(Bank))}
    assert len(persons) == N
    areas = {p.id: p.area_code for p in persons}
    for p in persons:
        assert validate_citizen_id(p.citizen_id) == p.citizen_id
        facts = citizen_id_facts(p.citizen_id)
        assert (facts.birth_date, facts.sex, facts.area_code) == (p.birth_date, p.sex, p.area_code)
        assert p.area_code.startswith("1101")  # Beijing districts
        assert 1 <= len(p.name) <= 4
    for c in all_cards:
        assert validate_card_number(c.card_number) == c.card_number
        assert validate_ident_code(c.ident_code) == c.ident_code
        assert c.ident_code[:6] == areas[c.person_id]
    for a in accounts:
        assert validate_pan(a.pan, bins[a.bank_id]) == a.pan
    assert len({p.citizen_id for p in persons}) == len(persons)
    assert len({c.card_number for c in all_cards}) == len({c.ident_code for c in all_cards}) == len(all_cards)
    assert len({a.pan for a in accounts}) == len(accounts) == len(all_cards)


def test_cards_come_in_a_realistic_mix_of_states_on_both_sides(app, demo):
    counts = demo["counts"]
    ss, bank = counts["ss_status"], counts["bank_status"]
    for state in ("applied", "in_production", "ready", "normal", "temporary_loss", "formal_loss", "cancelled"):
        assert ss.get(state, 0) > 0, state
    for state in ("not_activated", "active", "oral_loss", "written_loss", "closed"):
        assert bank.get(state, 0) > 0, state
    assert ss["normal"] > 0.7 * N  # mostly cards in use
    with app.db.session() as s:
        all_cards = s.scalars(select(Card)).all()
        by_id = {c.id: c for c in all_cards}
        replacements = [c for c in all_cards if c.replaces_card_id]
        accounts = {a.card_id: a for a in s.scalars(select(BankAccount))}
    assert replacements
    for new in replacements:
        old = by_id[new.replaces_card_id]
        assert old.person_id == new.person_id and new.reason != "first"
        if new.ss_status == "normal":  # collected: the old card is cancelled
            assert old.ss_status == "cancelled"
            if accounts[new.id].status == "active":  # activated: the old account was closed
                assert accounts[old.id].status == "closed"
        elif new.reason == "lost":
            assert old.ss_status == "formal_loss"
    for c in all_cards:
        if c.ss_status != "cancelled" and c.ss_status not in ("applied", "in_production", "ready", "sealed"):
            assert not any(o.replaces_card_id == c.id and o.ss_status == "normal" for o in replacements)


def test_dates_and_secrets_follow_the_rules(app, demo):
    now = app.clock.now()
    today = app.clock.today()
    with app.db.session() as s:
        rows = s.execute(select(Card, BankAccount, Person).join(BankAccount, BankAccount.card_id == Card.id)
                         .join(Person, Person.id == Card.person_id)).all()
        batch_counts = dict(s.execute(select(ProductionBatch.status, func.sum(ProductionBatch.card_count))
                                      .group_by(ProductionBatch.status)).all())
    for card, account, person in rows:
        assert card.ss_pw_digest is None  # the initial 123456, not stored
        assert person.query_pw_hash is None and person.query_pw_initial
        assert as_utc(card.applied_at) <= now
        if card.collected_at is None:
            assert card.issue_date is None and account.status == "not_activated"
            assert account.activation_deadline is None
            continue
        assert as_utc(card.applied_at) <= as_utc(card.ready_at) <= as_utc(card.collected_at) <= now
        assert card.expiry_date.year - card.issue_date.year == 10
        assert account.activation_deadline == card.issue_date + timedelta(days=60)
        if card.ss_status == "normal":
            assert card.expiry_date > today
        if card.ss_status == "temporary_loss":
            assert as_utc(card.loss_expires_at) - as_utc(card.status_changed_at) == timedelta(days=7)
        if account.status in ("active", "oral_loss", "written_loss", "frozen"):
            assert account.pin_digest and account.activated_at is not None
            assert card.issue_date <= shanghai_day(as_utc(account.activated_at)) <= account.activation_deadline
            pin = demo_people.demo_pin(person.citizen_id)
            assert weak_pin_reason(pin, person.citizen_id, person.birth_date) is None
            assert app.secrets.pin_matches(account.pin_digest, "bank_pin", account.pan, pin)
        elif account.status == "not_activated":
            assert account.pin_digest is None and account.activated_at is None
        if account.status == "oral_loss":
            assert as_utc(account.loss_expires_at) - as_utc(account.status_changed_at) == timedelta(days=5)
        if person.first_card_number:
            assert person.first_card_number in {c.card_number for c, _a, p in rows if p.id == person.id}
    assert batch_counts.get("in_production", 0) > 0 and batch_counts.get("ready", 0) > 0


def test_staff_of_every_role_log_in_with_the_demo_password(app, demo):
    assert {u["role"] for u in demo["staff"]} == {str(r) for r in STAFF_ROLES}
    assert len(demo["staff"]) == len(STAFF)
    for user in demo["staff"]:
        assert user["password"] == DEMO_STAFF_PASSWORD
        actor = staff.authenticate_staff(app, user["username"], DEMO_STAFF_PASSWORD, Channel.WINDOW)
        assert actor is not None and str(actor.role) == user["role"]
        if user["where"]:
            assert actor.place == user["where"]
        assert staff.actor_for_token(app, user["api_token"]).role == actor.role
    assert staff.authenticate_staff(app, "clerk01", "not-the-password", Channel.WINDOW) is None


def test_terminal_tokens_of_every_kind_resolve(app, demo):
    assert {t["kind"] for t in demo["terminals"]} == TERMINAL_KINDS
    assert len(demo["terminals"]) == len(TERMINALS)
    for terminal in demo["terminals"]:
        actor = staff.actor_for_token(app, terminal["token"])
        assert actor is not None and actor.role is Role.TERMINAL
        assert (actor.id, actor.terminal_kind) == (terminal["code"], terminal["kind"])
    assert staff.actor_for_token(app, "made-up-token") is None


def test_sample_cardholders_log_in_with_their_initial_query_password(app, demo):
    samples = demo["sample_cardholders"]
    assert len(samples) >= 5
    clerk = staff.authenticate_staff(app, "clerk01", DEMO_STAFF_PASSWORD, Channel.WINDOW)
    for sample in samples:
        validate_citizen_id(sample["citizen_id"])
        out = pw.login_with_query_password(app, SYSTEM_ACTOR.via(Channel.PORTAL), sample["citizen_id"],
                                           sample["query_password"])
        assert out["person_id"] == sample["person_id"] and out["must_change_password"]
        status = cards.card_status(app, clerk, sample["card_number"])
        assert (status["ss_status"], status["bank"]["status"]) == (sample["ss_status"], sample["bank_status"])
        assert status["bank"]["pan"].endswith(sample["pan"][-4:])
        validate_ident_code(sample["ident_code"])  # what a hospital's card reader sends (session 21's integrator)
    first_card = next(s for s in samples if "old_card_number" not in s)
    assert first_card["query_password"] == first_card["card_number"][-6:]
    replaced = [s for s in samples if "old_card_number" in s]
    assert replaced and all(s["query_password"] == s["old_card_number"][-6:] for s in replaced)


def test_a_demo_card_goes_through_the_loss_services(app, demo):
    sample = next(s for s in demo["sample_cardholders"] if s["ss_status"] == "normal")
    clerk = staff.authenticate_staff(app, "clerk01", DEMO_STAFF_PASSWORD, Channel.WINDOW)
    out = loss.report_formal_loss(app, clerk, sample["card_number"], sample["citizen_id"])
    assert out["ss_status"] == "formal_loss"


def test_lapsed_losses_are_recorded_by_the_sweep(app, demo, clock):
    clock.advance(days=8)  # every temporary SS loss (7 days) and oral bank loss (5 days) has lapsed
    with app.db.session() as s:
        temporary = s.scalar(select(func.count()).where(Card.ss_status == "temporary_loss"))
        oral = s.scalar(select(func.count()).where(BankAccount.status == "oral_loss"))
    out = loss.sweep_lapsed(app, SYSTEM_ACTOR)
    assert (out["ss_cards"], out["bank_accounts"]) == (temporary, oral)
    assert temporary > 0 and oral > 0


def test_the_bulk_load_writes_one_summary_audit_record_per_chunk(app, demo):
    with app.db.session() as s:
        records = s.scalars(select(AuditRecord).where(AuditRecord.operation == "demo.load",
                                                      AuditRecord.object_type == "person")).all()
        per_operation = Counter(s.scalars(select(AuditRecord.operation)).all())
    assert len(records) == N // 100
    assert sum(r.detail["persons"] for r in records) == N
    assert [r.object_id for r in records] == ["1-100", "101-200", "201-300"]
    assert per_operation["staff.add_user"] == len(STAFF)
    assert per_operation["staff.issue_token"] == len(STAFF) + len(TERMINALS)
    assert per_operation["city.add_terminal"] == len(TERMINALS)


def test_if_empty_leaves_a_peopled_database_alone(app, demo):
    before = snapshot(app)
    assert run_demo(app, 50, 99, if_empty=True) == {"skipped": True, "existing_people": N}
    with pytest.raises(DemoRefused):
        run_demo(app, 50, 99)
    assert snapshot(app) == before


def test_the_report_has_the_documented_keys(demo):
    assert set(REPORT_KEYS) <= set(demo)
    assert demo["seed"] == 7 and demo["people"] == N and demo["counts"]["persons"] == N
    for sample in demo["sample_cardholders"]:
        assert {"name", "citizen_id", "card_number", "pan", "ss_status", "bank_status",
                "query_password"} <= set(sample)
