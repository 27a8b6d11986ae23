"""Changing, verifying and resetting the SS application password and the information query password.

(The bank PIN lives with the bank account: see services/banking when the ledger lands.)
Every check counts misses and locks per RULES §4; the counter is committed even when the answer is
`wrong_password`. No password is ever returned, logged or audited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from ..core.errors import SscardError
from ..core.identifiers import normalise
from ..core.passwords import (
    INITIAL_SS_PASSWORD,
    Lockout,
    check_new_pin,
    check_new_query_password,
    check_repeat,
    constant_time_equal,
    initial_query_password,
    phone_typable,
    verify_with_lockout,
)
from ..core.roles import CENTER_STAFF, Actor, Channel, Role
from ..core.states import SsStatus, effective_ss_status
from ..models.counter import PowerOfAttorney
from ..models.foundation import Card, Person, WebSession
from . import access, attorney, cards, lookup
from .access import Scope
from .app import App
from .cards import CardView
from .operation import Op, operation, query

SS_PURPOSE = "ss_password"


def _verify(op: Op, kind: str, current: Lockout, matches: bool, keep: Callable[[Lockout], None],
            audited: tuple[str, object], person_id: int) -> None:
    """A password check with its lock: the new lock state kept (`keep`) and audited on the object, then the
    refusal raised (commit=True) on a miss or while locked."""
    lock, error = verify_with_lockout(current, kind, op.policy, op.now, matches,
                                      locked_code="password_locked", wrong_code="wrong_password")
    keep(lock)
    op.audit(*audited, person_id=person_id, failures=lock.failures)
    if error:
        raise error


# ---------------------------------------------------------------- SS application password (per card)


def ss_lock(card: Card) -> Lockout:
    return Lockout(card.ss_pw_failures, None, card.ss_pw_locked)


def _set_ss_lock(card: Card, lock: Lockout) -> None:
    if (card.ss_pw_failures, card.ss_pw_locked) != (lock.failures, lock.locked):  # (unchanged: nothing to flush)
        card.ss_pw_failures = lock.failures
        card.ss_pw_locked = lock.locked


def ss_password_matches(op: Op, card: Card, password: str) -> bool:
    if card.ss_pw_digest is None:
        return constant_time_equal(password, INITIAL_SS_PASSWORD)
    return op.secrets.pin_matches(card.ss_pw_digest, SS_PURPOSE, card.card_number, password)


def check_ss_password(op: Op, card: Card, password: str, *, for_medical_use: bool = False) -> None:
    """Verify with the 3-strikes lock; raises (commit=True) on a miss. Used by medical settlement too."""
    _verify(op, "ss_password", ss_lock(card), ss_password_matches(op, card, password),
            lambda lock: _set_ss_lock(card, lock), ("card", card.card_number), card.person_id)
    if for_medical_use and card.ss_pw_digest is None and op.policy.ss_password.require_change_before_use:
        raise SscardError("password_change_required")


def _usable_card(op: Op, card_number: str) -> Card:
    card = lookup.card_by_number(op.session, card_number, op.actor)
    status = effective_ss_status(card.ss_status, card.loss_expires_at, op.now)
    if status in (SsStatus.CANCELLED, SsStatus.APPLIED, SsStatus.IN_PRODUCTION, SsStatus.READY, SsStatus.SEALED):
        raise SscardError("card_not_usable", state=str(status))
    return card


def card_in_use(op: Op, card_number: str) -> Card:
    """A usable card not reported lost: a temporary or formal loss stops the card's SS application at once
    (RULES §5), its password's use and its change alike (12333 and the portal refused the change, the
    kiosk and the API made it: session 22's rules probe)."""
    card = _usable_card(op, card_number)
    if effective_ss_status(card.ss_status, card.loss_expires_at, op.now) in (SsStatus.TEMPORARY_LOSS,
                                                                             SsStatus.FORMAL_LOSS):
        raise SscardError("card_lost")
    return card


@operation("ss_password.change", roles={Role.CARDHOLDER, Role.TERMINAL} | CENTER_STAFF, scope=Scope.OWN, secrets=('old', 'new', 'new_again'), terminals=access.KIOSK)
def change_ss_password(op: Op, card_number: str, old: str, new: str, new_again: str) -> dict[str, Any]:
    """Old password, then the new one twice (12333, kiosk, window PIN pad). Weak ones are refused."""
    card = card_in_use(op, card_number)
    check_repeat(new, new_again)
    person = lookup.person_by_id(op.session, card.person_id)
    check_new_pin(new, person.citizen_id, person.birth_date)
    check_ss_password(op, card, old)
    card.ss_pw_digest = op.secrets.pin_digest(SS_PURPOSE, card.card_number, new)
    op.audit("card", card.card_number, person_id=card.person_id, after="ss_password_changed")
    return {"card_number": card.card_number, "changed": True}


