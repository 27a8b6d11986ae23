"""Staff users, API tokens for staff clients and terminals, and turning credentials into an Actor."""

from __future__ import annotations

import secrets as pysecrets
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypedDict, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from ..core.clock import as_utc
from ..core.errors import About, SscardError
from ..core.passwords import (
    Lockout,
    check_new_staff_password,
    check_repeat,
    constant_time_equal,
    verify_with_lockout,
)
from ..core.roles import BANK_STAFF, CENTER_STAFF, Actor, Channel, Role
from ..models.foundation import ApiToken, Bank, Outlet, ServiceCenter, StaffUser, Terminal, WebSession
from . import access, lookup
from .access import Scope
from .operation import Op, operation, query
from .passwords import end_web_sessions

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
    check_new_staff_password(password, username)
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
        revoked = _revoke_tokens(op, owner)
    op.session.add(row)
    op.session.flush()
    op.audit("api_token", row.id, after="issued", for_user=username, for_terminal=terminal_code)
    if rotate:
        op.note(revoked_others=revoked)
    return {"token": token, "id": row.id, "revoked": revoked}


ISO_TERMINAL_ID_LENGTH = 8  # ISO 8583 field 41, the card acceptor terminal id: 8 characters
ISO_TERMINAL_KINDS = frozenset({"atm", "pos"})  # the terminals that speak ISO 8583 (the others: the REST API)


def _revoke_tokens(op: Op, owner: Any) -> int:
    """Revoke every live API token `owner` selects (a staff member's, a terminal's), in the operation's
    transaction; how many (a rotation's others, a disabled account's all)."""
    revoked: int = cast("CursorResult[Any]", op.session.execute(
        update(ApiToken).where(owner, ApiToken.revoked.is_(False)).values(revoked=True))).rowcount
    return revoked


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
    if found is None or found[1] <= app.clock.now():
        return None
    actor: Actor = found[0]
    if actor.kind == "staff" and actor.id in app.extras.get(_DISABLED_STAFF, ()):
        return None  # disabled in this process (staff.disable): asked of the database again, which says so
    return actor


_TOKEN_CACHE = "api_token_cache"
_DISABLED_STAFF = "staff_disabled_here"
_TOKEN_CACHE_MAX = 10_000


def _forget_cached_tokens(app: App, user_id: int) -> None:
    """Drop this process's cached lookups of a staff member's tokens (their tokens were just revoked: the
    next request asks the database, which says so). Another server process keeps its copy at most
    api.token_cache_seconds."""
    cache = app.extras.get(_TOKEN_CACHE)
    if not cache:
        return
    for digest, (actor, _until) in list(cache.items()):
        if actor.kind == "staff" and actor.id == str(user_id):
            cache.pop(digest, None)


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
        if user is None or not user.active:
            return None
        return replace(staff_actor(session, user, channel), must_change_password=bool(user.must_change_password))

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
    lock, error = _password_checked(op, user, password)
    op.audit("staff_user", user.username, after="logged_in" if error is None else "", failures=lock.failures,
             object_bank_id=user.bank_id)
    if error is not None:
        raise error.without_count()
    return {"user_id": user.id}


def _password_checked(op: Op, user: StaffUser, password: str) -> tuple[Lockout, SscardError | None]:
    """A staff password checked under the account's lock (`login` and `change_password` alike): not checked
    at all while locked, a wrong one counted, a right one clearing the count; the count saved on the account.
    The error, if any, is the caller's to record and raise."""
    current = Lockout(user.pw_failures or 0, user.pw_locked_until, False)
    matches = not current.is_locked(op.now) and op.secrets.password_matches(user.password_hash, password)
    lock, error = verify_with_lockout(current, "staff_password", op.policy, op.now, matches,
                                      locked_code="password_locked", wrong_code="wrong_password")
    if ((user.pw_failures or 0), user.pw_locked_until) != (lock.failures, lock.locked_until):
        user.pw_failures, user.pw_locked_until = lock.failures, lock.locked_until
    return lock, error


# ---------------------------------------------------------------- staff accounts: disable, reset, unlock, change


def _account(op: Op, username: str) -> StaffUser:
    """The staff account `username` acted on, within the actor's reach (access.require_staff_reach: the
    operator anyone's, a supervisor their own center's clerks or own bank's tellers, nobody their own)."""
    user = op.session.scalar(select(StaffUser).where(StaffUser.username == username)) if username else None
    if user is None:
        raise SscardError("not_found", what=("用户", "user"))
    access.require_staff_reach(op.actor, user_id=user.id, role=user.role, center_id=user.center_id,
                               bank_id=user.bank_id, about=About("staff_user", user.username, None))
    return user


