"""Free text a person types: which characters are never valid input, on every channel (the API's request
bodies, `api.schemas.clean_text`, and the pages' forms, `web.forms.Form`).

NUL and other control characters, and lone surrogates: PostgreSQL refuses NUL in text and no database can
encode a lone surrogate, so they would end as a 500. They are never valid input. Nor are the bidirectional
controls (U+061C, U+200E/F, U+202A-E, U+2066-9) and the invisible zero-width space, word joiner and byte order
mark (U+200B, U+2060, U+FEFF): `{"name": "\\u202e三张"}` registered a person whose name a window's page, a
receipt or a log shows as 张三, and `"\\u200b"` one with a name that shows as nothing (session 25's probe).
The joiners (U+200C/D) stay: they belong to some scripts' text."""

from __future__ import annotations

import re

BAD_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff"
                       r"\u061c\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")


def has_bad_chars(value: str) -> bool:
    return BAD_CHARS.search(value) is not None


def without_bad_chars(value: str) -> str:
    return BAD_CHARS.sub("", value)