@operation("ss_password.verify", roles={Role.TERMINAL, Role.CARDHOLDER, Role.SYSTEM}, scope=Scope.OWN, keyed=False, secrets=('password',), terminals=access.SS_VERIFY)
def verify_ss_password(op: Op, card_number: str, password: str) -> dict[str, Any]:
    card = card_in_use(op, card_number)
    check_ss_password(op, card, password)
    return {"card_number": card.card_number, "verified": True}


@operation("ss_password.card_status", roles={Role.TERMINAL}, scope=Scope.OWN, keyed=False, secrets=('password',), terminals=access.KIOSK)
def card_status_with_password(op: Op, card_number: str, password: str) -> CardView:
    """A card's two sides at a kiosk, once its SS password is verified (with its lockout, RULES §4), as a bank's
    self-service terminal shows nothing of a card before its PIN. Until session 26 the kiosk answered any
    typed card number's masked holder, both states and masked PAN (`card.status`, no password): a card number
    is printed on the card and copied on every form, so anyone at a kiosk learned whether a card was lost,
    frozen or unactivated, and whose it was. The password is checked before anything of the card's state is
    told (a card reported lost answers a wrong password `wrong_password`, not `card_lost`), and with it the
    state is shown whatever it is: a cardholder at the kiosk sees their card's loss as a loss, not a refusal."""
    card = lookup.card_by_number(op.session, card_number, op.actor)
    check_ss_password(op, card, password)
    op.audit("card", card.card_number, person_id=card.person_id)
    return cards.card_view(op.session, card, op.now, masked=True, seal_days=op.policy.card.uncollected_seal_days)


@operation("ss_password.reset", roles=CENTER_STAFF, scope=Scope.OWN, secrets=('new',))
def reset_ss_password(op: Op, card_number: str, presented_citizen_id: str, new: str | None = None) -> dict[str, Any]:
    """At a window with ID: back to the initial 123456, or to a new one typed on the PIN pad; unlocks."""
    return _reset_ss_password(op, card_number, presented_citizen_id, new, agent=None)


@operation("ss_password.reset_by_agent", roles=CENTER_STAFF, scope=Scope.OWN)
def reset_ss_password_by_agent(op: Op, card_number: str, presented_citizen_id: str, attorney_id: int,
                               agent_citizen_id: str) -> dict[str, Any]:
    """RULES §4: a forgotten or locked SS password is reset at a window by an agent with a power of
    attorney naming `ss_password.reset` and both IDs; back to the initial 123456 (a new one is set on the
    PIN pad later, by the cardholder)."""
    card = lookup.card_by_number(op.session, card_number)
    agent = attorney.agent_for(op, attorney_id, agent_citizen_id, card.person_id, "ss_password.reset")
    return _reset_ss_password(op, card_number, presented_citizen_id, None, agent=agent)


def _reset_ss_password(op: Op, card_number: str, presented_citizen_id: str, new: str | None, *,
                       agent: PowerOfAttorney | None) -> dict[str, Any]:
    card = _usable_card(op, card_number)
    person = lookup.person_by_id(op.session, card.person_id)
    lookup.check_presented_id(person, presented_citizen_id)
    if new is None:
        card.ss_pw_digest = None
    else:
        check_new_pin(new, person.citizen_id, person.birth_date)
        card.ss_pw_digest = op.secrets.pin_digest(SS_PURPOSE, card.card_number, new)
    _set_ss_lock(card, Lockout())
    op.audit("card", card.card_number, person_id=person.id, after="ss_password_reset", to_initial=new is None,
             on_behalf_of=person.id if agent else None, attorney_id=agent.id if agent else None)
    return {"card_number": card.card_number, "reset": True, "initial": new is None}


# ---------------------------------------------------------------- information query password (per person)


def _query_lock(person: Person) -> Lockout:
    return Lockout(person.query_pw_failures, person.query_pw_locked_until, False)


def _set_query_lock(person: Person, lock: Lockout) -> None:
    person.query_pw_failures = lock.failures
    person.query_pw_locked_until = lock.locked_until


