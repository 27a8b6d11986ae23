"""Who may do what, through which channel, on what, and with which guarantees: declared once per
operation, enforced here for every channel.

Each operation declares (`@operation(...)`/`@query(...)` in services.operation) a `Declaration`:
- `roles`: which actor kinds may call it;
- `scope`: on what: `Scope.OWN` (the card, account or person acted on must be the caller's: a
  cardholder's own, a bank's own customers for its staff and terminals), `Scope.CENTER` (a clerk's own
  center's work), `Scope.CITY` (no one object: lists, administration, batch jobs), `Scope.STAFF` (a staff
  account: a supervisor's own center's clerks or own bank's tellers, anyone for the operator, never oneself);
- `keyed`: a change a retried request must not apply twice: callers over a network (API, terminals)
  must send an Idempotency-Key or are refused before anything runs;
- `secrets`: the arguments that are secrets (PINs, passwords): never in an audit record or a log;
- `terminals`: which kinds of terminal may call it, when terminals may (cash at an ATM, payments at a
  POS, settlements at hospitals and pharmacies);
- `batched`: it may be committed together with other requests by the group-commit writer
  (services.batching): the same checks, answers, audit and idempotency records, one fsync per batch;
  `alone` with it: a bulk operation the writer runs in a transaction of its own, between two batches.

The channel an actor comes through is fixed by its entry point (the terminal API's paths are the
terminal channel, the rest of /api/v1 the API channel, each console its own), and `AUDIENCE` says who
may act through each channel: a terminal's token on a staff route is refused whatever the operation
allows, and a teller's token on a terminal route too.

`admit` is the one check before an operation runs (`admit_channel`: the channel's audience, then the
operation's roles, the terminal's kind and the key); the `require_*` helpers check scope once the object
is known (services.lookup calls them for every card, account and person it finds for an actor), and
`scope_guard` makes an operation that declared a scope and never checked it fail closed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum

from ..core.errors import About, SscardError
from ..core.roles import BANK_STAFF, CENTER_STAFF, Actor, Channel, Role


class Scope(StrEnum):
    OWN = "own"  # the card/account/person acted on: own card (cardholder), own bank's customer (bank side)
    CENTER = "center"  # a service center's own work (queues, batches, visits, reports)
    CITY = "city"  # no single object (administration, lists, sweeps, logins)
    STAFF = "staff"  # a staff account (services.staff: disable, reset, unlock): one in the actor's reach (require_staff_reach)


@dataclass(frozen=True)
class Declaration:
    name: str
    roles: frozenset[Role]
    scope: Scope
    keyed: bool
    secrets: frozenset[str]
    terminals: frozenset[str] | None = None  # None: any kind (when the roles admit terminals at all)
    batched: bool = False  # may be group-committed with other requests (services.batching)
    alone: bool = False  # batched, but the writer runs it in a transaction of its own (a bulk sweep)
    read: bool = False  # a `@query` (services.operation.query): a read, not an operation
    ends_session: bool = False  # its success ends the caller's own credential (services.operation.operation)


DECLARATIONS: dict[str, Declaration] = {}
SECRET_NAMES: set[str] = set()  # every argument any operation declared secret (the log filter masks them)

ALL_STAFF = CENTER_STAFF | BANK_STAFF | {Role.OPERATOR}

# Kinds of terminal (services.staff.TERMINAL_KINDS), grouped as operations name them.
ATM = frozenset({"atm"})
POS = frozenset({"pos"})
KIOSK = frozenset({"kiosk"})
MEDICAL = frozenset({"hospital", "pharmacy"})
BALANCE = ATM | POS | KIOSK  # a balance inquiry with the PIN: not at a hospital's counter
SS_VERIFY = KIOSK | MEDICAL  # the social security password opens the kiosk and medical settlement

AUDIENCE: dict[Channel, frozenset[Role]] = {
    Channel.TERMINAL: frozenset({Role.TERMINAL}),
    Channel.API: ALL_STAFF | {Role.CARDHOLDER, Role.SYSTEM},
    Channel.WINDOW: CENTER_STAFF | {Role.OPERATOR, Role.SYSTEM},
    Channel.BANK_OUTLET: BANK_STAFF | {Role.SYSTEM},
    Channel.PORTAL: frozenset({Role.CARDHOLDER, Role.SYSTEM}),
    Channel.HOTLINE_12333: frozenset({Role.CARDHOLDER, Role.SYSTEM}),
    Channel.HOTLINE_BANK: frozenset({Role.CARDHOLDER, Role.SYSTEM}),
    Channel.CLI: frozenset({Role.OPERATOR, Role.SYSTEM}),
    Channel.SYSTEM: frozenset({Role.SYSTEM}),
}
"""Who may act through each channel. Staff act at their consoles or with their API tokens, terminals
only on the terminal API, cardholders on the portal, the hotlines and their API tokens. SYSTEM is a
channel's own gateway (the portal's or a console's login door, a hotline's menu): no token or session
ever carries it."""

KEYED_CHANNELS = frozenset({Channel.API, Channel.TERMINAL})
"""Channels whose clients retry over a network: a keyed operation called through them needs a key.
The web consoles and the portal put a one-time key in every form they serve; hotline menus run on the
server; the CLI and system jobs run once."""


def register(decl: Declaration) -> None:
    known = DECLARATIONS.get(decl.name)
    if known is not None and known != decl:
        raise ValueError(f"operation {decl.name!r} declared twice differently")
    DECLARATIONS[decl.name] = decl
    SECRET_NAMES.update(decl.secrets)


def declaration(operation: str) -> Declaration:
    decl = DECLARATIONS.get(operation)
    if decl is None:
        raise KeyError(f"operation {operation!r} has no declaration")
    return decl


def in_audience(actor: Actor) -> bool:
    """Is this actor of the audience of the channel it came through (AUDIENCE)?"""
    return actor.role in AUDIENCE.get(actor.channel, ())


def admit_channel(actor: Actor) -> None:
    """The one channel rule: a credential issued for one channel (a terminal's token, a staff or cardholder
    API token) presented on another channel's route is `forbidden`, whatever the operation's roles allow.
    The channel is the route's (each entry point sets it: deps.actor_of by the path), never the token's;
    every operation and read checks it here before anything runs (`authorize`), so every route of every
    channel does, the lane's included."""
    if not in_audience(actor):
        raise SscardError("forbidden")