def _end_web_sessions(op: Op, user_id: int, keep: str | None = None) -> int:
    """End every console session of this staff member (but `keep`, the one that asked: its key,
    websession.session_key), in the operation's transaction."""
    return end_web_sessions(op, WebSession.kind == "staff", WebSession.staff_user_id == user_id, keep=keep)


def _locked_until(op: Op, user: StaffUser) -> str | None:
    until = user.pw_locked_until
    return as_utc(until).isoformat() if until is not None and as_utc(until) > as_utc(op.now) else None


def _revoke_staff_tokens(op: Op, user_id: int) -> int:
    """Every live API token of a staff member revoked (a disable, a password reset), and this process's
    cached lookups of them dropped; how many."""
    tokens = _revoke_tokens(op, ApiToken.staff_user_id == user_id)
    _forget_cached_tokens(op.app, user_id)
    return tokens


def _other_active_operators(op: Op, user_id: int) -> int:
    """How many enabled operator accounts there are besides `user_id`, read in the operation's transaction
    (SERIALIZABLE: two operators disabling each other at once cannot both see the other as the one left)."""
    return op.session.scalar(select(func.count()).select_from(StaffUser).where(
        StaffUser.role == Role.OPERATOR.value, StaffUser.active.is_(True), StaffUser.id != user_id)) or 0


@operation("staff.disable", roles={Role.OPERATOR, Role.CENTER_SUPERVISOR, Role.BANK_SUPERVISOR}, scope=Scope.STAFF)
def disable(op: Op, username: str) -> dict[str, Any]:
    """A staff member who left (or whose credentials are in doubt) is out at once: the account inactive
    (no sign-in: `staff.login` answers an inactive user as a wrong password), every open console session
    ended, every API token revoked, in this transaction. A token's cached lookup (api.token_cache_seconds)
    is dropped in this process at once; another server process keeps it at most that long. The last enabled
    operator account is not disabled (`last_operator`, docs/RULES.md R1.10): the city would have nobody to
    run its staff accounts on the web (session 29: `sscard user disable` did it)."""
    user = _account(op, username)
    before = "active" if user.active else "disabled"
    if user.active and user.role == Role.OPERATOR.value and not _other_active_operators(op, user.id):
        raise SscardError("last_operator")
    user.active = False
    sessions = _end_web_sessions(op, user.id)
    tokens = _revoke_staff_tokens(op, user.id)
    op.app.extras.setdefault(_DISABLED_STAFF, set()).add(str(user.id))
    op.audit("staff_user", user.username, before=before, after="disabled", sessions_ended=sessions,
             tokens_revoked=tokens, object_bank_id=user.bank_id)
    return {"username": user.username, "active": False, "sessions_ended": sessions, "tokens_revoked": tokens}


@operation("staff.enable", roles={Role.OPERATOR, Role.CENTER_SUPERVISOR, Role.BANK_SUPERVISOR}, scope=Scope.STAFF)
def enable(op: Op, username: str) -> dict[str, Any]:
    """A disabled account may sign in again (with its password; its API tokens stay revoked: the operator
    issues new ones, `sscard user token`). The account leaves this process's disabled set (`_DISABLED_STAFF`,
    which makes its tokens skip the lookup cache): until session 29 nothing emptied it, so an enabled
    account's new tokens were looked up in the database on every request, and the set only grew. Its old
    tokens' cached lookups are dropped first (they were revoked at the disable): out of the set, a stale one
    would otherwise be served again."""
    user = _account(op, username)
    before = "active" if user.active else "disabled"
    user.active = True
    _forget_cached_tokens(op.app, user.id)
    disabled = op.app.extras.get(_DISABLED_STAFF)
    if disabled is not None:
        disabled.discard(str(user.id))
    op.audit("staff_user", user.username, before=before, after="active", object_bank_id=user.bank_id)
    return {"username": user.username, "active": True}


@operation("staff.reset_password", roles={Role.OPERATOR, Role.CENTER_SUPERVISOR, Role.BANK_SUPERVISOR},
           scope=Scope.STAFF, secrets=("password",))
