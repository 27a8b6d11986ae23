"""Collecting a card, and what a card's two sides look like now."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select, update

from ..core.clock import shanghai_day
from ..core.errors import SscardError
from ..core.identifiers import mask_card_number, mask_citizen_id, mask_name, mask_pan
from ..core.roles import ALL_ROLES_BUT_TERMINAL, CENTER_STAFF, Role
from ..core.states import SsStatus, effective_bank_status, effective_seal_status, effective_ss_status, ss_next
from ..models.foundation import Bank, BankAccount, Card, Person, ServiceCenter
from . import access, lookup
from .access import Scope
from .operation import Op, operation, query


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


@operation("card.collect", roles=CENTER_STAFF, scope=Scope.CENTER)
def collect_card(op: Op, card_number: str, presented_citizen_id: str) -> dict:
    """Hand over a ready card after the ID check: it is issued (normal) with SS password 123456.

    The 60-day activation window of the bank side starts today. A replacement's old card is
    cancelled on the SS side now; its bank account waits for the new one's activation (RULES §6)."""
    card = lookup.card_by_number(op.session, card_number)
    access.require_center(op.actor, card.ready_center_id)
    person = lookup.person_by_id(op.session, card.person_id)
    lookup.check_presented_id(person, presented_citizen_id)
    if _sealed(op, card):
        raise SscardError("card_sealed")
    before = card.ss_status
    card.ss_status = ss_next(card.ss_status, "collect")
    today = op.app.clock.today()
    card.collected_at = op.now
    card.status_changed_at = op.now
    card.issue_date = today
    card.expiry_date = add_years(today, op.policy.card.validity_years)
    card.ss_pw_digest = None  # the initial 123456
    card.ss_pw_failures = 0
    card.ss_pw_locked = False
    if person.first_card_number is None:
        person.first_card_number = card.card_number
    account = _account_to_hand_over(op, card)
    account.activation_deadline = today + timedelta(days=op.policy.activation.window_days)
    old_number = None
    if card.replaces_card_id:
        old = op.session.get(Card, card.replaces_card_id)
        if old is not None and old.ss_status != SsStatus.CANCELLED:
            old.ss_status = ss_next(old.ss_status, "cancel")
            old.status_changed_at = op.now
            old_number = old.card_number
    op.audit("card", card.card_number, before=before, after=card.ss_status, person_id=person.id,
             cancelled_old_card=old_number)
    return {
        "card_number": card.card_number,
        "ss_status": card.ss_status,
        "issue_date": card.issue_date,
        "expiry_date": card.expiry_date,
        "activation_deadline": account.activation_deadline,
        "cancelled_old_card": old_number,
    }


def _account_to_hand_over(op: Op, card: Card) -> BankAccount:
    """The bank account that goes with the card handed over. A replacement that keeps the PAN (policy
    bank.keep_pan_on_replacement) has none of its own: the old card's account moves to it now, whichever
    route or console collects it."""
    account = op.session.scalar(select(BankAccount).where(BankAccount.card_id == card.id))
    if account is None and card.replaces_card_id:
        account = op.session.scalar(select(BankAccount).where(BankAccount.card_id == card.replaces_card_id))
        if account is not None:
            account.card_id = card.id
            op.session.flush()
    if account is None:
        raise SscardError("account_not_found")
    return account


def _sealed(op: Op, card: Card) -> bool:
    status = effective_seal_status(card.ss_status, card.ready_at, op.now, op.policy.card.uncollected_seal_days)
    return status == SsStatus.SEALED


@operation("card.unseal", roles=CENTER_STAFF, scope=Scope.CENTER)
def unseal_card(op: Op, card_number: str, presented_citizen_id: str) -> dict:
    """The window visit a sealed card needs: ID check, then the card is ready again (a new year to collect)."""
    card = lookup.card_by_number(op.session, card_number)
    access.require_center(op.actor, card.ready_center_id)
    person = lookup.person_by_id(op.session, card.person_id)
    lookup.check_presented_id(person, presented_citizen_id)
    if card.ss_status == SsStatus.READY and _sealed(op, card):
        card.ss_status = ss_next(card.ss_status, "seal")  # the lapse, recorded before it is undone
    card.ss_status = ss_next(card.ss_status, "unseal")
    card.ready_at = op.now
    card.status_changed_at = op.now
    op.audit("card", card.card_number, before=SsStatus.SEALED, after=card.ss_status, person_id=person.id)
    return {"card_number": card.card_number, "ss_status": card.ss_status}


