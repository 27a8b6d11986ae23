"""Text no channel accepts as input: the one rule, read by the API's schemas (api/schemas.py: `clean_text`), by
the operation frame for every argument of every operation (services/operation.py: `run_declared`), so a
console's form, a hotline's webhook or a CLI command is held to it as the API is, and by the pages' form layer
(web/forms.py: `Form`), which refuses such a field where the page shows it, before any operation.

NUL and other control characters, and lone surrogates: PostgreSQL refuses NUL in text and no database can
encode a lone surrogate, so they would end as a 500. Nor the bidirectional controls (U+061C, U+200E/F,
U+202A-E, U+2066-9) and the invisible zero-width space, word joiner and byte order mark (U+200B, U+2060,
U+FEFF): `{"name": "\\u202e三张"}` registered a person whose name a window's page, a receipt or a log shows
as 张三, and `"\\u200b"` one with a name that shows as nothing (session 25's probe, on the API; session 26
found the window console's power of attorney and the bank console's freeze reason taking them, as every
channel but the API did). The joiners (U+200C/D) stay: they belong to some scripts' text. Line breaks and
tabs stay too (a reason typed in a text area).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

BAD_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff"
                       r"\u061c\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")


def unreadable(value: Any) -> bool:
    """Does `value` (a string, or lists, tuples and mappings of them at any depth) hold a character of
    BAD_CHARS?"""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if BAD_CHARS.search(item):
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
    return False


def without_bad_chars(value: str) -> str:
    """The text with the refused characters taken out (a refused form field shown again)."""
    return BAD_CHARS.sub("", value)
