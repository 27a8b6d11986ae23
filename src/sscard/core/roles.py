"""Who acts (RULES.md §1) and through which channel."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum


class Role(StrEnum):
    CARDHOLDER = "cardholder"
    CLERK = "clerk"  # service-center clerk
    CENTER_SUPERVISOR = "center_supervisor"
    TELLER = "teller"  # bank teller
    BANK_SUPERVISOR = "bank_supervisor"
    TERMINAL = "terminal"
    OPERATOR = "operator"
    SYSTEM = "system"  # sweeps, batch jobs, the pension payer


class Channel(StrEnum):
    WINDOW = "window"
    BANK_OUTLET = "bank_outlet"
    PORTAL = "portal"
    HOTLINE_12333 = "hotline_12333"
    HOTLINE_BANK = "hotline_bank"
    TERMINAL = "terminal"
    API = "api"
    CLI = "cli"
    SYSTEM = "system"


CENTER_STAFF_ROLES = (Role.CLERK, Role.CENTER_SUPERVISOR)
"""The social security agency's own staff, in the order the audit log's SQL names them (models.foundation
AGENCY_RECORDS, which its partial index repeats word for word: the order is part of the text)."""
CENTER_STAFF = frozenset(CENTER_STAFF_ROLES)
BANK_STAFF = frozenset({Role.TELLER, Role.BANK_SUPERVISOR})


@dataclass(frozen=True)
class Actor:
    """The one doing an operation. Staff carry their center or bank/outlet; a cardholder their person id."""

    kind: str  # staff | cardholder | terminal | operator | system
    id: str
    role: Role
    name: str = ""
    channel: Channel = Channel.API
    center_id: int | None = None
    bank_id: int | None = None
    outlet_id: int | None = None
    person_id: int | None = None
    terminal_kind: str | None = None
    place: str = ""  # outlet, center or terminal code
    session: str = field(default="", compare=False, repr=False)
    """Which credential of the caller this is (a cardholder API token: its keyed digest), where the channel
    knows one: an operation that ends its caller's session (`ends_session`) keys its stored answer to it."""
    ended: bool = field(default=False, compare=False)
    """The credential was valid but has been ended (a cardholder token issued before a change of the query
    password). Such an actor is refused everything (services.access.authorize: `unauthenticated`) but the
    stored answer of the keyed call that ended this very credential (services.operation: `ends_session`)."""
    must_change_password: bool = field(default=False, compare=False)
    """A cardholder signed in with the initial information query password (RULES §4: the change is forced at
    the first login while it is initial). Such an actor is refused every operation but the change itself
    (services.access.authorize: `password_change_required`), on the portal and the API alike: the initial
    one is the last six characters of the card number printed on the card, known to whoever holds it."""
    personal_data_only: bool = field(default=False, compare=False)
    """A bank hotline caller identified by the citizen ID and the mobile number on record, no secret of the
    account's (RULES §5 accepts personal data for the oral loss): such a caller may report the loss and hear
    the state, and what checks the PIN itself, but not lift a loss (services.access.WITH_PERSONAL_DATA), as
    a 12333 caller with the initial query password may not (`must_change_password`)."""
    call: str = ""  # a hotline call's reference (its CallSid), for the call's turns (services.operation.on_call)

    def via(self, channel: Channel) -> Actor:
        return replace(self, channel=channel)


SYSTEM_ACTOR = Actor(kind="system", id="system", role=Role.SYSTEM, name="sscard", channel=Channel.SYSTEM)
CLI_OPERATOR = Actor(kind="operator", id="cli", role=Role.OPERATOR, name="operator (CLI)", channel=Channel.CLI)

ALL_ROLES_BUT_TERMINAL = frozenset(
    {Role.CARDHOLDER, Role.CLERK, Role.CENTER_SUPERVISOR, Role.TELLER, Role.BANK_SUPERVISOR, Role.OPERATOR, Role.SYSTEM}
)
