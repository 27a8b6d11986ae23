"""Staff users, API tokens for staff clients and terminals, and turning credentials into an Actor."""

from __future__ import annotations

import secrets as pysecrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypedDict, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from ..core.errors import SscardError
from ..core.passwords import Lockout, verify_with_lockout
from ..core.roles import BANK_STAFF, CENTER_STAFF, Actor, Channel, Role
from ..models.foundation import ApiToken, Bank, Outlet, ServiceCenter, StaffUser, Terminal
from . import lookup
from .access import Scope
from .operation import Op, operation

if TYPE_CHECKING:
    from .app import App

STAFF_ROLES = {Role.CLERK, Role.CENTER_SUPERVISOR, Role.TELLER, Role.BANK_SUPERVISOR, Role.OPERATOR}
TERMINAL_KINDS = {"atm", "pos", "hospital", "pharmacy", "kiosk"}


@operation("staff.add_user", roles={Role.OPERATOR}, scope=Scope.CITY, secrets=('password',))
def add_user(op: Op, username: str, password: str, role: str, display_name: str = "",
             center_code: str | None = None, outlet_code: str | None = None) -> dict[str, Any]:
    """Center staff belong to a center; bank staff to an outlet (and so to its bank)."""
    role_ = Role(role) if role in {r.value for r in STAFF_ROLES} else None
    if role_ is None or not (1 <= len(username) <= 32) or len(display_name) > 32:  # the columns' sizes
        raise SscardError("invalid_request")
    if len(password) < 8:
        raise SscardError("weak_password", reason=("员工密码至少8位", "staff passwords have at least 8 characters"))
    if op.session.scalar(select(StaffUser.id).where(StaffUser.username == username)):
        raise SscardError("already_exists", what=("用户名", "Username"))
    user = StaffUser(username=username, display_name=display_name or username, role=role_,
                     password_hash=op.secrets.hash_password(password), created_at=op.now)
    if role_ in CENTER_STAFF:
        if not center_code:
            raise SscardError("invalid_request")
        user.center_id = lookup.center_by_code(op.session, center_code).id
    if role_ in BANK_STAFF:
        if not outlet_code:
            raise SscardError("invalid_request")
        outlet = lookup.outlet_by_code(op.session, outlet_code)
        user.outlet_id, user.bank_id = outlet.id, outlet.bank_id
    op.session.add(user)
    op.session.flush()
    op.audit("staff_user", user.username, after=str(role_))
    return {"id": user.id, "username": user.username, "role": role_}


@operation("staff.issue_token", roles={Role.OPERATOR}, scope=Scope.CITY)
def issue_token(op: Op, username: str | None = None, terminal_code: str | None = None, label: str = "",
                rotate: bool = False) -> dict[str, Any]:
    """A new bearer token, shown once; only its keyed digest is kept. `rotate`: every other token of the same
    user or terminal is revoked in the same transaction (a token never expires: without it, a leaked or
    replaced token stayed good for ever, as no command revoked one; session 25's probe). A server that has
    looked a revoked token up keeps its answer for policy api.token_cache_seconds."""
    if bool(username) == bool(terminal_code):  # both: the user's token was issued, recorded as the terminal's too
        raise SscardError("token_owner")  # (session 26: an operator who typed both got a clerk's token for a kiosk)
    token = pysecrets.token_urlsafe(32)
    row = ApiToken(digest=op.secrets.token_digest(token), label=label, created_at=op.now)
    if username:
        user = op.session.scalar(select(StaffUser).where(StaffUser.username == username))
        if user is None:
            raise SscardError("not_found", what=("用户", "user"))
        row.staff_user_id = user.id
    elif terminal_code:
        terminal = op.session.scalar(select(Terminal).where(Terminal.code == terminal_code))
        if terminal is None:
            raise SscardError("not_found", what=("终端", "terminal"))
        row.terminal_id = terminal.id
    revoked = 0
    if rotate:
        owner = (ApiToken.staff_user_id == row.staff_user_id if row.staff_user_id is not None
                 else ApiToken.terminal_id == row.terminal_id)
        revoked = cast("CursorResult[Any]", op.session.execute(
            update(ApiToken).where(owner, ApiToken.revoked.is_(False)).values(revoked=True))).rowcount
    op.session.add(row)
    op.session.flush()
    op.audit("api_token", row.id, after="issued", for_user=username, for_terminal=terminal_code)
    if rotate:
        op.note(revoked_others=revoked)
    return {"token": token, "id": row.id, "revoked": revoked}


