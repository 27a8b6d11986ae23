"""Who may do what: the one permission check every channel goes through.

Each operation declares its roles where it is defined (`@operation(..., roles=...)`); the table is
collected here in PERMISSIONS, and `authorize` is the only place it is read. Scope checks (own center,
own bank, own card) are the `require_*` helpers below, called by services once they know the card.
"""

from __future__ import annotations

from ..core.errors import SscardError
from ..core.roles import BANK_STAFF, CENTER_STAFF, Actor, Role

PERMISSIONS: dict[str, frozenset[Role]] = {}


def register(operation: str, roles: frozenset[Role] | set[Role]) -> None:
    if operation in PERMISSIONS and PERMISSIONS[operation] != frozenset(roles):
        raise ValueError(f"operation {operation!r} declared twice with different roles")
    PERMISSIONS[operation] = frozenset(roles)


def allowed(actor: Actor | None, operation: str) -> bool:
    if actor is None:
        return False
    roles = PERMISSIONS.get(operation)
    if roles is None:
        raise KeyError(f"operation {operation!r} has no permission entry")
    return actor.role in roles


def authorize(actor: Actor | None, operation: str) -> None:
    if actor is None:
        raise SscardError("unauthenticated")
    if not allowed(actor, operation):
        raise SscardError("forbidden")


def require_bank(actor: Actor, bank_id: int) -> None:
    """Bank staff and bank terminals handle only cards of their own bank."""
    if actor.role in BANK_STAFF or (actor.role is Role.TERMINAL and actor.bank_id is not None):
        if actor.bank_id != bank_id:
            raise SscardError("wrong_bank")


def require_center(actor: Actor, center_id: int | None) -> None:
    """A clerk works on their own center's queue (a supervisor too); anyone else is not limited here."""
    if actor.role in CENTER_STAFF and center_id is not None and actor.center_id != center_id:
        raise SscardError("wrong_center")


def require_self(actor: Actor, person_id: int) -> None:
    """A cardholder acts only on their own cards: another person's id answers as if it did not exist."""
    if actor.role is Role.CARDHOLDER and actor.person_id != person_id:
        raise SscardError("not_found", what=("该记录", "record"))


ALL_STAFF = CENTER_STAFF | BANK_STAFF | {Role.OPERATOR}