def allowed(actor: Actor | None, operation: str) -> bool:
    """May this actor, through its channel, call this operation at all (scope comes later)."""
    if actor is None:
        return False
    return actor.role in declaration(operation).roles and in_audience(actor)


# What a cardholder identified with the initial query password may do, on every channel (RULES §4, §5;
# `Actor.must_change_password`): change it (and read whether it is initial), report the card lost and hear
# its state (`portal.own_card`: which of my cards a loss is for); nothing else, above all not lift a loss.
# The initial one is the last six characters of the card number printed on the card (or of the SS number),
# known to whoever finds it: a finder may stop the card but not undo the owner's loss nor change anything
# (12333 let them cancel it: docs/RULES.md, gap 16). The portal sends such a session to the change and opens
# only the pages made of these (`web.portal.PAGES`); 12333 tells the caller what it needs.
BEFORE_FIRST_CHANGE = frozenset({"query_password.change", "query_password.status", "ss_loss.report_temporary",
                                 "card.status", "person.cards", "hotline.my_cards", "portal.own_card",
                                 "staff.change_password"})
# (`staff.change_password`: a staff member whose password was reset to a one-time password, which the resetter has
# seen, signs in to the change page only, by the same rule: services.websession.resolve sets must_change_password
# from the account, the consoles send such a session to the change page: web.security.StaffConsole.desk_of)


# What a bank hotline caller identified by personal data (citizen ID + the mobile number on record, no secret
# of the account's: `Actor.personal_data_only`) may do: report the oral loss and hear the state, and what
# checks the PIN itself (the balance, the PIN change); not lift a loss, which a finder who knows the owner's
# number could otherwise do by phone (session 26, the bank line's twin of gap 16).
WITH_PERSONAL_DATA = frozenset({"bank_loss.report_oral", "hotline.my_cards", "card.status", "person.cards",
                                "bank.balance", "hotline.bank_pin_verify", "hotline.check_new_pin",
                                "hotline.bank_pin_change"})


def allowed_before_first_change(actor: Actor, operation: str) -> bool:
    """Whether this actor may run this operation as far as how it was identified goes: the initial query
    password (BEFORE_FIRST_CHANGE), personal data on the bank line (WITH_PERSONAL_DATA). The frame's rule
    below, asked ahead by a channel that wants to say so before the caller confirms anything."""
    if actor.must_change_password and operation not in BEFORE_FIRST_CHANGE:
        return False
    return not actor.personal_data_only or operation in WITH_PERSONAL_DATA


def authorize(actor: Actor | None, operation: str) -> None:
    if actor is None or actor.ended:  # an ended credential gets nothing (but its replay: operation.call)
        raise SscardError("unauthenticated")
    admit_channel(actor)
    if actor.role not in declaration(operation).roles:
        raise SscardError("forbidden")
    if not allowed_before_first_change(actor, operation):
        raise SscardError("password_change_required" if actor.must_change_password else "pin_identification_required")