def reset_password(op: Op, username: str, password: str) -> dict[str, Any]:
    """A forgotten staff password: set to `password` (a one-time password, core.passwords.one_time_staff_password,
    made by the channel and shown once to the resetter, or typed by them; the staff password rules hold), the
    account marked must-change (its next sign-in opens only the change page: access.BEFORE_FIRST_CHANGE), its
    count of wrong passwords and its lock cleared, its console sessions ended and its API tokens revoked
    (whoever signed in with the old password, or took a token while they could, is out: until session 29 the
    tokens stayed live; docs/RULES.md R1.10). The answer holds no password: the channel that made it shows it."""
    user = _account(op, username)
    check_new_staff_password(password, user.username)
    was_locked = _locked_until(op, user) is not None
    user.password_hash = op.secrets.hash_password(password)
    user.must_change_password = True
    user.pw_failures, user.pw_locked_until = 0, None
    sessions = _end_web_sessions(op, user.id)
    tokens = _revoke_staff_tokens(op, user.id)
    op.audit("staff_user", user.username, after="password_reset", was_locked=was_locked, sessions_ended=sessions,
             tokens_revoked=tokens, object_bank_id=user.bank_id)
    return {"username": user.username, "must_change_password": True, "sessions_ended": sessions,
            "tokens_revoked": tokens}


@operation("staff.unlock", roles={Role.OPERATOR, Role.CENTER_SUPERVISOR, Role.BANK_SUPERVISOR}, scope=Scope.STAFF)
def unlock(op: Op, username: str) -> dict[str, Any]:
    """Lift a login lock early (`login.staff_lock_minutes` after `login.staff_max_failures` wrong passwords):
    the owner signs in again at once, after their supervisor has seen them (docs/RULES.md R1.10: a guesser who
    types a teller's name five times locks the teller out; this is the way back). The count starts again."""
    user = _account(op, username)
    until = _locked_until(op, user)
    user.pw_failures, user.pw_locked_until = 0, None
    op.audit("staff_user", user.username, before="locked" if until else "not_locked", after="unlocked",
             locked_until=until, object_bank_id=user.bank_id)
    return {"username": user.username, "was_locked": until is not None}


@operation("staff.change_password", roles=set(access.ALL_STAFF), scope=Scope.CITY,
           secrets=("old", "new", "new_again"))
def change_password(op: Op, old: str, new: str, new_again: str, keep_session: str | None = None) -> dict[str, Any]:
    """A staff member changes their own password: the old one checked as a sign-in checks it (a wrong one
    counted toward the account's lock and recorded, `login.staff_max_failures`; refused while locked), the new
    one twice, by the staff password rules, not the old one. Clears must-change (after a reset) and ends every
    other console session of theirs (`keep_session`: the one that changed it, websession.session_key)."""
    if op.actor.kind != "staff":
        raise SscardError("forbidden")  # (the CLI's operator is no staff account)
    user = op.session.get(StaffUser, int(op.actor.id))
    if user is None or not user.active:
        raise SscardError("unauthenticated")
    check_repeat(new, new_again)
    check_new_staff_password(new, user.username)
    lock, error = _password_checked(op, user, old)
    if error is not None:
        op.audit("staff_user", user.username, failures=lock.failures, object_bank_id=user.bank_id)
        raise error  # (signed in: the tries left are theirs to know)
    if constant_time_equal(old, new):
        raise SscardError("weak_password", reason=("新密码不能与原密码相同", "it is the same as the old one"))
    user.password_hash = op.secrets.hash_password(new)
    user.must_change_password = False
    sessions = _end_web_sessions(op, user.id, keep=keep_session)
    op.audit("staff_user", user.username, after="password_changed", sessions_ended=sessions,
             object_bank_id=user.bank_id)
    return {"changed": True, "sessions_ended": sessions}


class StaffEntry(TypedDict):
    username: str
    display_name: str
    role: str
    place: str
    active: bool
    locked_until: str | None
    failures: int
    must_change_password: bool


@query("staff.list", roles={Role.OPERATOR, Role.CENTER_SUPERVISOR, Role.BANK_SUPERVISOR}, scope=Scope.STAFF)
def list_staff(op: Op) -> dict[str, list[StaffEntry]]:
    """The staff accounts this actor may run (access.staff_in_reach), with their state: active or disabled,
    locked until when, wrong passwords counted, must change. No personal data (a name and a place): not a
    read of anyone's data, so no `viewed` record."""
    places = {c.id: c.code for c in op.session.scalars(select(ServiceCenter))}
    outlets = {o.id: o.code for o in op.session.scalars(select(Outlet))}
    found: list[StaffEntry] = []
    for user in op.session.scalars(select(StaffUser).order_by(StaffUser.username)):
        if str(user.id) == op.actor.id and op.actor.kind == "staff":
            continue
        if not access.staff_in_reach(op.actor, role=user.role, center_id=user.center_id, bank_id=user.bank_id):
            continue
        found.append({"username": user.username, "display_name": user.display_name, "role": user.role,
                      "place": places.get(user.center_id or 0) or outlets.get(user.outlet_id or 0) or "",
                      "active": bool(user.active), "locked_until": _locked_until(op, user),
                      "failures": user.pw_failures or 0, "must_change_password": bool(user.must_change_password)})
    access.checked_staff_list()
    return {"staff": found}


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
