"""Short transaction references a teller can read aloud, type and find: `20261202-7KQ2MXR`.

The Shanghai date of the transaction, then six Crockford base32 characters (no I, L, O, U: nothing to
confuse with 1 or 0) taken from the stored transfer id, then one check character (Luhn mod 32), so a
mistyped or swapped character is caught before any search. Derived, not stored: the same transfer
always gives the same reference. Thirty bits per day make two transfers of one account on one day
share a reference with odds of about one in a billion; a stored, unique column would remove even that
(see docs/RULES.md, "Transaction references").
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime

from .clock import SHANGHAI

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_FULL = re.compile(r"^(\d{8})([0-9A-Z]{7})$")
BODY = 6


def _bits(transfer_id: str) -> int:
    """Thirty bits of the transfer id: its first hex digits (a random uuid4), or a digest of any other id."""
    text = transfer_id.lower()
    if _HEX32.match(text):
        return int(text[:8], 16) >> 2
    return int.from_bytes(hashlib.sha256(transfer_id.encode()).digest()[:4], "big") >> 2


def check_char(body: str) -> str:
    """Luhn mod 32 over the characters: catches every single wrong character and most swaps."""
    total, factor = 0, 2
    for ch in reversed(body):
        addend = factor * _VALUE[ch]
        total += addend // 32 + addend % 32
        factor = 1 if factor == 2 else 2
    return ALPHABET[(32 - total % 32) % 32]


def short_ref(transfer_id: str, at: datetime | date) -> str:
    """`YYYYMMDD-XXXXXXC` for a transfer made at `at` (aware datetimes are read in Shanghai time)."""
    day = at.astimezone(SHANGHAI).date() if isinstance(at, datetime) and at.tzinfo else (
        at.date() if isinstance(at, datetime) else at)
    bits = _bits(transfer_id)
    body = "".join(ALPHABET[(bits >> (5 * i)) & 31] for i in reversed(range(BODY)))
    return f"{day:%Y%m%d}-{body}{check_char(body)}"


def normalize(text: str) -> str | None:
    """A reference as typed ('20261202 7kq2-mxr', O for 0) in its printed form, or None when it is not one
    (wrong length, a character outside the alphabet, a failed check character)."""
    compact = re.sub(r"[\s\-·.]", "", (text or "").upper()).translate(_READ_AS)
    found = _FULL.match(compact)
    if not found:
        return None
    day, rest = found.groups()
    body, check = rest[:BODY], rest[BODY:]
    if any(c not in _VALUE for c in rest) or check_char(body) != check:
        return None
    try:
        date(int(day[:4]), int(day[4:6]), int(day[6:]))
    except ValueError:
        return None
    return f"{day}-{body}{check}"
