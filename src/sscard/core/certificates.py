"""Verification codes of the proof of insurance (参保证明): what a third party types to check a certificate.

16 random characters of Crockford's base32 (80 bits: guessing one code among millions issued, at the
throttled rate of the public page, would take longer than the universe has existed) and a check
character (Luhn mod 32), so a mistyped code is told apart from a forged one without a database look-up.
The alphabet has no I, L, O or U; typing them is forgiving (O reads as 0, I and L as 1), as are
lower case, spaces and hyphens. Shown in groups of four: `7KQ2-M9XD-4H8R-WT3C-N`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
_READS_AS = {"O": "0", "I": "1", "L": "1"}
BODY = 16
LENGTH = BODY + 1


def check_char(body: str) -> str:
    """Luhn mod 32 over the body: catches every single wrong character and every swap of two neighbours
    but one, a `0` and a `Z` side by side (values 0 and 31, as 09 and 90 in Luhn mod 10), which `new_code`
    never issues."""
    n = len(ALPHABET)
    total, factor = 0, 2
    for ch in reversed(body):
        addend = factor * _VALUE[ch]
        total += addend // n + addend % n
        factor = 1 if factor == 2 else 2
    return ALPHABET[(n - total % n) % n]


_UNSEEN_SWAPS = ("0Z", "Z0")  # the neighbours whose swap Luhn mod 32 cannot tell (check_char)


def new_code(randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    """A fresh code: 16 random characters and the check character (17, no separators), drawn again when a
    `0` and a `Z` would stand side by side (about 3 codes in 100; 0.1 bit less randomness), so that every
    issued code catches every swap of two neighbours. Codes issued before stay valid."""
    while True:
        body = "".join(ALPHABET[randbelow(len(ALPHABET))] for _ in range(BODY))
        code = body + check_char(body)
        if not any(pair in code for pair in _UNSEEN_SWAPS):
            return code


def normalize(typed: str) -> str | None:
    """The code as stored (17 characters) from what someone typed, or None when it cannot be one:
    wrong length, a character not in the alphabet, or a wrong check character (a typo)."""
    text = "".join(ch for ch in (typed or "").upper() if ch not in " -\t\u3000\uff0d")
    text = "".join(_READS_AS.get(ch, ch) for ch in text)
    if len(text) != LENGTH or any(ch not in _VALUE for ch in text):
        return None
    return text if check_char(text[:-1]) == text[-1] else None


def grouped(code: str) -> str:
    """For reading aloud and typing: groups of four, the check character last (XXXX-XXXX-XXXX-XXXX-C)."""
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))