ISO_TERMINAL_ID_LENGTH = 8  # ISO 8583 field 41, the card acceptor terminal id: 8 characters
ISO_TERMINAL_KINDS = frozenset({"atm", "pos"})  # the terminals that speak ISO 8583 (the others: the REST API)


@operation("staff.issue_terminal_keys", roles={Role.OPERATOR}, scope=Scope.CITY)
def issue_terminal_keys(op: Op, terminal_code: str) -> dict[str, Any]:
    """The key ceremony of an ISO 8583 terminal: its PIN key and MAC key as two components each, shown
    once to the operator to load into the terminal (core.terminal_keys: derived, never stored). The record
    keeps who printed them and their check values, never a component."""
    terminal = op.session.scalar(select(Terminal).where(Terminal.code == terminal_code))
    if terminal is None:
        raise SscardError("not_found", what=("终端", "terminal"))
    if terminal.kind not in ISO_TERMINAL_KINDS or len(terminal_code) > ISO_TERMINAL_ID_LENGTH:
        raise SscardError("invalid_request")  # ISO 8583 is the ATMs' and POS terminals', with 8-character ids
    from ..core import terminal_keys

    keys = {purpose: op.secrets.terminal_key(terminal_code, purpose) for purpose in terminal_keys.KEY_PURPOSES}
    checks = {purpose: terminal_keys.check_value(key) for purpose, key in keys.items()}
    op.audit("terminal", terminal_code, after="keys_issued", tpk_kcv=checks["tpk"], tak_kcv=checks["tak"])
    return {"terminal": terminal_code, "kind": terminal.kind,
            "keys": {purpose: {"components": list(terminal_keys.components(key)), "kcv": checks[purpose]}
                     for purpose, key in keys.items()}}


def actor_for_terminal(app: App, terminal_code: str) -> Actor | None:
    """The Actor of an active ATM or POS terminal by its code (the ISO 8583 channel, whose messages are
    authenticated by the terminal's MAC key, not by a token), or None. Kept as token lookups are."""
    digest = "terminal\x00" + terminal_code
    actor = _cached(app, digest)
    if actor is not None:
        return actor

    def work(session: Session) -> Actor | None:
        terminal = session.scalar(select(Terminal).where(Terminal.code == terminal_code))
        if terminal is None or not terminal.active or terminal.kind not in ISO_TERMINAL_KINDS:
            return None
        return terminal_actor(session, terminal)

    return _remember(app, digest, app.db.run(work, readonly=True))


def staff_actor(session: Session, user: StaffUser, channel: Channel) -> Actor:
    place = ""
    if user.center_id:
        center = session.get(ServiceCenter, user.center_id)
        assert center is not None  # staff_users.center_id is a foreign key
        place = center.code
    elif user.outlet_id:
        outlet = session.get(Outlet, user.outlet_id)
        assert outlet is not None  # staff_users.outlet_id is a foreign key
        place = outlet.code
    return Actor(kind="staff", id=str(user.id), role=Role(user.role), name=user.display_name, channel=channel,
                 center_id=user.center_id, bank_id=user.bank_id, outlet_id=user.outlet_id, place=place)


def terminal_actor(session: Session, terminal: Terminal) -> Actor:
    return Actor(kind="terminal", id=terminal.code, role=Role.TERMINAL, name=terminal.name, channel=Channel.TERMINAL,
                 bank_id=terminal.bank_id, outlet_id=terminal.outlet_id, center_id=terminal.center_id,
                 terminal_kind=terminal.kind, place=terminal.code)


def actor_for_token(app: App, token: str) -> Actor | None:
    """The Actor behind a bearer token, or None (unknown, revoked or inactive).

    A found token's Actor is kept for policy api.token_cache_seconds (by the injected clock), so a
    terminal's stream of payments costs one lookup every few seconds instead of one per request; a
    revoked token stops working within that time."""
    digest = app.secrets.token_digest(token)
    actor = _cached(app, digest)
    if actor is not None:
        return actor

    def work(session: Session) -> Actor | None:
        row = session.scalar(select(ApiToken).where(ApiToken.digest == digest))
        if row is None or row.revoked:
            return None
        if row.staff_user_id:
            user = session.get(StaffUser, row.staff_user_id)
            return staff_actor(session, user, Channel.API) if user and user.active else None
        terminal = session.get(Terminal, row.terminal_id)
        return terminal_actor(session, terminal) if terminal and terminal.active else None

    return _remember(app, digest, app.db.run(work, readonly=True))


