"""The confirm step both counters share: the bank counter's cash, written loss and closing
(web.bank_console) and the window's replacement that takes a fee (web.console).

What a confirm step names travels in it sealed (core.sealing, under a key of the server and the staff
session, so a seal dies with its session and cannot be made by a page): the confirmed request does what
was shown, for whom it was shown, or nothing. The confirm step carries the first form's one-time key,
the operation's idempotency key: a double click or a reload of the confirmation is answered with the
first result, never done twice, and a confirmation sent again with something changed after the first
was done is `confirmation_already_used` (nothing more is done)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping

from ..core import sealing
from ..core.errors import SscardError
from ..services.app import App
from .security import StaffDesk


def session_key(app: App, desk: StaffDesk, purpose: str) -> bytes:
    """The sealing key of one purpose for this staff session (the server key and the session's CSRF token)."""
    return bytes.fromhex(app.secrets.token_digest(purpose + "\x00" + desk.csrf))


def _digest(named: Mapping[str, object]) -> str:
    text = json.dumps({k: "" if v is None else str(v) for k, v in named.items()}, sort_keys=True, ensure_ascii=False)
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).decode()[:32]


def seal_named(app: App, desk: StaffDesk, purpose: str, named: Mapping[str, object]) -> str:
    """A seal of what a confirm step names (field -> value), for its confirmed request to carry back."""
    return sealing.seal(session_key(app, desk, purpose), _digest(named))


def named_as_sealed(app: App, desk: StaffDesk, purpose: str, ref: str, named: Mapping[str, object]) -> bool:
    """Whether the confirmed request names what its confirm step sealed (a missing, changed, other session's
    or other purpose's seal: False)."""
    try:
        sealed = sealing.open_sealed(session_key(app, desk, purpose), ref or "")
    except SscardError:
        return False
    return hmac.compare_digest(sealed.encode(), _digest(named).encode())


def after_confirm(err: SscardError, confirmed: bool) -> SscardError:
    """A refusal of a confirmed request in the counter's words: its one-time key already did a request that
    differs from this one (the first was done, its answer lost, and then something was changed)."""
    if confirmed and err.code == "idempotency_key_reused":
        return SscardError("confirmation_already_used")
    return err
