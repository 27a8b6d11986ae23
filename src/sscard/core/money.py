"""Money is integer fen (分) everywhere inside; yuan with two decimals only at the edges."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .errors import SscardError

_YUAN_RE = re.compile(r"^\d{1,12}(\.\d{1,2})?$")


def yuan_to_fen(text: str | int | Decimal) -> int:
    """Parse '12.30' (a string or Decimal, never a float) into 1230 fen."""
    if isinstance(text, bool) or isinstance(text, float):
        raise SscardError("invalid_amount")
    if isinstance(text, int):
        return text * 100
    s = str(text).strip()
    if not _YUAN_RE.match(s):
        raise SscardError("invalid_amount")
    try:
        return int(Decimal(s) * 100)
    except InvalidOperation:
        raise SscardError("invalid_amount") from None


def fen_to_yuan(fen: int) -> str:
    """1230 -> '12.30'; -5 -> '-0.05'."""
    sign = "-" if fen < 0 else ""
    fen = abs(int(fen))
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def require_positive_fen(amount: int) -> int:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise SscardError("invalid_amount")
    return amount