def admit(actor: Actor | None, operation: str, idempotency_key: str | None) -> Declaration:
    """Everything decided before an operation runs: who, through which channel, and the key."""
    authorize(actor, operation)
    assert actor is not None  # authorize() refused a missing actor
    decl = DECLARATIONS[operation]
    if actor.role is Role.TERMINAL and decl.terminals is not None and actor.terminal_kind not in decl.terminals:
        raise SscardError("wrong_terminal_kind")
    if decl.keyed and not idempotency_key and actor.channel in KEYED_CHANNELS and actor.role is not Role.SYSTEM:
        # (SYSTEM is the server's own gateway, which no token carries: it does not retry over a network)
        raise SscardError("idempotency_key_required")
    return decl


# ---------------------------------------------------------------- scope

_checked: ContextVar[set[Scope] | None] = ContextVar("sscard_scope_checked", default=None)


def _mark(kind: Scope) -> None:
    seen = _checked.get()
    if seen is not None:
        seen.add(kind)


def checked(scope: Scope) -> None:
    """Say that the caller has just checked this scope itself, in a way the helpers below do not cover
    (a terminal's own holds: the ledger refuses a hold whose merchant is another terminal)."""
    _mark(scope)


def is_bank_side(actor: Actor) -> bool:
    """Bank staff and the bank's terminals (ATM, POS) see only their own bank's customers."""
    return actor.role in BANK_STAFF or (actor.role is Role.TERMINAL and actor.bank_id is not None)


def scoped(actor: Actor, scope: Scope) -> bool:
    """Does this actor's access to an operation of this scope depend on the object?"""
    if scope is Scope.OWN:
        return actor.role is Role.CARDHOLDER or is_bank_side(actor)
    if scope is Scope.CENTER:
        return actor.role in CENTER_STAFF
    if scope is Scope.STAFF:
        return actor.role is not Role.OPERATOR and actor.role is not Role.SYSTEM
    return False


@contextmanager
def scope_guard(decl: Declaration, actor: Actor) -> Iterator[None]:
    """Around an operation's body: when the actor is limited by the declared scope, the body must
    have checked it (through services.lookup or a require_* helper) before it answers. An operation
    that forgot fails closed (an internal error) instead of answering with another person's data."""
    token = _checked.set(set())
    try:
        yield
        if scoped(actor, decl.scope) and decl.scope not in (_checked.get() or ()):
            raise RuntimeError(f"operation {decl.name} declared scope {decl.scope} and never checked it")
    finally:
        _checked.reset(token)


def require_bank(actor: Actor, bank_id: int, *, about: About) -> None:
    """Bank staff and bank terminals handle only cards of their own bank. `about`: the card or account and
    whose it is, named by the refused attempt's audit record (`SscardError.about`), so the object's bank
    sees the attempt beside the person and the auditors: every caller says, so none can forget."""
    if is_bank_side(actor) and actor.bank_id != bank_id:
        raise _about(SscardError("wrong_bank"), about)
    _mark(Scope.OWN)


def refuse_bank_side(actor: Actor, *, about: About) -> None:
    """`wrong_bank` to the bank side, whatever its bank, for an object of no bank (`about`, named by the
    refused attempt's record): a card number no card has (lookup.refuse_unknown_card). Nobody else is
    refused here."""
    if is_bank_side(actor):
        raise _about(SscardError("wrong_bank"), about)


def require_center(actor: Actor, center_id: int | None, *, about: About | None) -> None:
    """A clerk works on their own center's queue (a supervisor too); anyone else is not limited here.
    `about`: the card, case, receipt or batch and whose it is, as for `require_bank` (None: the actor's own
    center, which cannot be refused)."""
    if actor.role in CENTER_STAFF and center_id is not None and actor.center_id != center_id:
        raise _about(SscardError("wrong_center"), about)
    _mark(Scope.CENTER)


def require_staff_reach(actor: Actor, *, user_id: int, role: str, center_id: int | None, bank_id: int | None,
                        about: About) -> None:
    """Whose staff account an actor may run (disable, enable, reset the password, lift a lock: services.staff):
    the operator anyone's; a center supervisor their own center's clerks (`wrong_center` for another center's);
    a bank supervisor their own bank's tellers (`wrong_bank` for another bank's); nobody their own account
    (`staff_self`: a supervisor who could reset their own password or lift their own lock would escape the
    lock's and the reset's witnesses), nor a peer supervisor, an operator or the other side's staff
    (`forbidden`). `about`: the account, named by the refused attempt's record."""
    if actor.kind == "staff" and actor.id == str(user_id):
        raise _about(SscardError("staff_self"), about)
    if actor.role is not Role.OPERATOR:
        if actor.role not in _SUPERVISES:
            raise _about(SscardError("forbidden"), about)
        side, member, elsewhere = _SUPERVISES[actor.role]
        if role not in {str(r) for r in side}:
            raise _about(SscardError("forbidden"), about)
        if _place(actor, center_id, bank_id) != _place(actor, actor.center_id, actor.bank_id):
            raise _about(SscardError(elsewhere), about)
        if role != member:
            raise _about(SscardError("forbidden"), about)
    _mark(Scope.STAFF)