def query_password_is_initial(person: Any) -> bool:
    """Whether the person's query password is still the initial one (none set since, or reset): a Person, or
    a row of its two columns."""
    return bool(person.query_pw_initial or person.query_pw_hash is None)


def query_password_matches(op: Op, person: Person, password: str) -> bool:
    if query_password_is_initial(person):
        op.secrets.no_password_matches(password)  # as long as a set password's check (R1.8)
        initial = initial_query_password(op.policy, person.first_card_number, person.citizen_id)
        return constant_time_equal(password, initial)
    return op.secrets.password_matches(person.query_pw_hash, password)


def phone_usable(op: Op, person: Person) -> bool | None:
    """Whether the person's query password can be typed on 12333's keypad (None: not known yet)."""
    if query_password_is_initial(person):
        return phone_typable(initial_query_password(op.policy, person.first_card_number, person.citizen_id))
    return person.query_pw_phone_ok


def check_query_password(op: Op, person: Person, password: str) -> None:
    if op.actor.channel == Channel.HOTLINE_12333 and phone_usable(op, person) is False and not _locked(op, person):
        # A password with letters (set before the digits-only rule, or an initial one from a card number
        # with letters) can never match what a keypad sends: not counting the miss keeps the caller from
        # locking themselves out of the web too. The answer is the same plain refusal an unknown login gets.
        op.audit("person", person.id, person_id=person.id, failures=person.query_pw_failures,
                 not_counted="password_has_letters")
        raise SscardError("wrong_password", commit=True)
    _verify(op, "query_password", _query_lock(person), query_password_matches(op, person, password),
            lambda lock: _set_query_lock(person, lock), ("person", person.id), person.id)
    if not query_password_is_initial(person):
        person.query_pw_phone_ok = phone_typable(password)  # learnt from the one that just matched


def _locked(op: Op, person: Person) -> bool:
    return _query_lock(person).is_locked(op.now)


def person_by_login(op: Op, login: str) -> Person:
    """A login is the SS number (citizen ID) or a card number; unknown logins answer like wrong passwords."""
    login = normalise(login)  # spaces, full-width digits, lower case: as every identifier typed
    try:
        if len(login) == 18:
            return lookup.person_by_citizen_id(op.session, login)
        card = lookup.card_by_number(op.session, login)
        return lookup.person_by_id(op.session, card.person_id)
    except SscardError:
        raise SscardError("wrong_password") from None


@operation("query_password.login", roles={Role.SYSTEM}, scope=Scope.CITY, keyed=False, secrets=('password',))
def login_with_query_password(op: Op, login: str, password: str) -> dict[str, Any]:
    """Portal and 12333 identification. The channel calls this as itself (a SYSTEM actor on its channel)
    and, on success, acts for the person as a cardholder."""
    try:
        person = person_by_login(op, login)
    except SscardError:
        op.secrets.no_password_matches(password)  # an unknown login takes a check's time too (R1.8)
        raise
    try:
        check_query_password(op, person, password)
    except SscardError as err:
        raise err.without_count() from None
    op.audit("person", person.id, person_id=person.id, after="logged_in")
    return {"person_id": person.id, "must_change_password": query_password_is_initial(person), "name": person.name,
            "phone_usable": phone_usable(op, person), "generation": person.query_pw_generation or 0}


@operation("query_password.change", roles={Role.CARDHOLDER}, scope=Scope.OWN, secrets=('old', 'new', 'new_again'),
           ends_session=True)
def change_query_password(op: Op, old: str, new: str, new_again: str, keep_session: str | None = None) -> dict[str, Any]:
    """The cardholder's own change (portal, API, kiosk): every portal session of theirs ends but the one
    that changed it (`keep_session`: its key, websession.session_key), as after a reset."""
    assert op.actor.person_id is not None  # a cardholder actor always carries its person id
    person = lookup.person_by_id(op.session, op.actor.person_id, op.actor)
    check_repeat(new, new_again)
    initial = initial_query_password(op.policy, person.first_card_number, person.citizen_id)
    check_new_query_password(new, person.citizen_id, initial, person.birth_date)
    check_query_password(op, person, old)
    if constant_time_equal(old, new):
        raise SscardError("weak_password", reason=("新密码不能与原密码相同", "it is the same as the old one"))
    person.query_pw_hash = op.secrets.hash_password(new)
    person.query_pw_initial = False
    person.query_pw_phone_ok = phone_typable(new)
    _new_generation(op, person)
    ended = end_portal_sessions(op, person.id, keep=keep_session)
    op.audit("person", person.id, person_id=person.id, after="query_password_changed", portal_sessions_ended=ended)
    return {"changed": True}