@operation("card.seal_uncollected", roles={Role.SYSTEM, Role.OPERATOR}, scope=Scope.CITY)
def seal_uncollected(op: Op) -> dict:
    """Record every ready card left uncollected for `card.uncollected_seal_days` as sealed (a nightly job)."""
    deadline = op.now - timedelta(days=op.policy.card.uncollected_seal_days)
    ss_next(SsStatus.READY, "seal")  # the rule, stated once in the state machine
    sealed = op.session.scalars(
        update(Card)
        .where(Card.ss_status == SsStatus.READY, Card.ready_at <= deadline)
        .values(ss_status=SsStatus.SEALED, status_changed_at=op.now, version=Card.version + 1)
        .returning(Card.id)
        .execution_options(synchronize_session=False)
    ).all()
    for card_id in sorted(sealed):
        op.event("card.ss_status_changed", card_id, before=SsStatus.READY, after=SsStatus.SEALED)
    op.audit("sweep", "uncollected_cards", cards=len(sealed))
    return {"sealed": len(sealed)}


def card_view(session, card: Card, now, *, masked: bool, seal_days: int | None = None) -> dict:
    """Both sides in effect at `now`; with `seal_days`, an uncollected ready card past it shows as sealed."""
    person = session.get(Person, card.person_id)
    bank = session.get(Bank, card.bank_id)
    account = session.scalar(select(BankAccount).where(BankAccount.card_id == card.id))
    center = session.get(ServiceCenter, card.ready_center_id) if card.ready_center_id else None
    ss = effective_ss_status(card.ss_status, card.loss_expires_at, now)
    if seal_days is not None:
        ss = effective_seal_status(ss, card.ready_at, now, seal_days)
    bank_status = effective_bank_status(account.status, account.loss_expires_at, now) if account else None
    days_left = None
    if account is not None and account.status == "not_activated" and account.activation_deadline:
        days_left = max(0, (account.activation_deadline - shanghai_day(now)).days)
    return {
        "card_number": mask_card_number(card.card_number) if masked else card.card_number,
        "person": {
            "name": mask_name(person.name) if masked else person.name,
            "citizen_id": mask_citizen_id(person.citizen_id),
        },
        "ss_status": ss,
        "ss_loss_expires_at": card.loss_expires_at if ss == SsStatus.TEMPORARY_LOSS else None,
        "reason": card.reason,
        "applied_at": card.applied_at,
        "ready_at": card.ready_at,
        "ready_center": center.name if center else None,
        "ready_center_en": (center.name_en or center.name) if center else None,
        "collected_at": card.collected_at,
        "issue_date": card.issue_date,
        "expiry_date": card.expiry_date,
        "spec_version": card.spec_version,
        "ss_password": {"initial": card.ss_pw_digest is None, "locked": card.ss_pw_locked},
        "bank": {
            "code": bank.code,
            "name": bank.name,
            "name_en": bank.name_en,
            "hotline": bank.hotline,
            "pan": mask_pan(account.pan) if account else None,
            "status": bank_status,
            "activation_deadline": account.activation_deadline if account else None,
            "activation_days_left": days_left,
        },
    }


@query("card.status", roles=ALL_ROLES_BUT_TERMINAL | {Role.TERMINAL}, scope=Scope.OWN, terminals=access.KIOSK)
def card_status(op: Op, card_number: str) -> dict:
    """Both sides of a card, in effect now (lapsed losses shown as lapsed). Numbers masked."""
    card = lookup.card_by_number(op.session, card_number, op.actor)
    op.audit("card", card.card_number, person_id=card.person_id)  # staff reads leave a "viewed" record
    return card_view(op.session, card, op.now, masked=True, seal_days=op.policy.card.uncollected_seal_days)


@query("person.cards", roles=ALL_ROLES_BUT_TERMINAL, scope=Scope.OWN)
def person_cards(op: Op, person_id: int) -> dict:
    person = lookup.person_by_id(op.session, person_id, op.actor)
    cards = op.session.scalars(select(Card).where(Card.person_id == person.id).order_by(Card.id)).all()
    if access.is_bank_side(op.actor):  # a bank sees its own cards of the person, not another bank's
        cards = [c for c in cards if c.bank_id == op.actor.bank_id]
    op.audit("person", person.id, person_id=person.id)
    return {
        "person": {"id": person.id, "name": mask_name(person.name), "citizen_id": mask_citizen_id(person.citizen_id)},
        "cards": [card_view(op.session, c, op.now, masked=True, seal_days=op.policy.card.uncollected_seal_days)
                  for c in cards],
    }


@query("person.find", roles=CENTER_STAFF | {Role.TELLER, Role.BANK_SUPERVISOR, Role.OPERATOR}, scope=Scope.OWN)
def find_person(op: Op, citizen_id: str | None = None, card_number: str | None = None) -> dict:
    """Staff look a person up by citizen ID or card number; the answer is masked like every list."""
    if citizen_id:
        person = lookup.person_by_citizen_id(op.session, citizen_id, op.actor)
    elif card_number:
        person = lookup.person_by_id(op.session, lookup.card_by_number(op.session, card_number, op.actor).person_id)
    else:
        from ..core.errors import SscardError

        raise SscardError("invalid_request")
    op.audit("person", person.id, person_id=person.id)
    return {"id": person.id, "name": mask_name(person.name), "citizen_id": mask_citizen_id(person.citizen_id),
            "birth_date": person.birth_date, "sex": person.sex}