# a supervisor -> their side's roles, the one role whose accounts they run, the refusal for another place's
_SUPERVISES: dict[Role, tuple[frozenset[Role], Role, str]] = {
    Role.CENTER_SUPERVISOR: (frozenset(CENTER_STAFF), Role.CLERK, "wrong_center"),
    Role.BANK_SUPERVISOR: (frozenset(BANK_STAFF), Role.TELLER, "wrong_bank"),
}


def _place(supervisor: Actor, center_id: int | None, bank_id: int | None) -> int | None:
    """Where a supervisor's reach ends: their center (a center supervisor's) or their bank (a bank's)."""
    return center_id if supervisor.role is Role.CENTER_SUPERVISOR else bank_id


def staff_in_reach(actor: Actor, *, role: str, center_id: int | None, bank_id: int | None) -> bool:
    """Whether a staff list shows this account to this actor (require_staff_reach's rule, without oneself)."""
    if actor.role is Role.OPERATOR:
        return True
    if actor.role not in _SUPERVISES:
        return False
    return role == _SUPERVISES[actor.role][1] and \
        _place(actor, center_id, bank_id) == _place(actor, actor.center_id, actor.bank_id)


def checked_staff_list() -> None:
    """A staff list filtered by `staff_in_reach` (services.staff.list_staff) has checked its scope."""
    _mark(Scope.STAFF)


def _about(refusal: SscardError, about: About | None) -> SscardError:
    refusal.about = about
    return refusal


REACHED = "sscard.reached"
"""The key, in an operation's ORM session's `info`, of its Op.reached: the lookups of a card or an account
by its number (services.lookup) name what they found there, so a refusal after names it in its record
whatever the service, with no call to remember (session 22's auditor: refusals of a password change on a
lost card, of an agent's reset and of a formal loss by the wrong agent named no card and no person)."""


def require_self(actor: Actor, person_id: int) -> None:
    """A cardholder acts only on their own cards: another person's id answers as if it did not exist,
    with the code an id of nobody gets (`person_not_found`: session 22's probe told the two apart)."""
    if actor.role is Role.CARDHOLDER and actor.person_id != person_id:
        raise SscardError("person_not_found")
    if actor.role is Role.CARDHOLDER or not is_bank_side(actor):
        _mark(Scope.OWN)


def require_own(actor: Actor, about: About, *, bank_id: int, missing: str) -> None:
    """A card or account in scope (`about`: "card" or "bank_account", its number, and its holder): a
    cardholder's own (another person's answers `missing`, as if it did not exist), or one of the bank side's
    own bank (`wrong_bank`, recorded naming `about`)."""
    assert about.person_id is not None  # a card or an account always has its holder
    try:
        require_self(actor, about.person_id)
    except SscardError:
        raise SscardError(missing) from None
    require_bank(actor, bank_id, about=about)


def require_bank_customer(actor: Actor, bank_ids: set[int], *, about: About | None = None) -> None:
    """A person in scope for the bank side: holds a card of the actor's bank. Others' customers
    answer as if they did not exist (a bank has no business knowing who banks elsewhere). `about`: the
    refused attempt's record names it (`SscardError.about`), where the same refusal answers a person of
    nobody too, so that recording it does not tell the two apart."""
    if is_bank_side(actor) and actor.bank_id not in bank_ids:
        raise _about(SscardError("person_not_found"), about)
    _mark(Scope.OWN)


def require_own_line(actor: Actor, own_line: str | None, line: str) -> None:
    """A hotline's agent queue is its line's work: 12333 the service centers' staff (any center: the city's
    one line), a bank's line that bank's staff (`own_line`: the actor's line, services.hotline). Another
    line's request answers `not_found`, as if it did not exist (a bank has no business knowing who called
    another bank). Staff of no line (an operator) are not limited here."""
    if actor.role in CENTER_STAFF | BANK_STAFF and own_line != line:
        raise SscardError("not_found", what=("转人工请求", "agent request"))
    _mark(Scope.OWN)