@operation("query_password.reset", roles=CENTER_STAFF | {Role.SYSTEM}, scope=Scope.OWN)
def reset_query_password(op: Op, person_id: int, presented_citizen_id: str, attorney_id: int | None = None,
                         agent_citizen_id: str | None = None) -> dict[str, Any]:
    """At a window with ID (or 12333 after its own identification): back to the initial value; unlocks. Only
    the cardholder in person: an agent (`attorney_id`, with their own ID) is refused, recorded."""
    person = lookup.person_by_id(op.session, person_id)
    attorney.refuse_agent(op, attorney_id, person.id)
    lookup.check_presented_id(person, presented_citizen_id)
    person.query_pw_hash = None
    person.query_pw_initial = True
    person.query_pw_phone_ok = None
    _set_query_lock(person, Lockout())
    _new_generation(op, person)
    ended = end_portal_sessions(op, person.id)
    op.audit("person", person.id, person_id=person.id, after="query_password_reset", portal_sessions_ended=ended)
    return {"reset": True}


def _new_generation(op: Op, person: Person) -> None:
    """A change or reset of the query password: every cardholder API token issued before it stops working
    (each carries the generation it was issued under: api.sessions, `query_password_state`), the
    caller's own among them when the caller is the person (`Op.ends_sessions_of`: declared `ends_session`)."""
    person.query_pw_generation = (person.query_pw_generation or 0) + 1
    op.ends_sessions_of(person.id)


def query_password_state(app: App, person_id: int) -> tuple[int, bool] | None:
    """The person's query-password generation, and whether the password is still the initial one (None: no
    such person): what a cardholder's API token must carry to be taken, and whether its holder must change
    the password before anything else (`Actor.must_change_password`). One read by primary key per
    cardholder API request (their traffic is light); the staff and terminal tokens never come here."""

    def work(session: Session) -> tuple[int, bool] | None:
        row = session.execute(select(Person.query_pw_generation, Person.query_pw_initial, Person.query_pw_hash)
                              .where(Person.id == person_id)).first()
        if row is None:
            return None
        return row.query_pw_generation or 0, query_password_is_initial(row)

    return app.db.run(work, readonly=True)


def end_portal_sessions(op: Op, person_id: int, keep: str | None = None) -> int:
    """A query password changed or reset signs its person out of the portal everywhere (but `keep`, the
    session that changed it), in the same transaction: whoever signed in with the old password (the
    reason for a reset at a window) is out at once, and the next sign-in is forced to change an initial
    one. A cardholder's API token is stateless (api.sessions): the same change counts the person's
    `query_pw_generation` up (`_new_generation`), and a token issued under an earlier one is refused."""
    return end_web_sessions(op, WebSession.kind == "cardholder", WebSession.person_id == person_id, keep=keep)


def end_web_sessions(op: Op, *whose: Any, keep: str | None = None) -> int:
    """End the open web sessions `whose` conditions select (a cardholder's portal sessions, a staff member's
    console sessions), but `keep` (the one that asked: websession.session_key), in the operation's
    transaction; how many ended."""
    stmt = update(WebSession).where(*whose, WebSession.ended_at.is_(None))
    if keep is not None:
        stmt = stmt.where(WebSession.digest != keep)
    ended: int = cast("CursorResult[Any]", op.session.execute(stmt.values(ended_at=op.now))).rowcount
    return ended


@query("query_password.status", roles={Role.CARDHOLDER}, scope=Scope.OWN)
def query_password_status(op: Op) -> dict[str, Any]:
    """The signed-in cardholder's own query password in words the portal needs: still initial, and whether
    12333 can take it (a password with letters cannot be typed on a phone keypad)."""
    assert op.actor.person_id is not None  # a cardholder actor always carries its person id
    person = lookup.person_by_id(op.session, op.actor.person_id, op.actor)
    return {"initial": bool(person.query_pw_initial), "phone_usable": phone_usable(op, person)}


def cardholder_actor(person_id: int, name: str, channel: Channel, place: str = "") -> Actor:
    return Actor(kind="cardholder", id=str(person_id), role=Role.CARDHOLDER, name=name, channel=channel,
                 person_id=person_id, place=place)