def cached_actor(app: App, token: str) -> Actor | None:
    """The token's Actor when its lookup is cached and fresh (only found tokens are cached), else None.
    No I/O: an async route may call it on the event loop and go to a thread only on a miss."""
    return _cached(app, app.secrets.token_digest(token))


def _remember(app: App, digest: str, actor: Actor | None) -> Actor | None:
    """Keep a found Actor for policy api.token_cache_seconds (only found ones: a miss is asked again)."""
    ttl = app.policy.api.token_cache_seconds
    if actor is not None and ttl:
        cache = app.extras.setdefault(_TOKEN_CACHE, {})
        if len(cache) >= _TOKEN_CACHE_MAX:
            cache.clear()
        cache[digest] = (actor, app.clock.now() + timedelta(seconds=ttl))
    return actor


def _cached(app: App, digest: str) -> Actor | None:
    found = app.extras.get(_TOKEN_CACHE, {}).get(digest)
    return found[0] if found is not None and found[1] > app.clock.now() else None


_TOKEN_CACHE = "api_token_cache"
_TOKEN_CACHE_MAX = 10_000


def authenticate_staff(app: App, username: str, password: str, channel: Channel) -> Actor | None:
    """Console login: the Actor, or None for any wrong user/password (never saying which); a locked account
    raises `password_locked` (the lock's end in its message). Through `staff.login`, the console's door as
    itself (a SYSTEM actor on the console's channel): every wrong password counted and recorded."""
    door = Actor(kind="channel", id=str(channel), role=Role.SYSTEM, name=f"{channel} login", channel=channel)
    try:
        found = login(app, door, username, password)
    except SscardError as err:
        if err.code == "wrong_password":
            return None
        raise

    def work(session: Session) -> Actor | None:
        user = session.get(StaffUser, found["user_id"])
        return staff_actor(session, user, channel) if user is not None and user.active else None

    return app.db.run(work, readonly=True)


@operation("staff.login", roles={Role.SYSTEM}, scope=Scope.CITY, keyed=False, secrets=("password",))
def login(op: Op, username: str, password: str) -> dict[str, Any]:
    """A staff member's password checked, with the account's own lock (policy `login.staff_max_failures`
    wrong in a row lock it for `login.staff_lock_minutes`; a success clears the count). Before session 27 a
    staff password had no lock and a wrong one left no record: only the per-address throttle
    (services.throttle) slowed a guesser, which many addresses get round, and nobody saw the attempts.
    Every wrong password and every refusal while locked is recorded on the account (its bank's, for bank
    staff), committed with the count; while locked the password is not checked at all, so the lock's
    answer says nothing about it. An unknown or inactive user answers `wrong_password`, unrecorded, after
    the same hash's time."""
    user = op.session.scalar(select(StaffUser).where(StaffUser.username == username)) if username else None
    if user is None or not user.active:
        op.secrets.no_password_matches(password)  # same time either way
        raise SscardError("wrong_password")
    current = Lockout(user.pw_failures or 0, user.pw_locked_until, False)
    matches = not current.is_locked(op.now) and op.secrets.password_matches(user.password_hash, password)
    lock, error = verify_with_lockout(current, "staff_password", op.policy, op.now, matches,
                                      locked_code="password_locked", wrong_code="wrong_password")
    if ((user.pw_failures or 0), user.pw_locked_until) != (lock.failures, lock.locked_until):
        user.pw_failures, user.pw_locked_until = lock.failures, lock.locked_until
    op.audit("staff_user", user.username, after="logged_in" if error is None else "", failures=lock.failures,
             object_bank_id=user.bank_id)
    if error is not None:
        raise error.without_count()
    return {"user_id": user.id}


class BankEntry(TypedDict):
    code: str
    name: str
    name_en: str
    bin: str
    hotline: str


class CenterEntry(TypedDict):
    code: str
    name: str
    name_en: str


class BanksAndPlaces(TypedDict):
    """The city's banks and service centers, named in both languages (forms, statements, slips)."""

    banks: list[BankEntry]
    centers: list[CenterEntry]


def banks_and_places(app: App) -> BanksAndPlaces:
    def work(session: Session) -> BanksAndPlaces:
        return {
            "banks": [{"code": b.code, "name": b.name, "name_en": b.name_en, "bin": b.bin, "hotline": b.hotline}
                      for b in session.scalars(select(Bank)).all()],
            "centers": [{"code": c.code, "name": c.name, "name_en": c.name_en}
                        for c in session.scalars(select(ServiceCenter)).all()],
        }

    return app.db.run(work)
