"""The identifiers of RULES.md §2: validate what comes in, generate only valid ones, mask what goes out.

Citizen ID checks use python-stdnum (`stdnum.cn.ric`: length, GB 11643 check char, birth date and
area code); PAN checks use `stdnum.luhn`. The social security card number and card identification
code are not in any library, so their rules are written here, from the national card specification.
"""

from __future__ import annotations

import functools
import random
import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from stdnum import luhn
from stdnum.cn import ric
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength, ValidationError

from .errors import SscardError

# ---------------------------------------------------------------- citizen ID (公民身份号码, GB 11643)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def normalise(value: str | None) -> str:
    """An identifier as typed or pasted, made comparable: full-width input (１１０１…, Ｘ, as Chinese IMEs type
    it) becomes ASCII, every space, tab and line break goes (a citizen ID pasted as "110106 19710205 1863", a
    card number written "G4752 7922", a PAN in groups of four), upper-case. The one normalisation of every
    identifier a person types: the validators below, the logins (services.passwords.person_by_login)."""
    return "".join(unicodedata.normalize("NFKC", value or "").split()).upper()


def ascii_digits(value: str) -> bool:
    """Is `value` one or more of the digits 0-9, and nothing else? The one test of "digits" on input:
    str.isdigit() alone also accepts other scripts' digits, some of which int() reads (Arabic-Indic `٣`)
    and some of which it refuses with a ValueError (superscript `²`, circled `①`); a PIN pad, a phone's
    keypad and a form's number field send only 0-9 (tests/foundation/test_digits.py)."""
    return value.isascii() and value.isdigit()


MAX_ROW_ID = 2**31 - 1  # most row ids are 32-bit (api.schemas.DbId); the ledger's are 64-bit (MAX_BIG_ID)
MAX_BIG_ID = 2**63 - 1


def whole_number(text: str | None, most: int = MAX_ROW_ID) -> int | None:
    """The whole number `text` writes in the digits 0-9, from 0 to `most`; None for anything else. The one
    way a channel reads a number out of a form, a query or a path it parses itself: int() alone takes
    other scripts' digits, raises ValueError on superscripts and, past 4,300 digits, on any number."""
    if text is None or not ascii_digits(text) or len(text.lstrip("0")) > len(str(most)):
        return None
    number = int(text.lstrip("0") or "0")
    return number if number <= most else None


def _passes(validate: Callable[[str], str], value: str) -> bool:
    """Whether `validate` accepts `value` (the is_valid_* forms of the validators)."""
    try:
        validate(value)
    except SscardError:
        return False
    return True


def citizen_id_check_char(first17: str) -> str:
    """GB 11643 check char over the first 17 digits."""
    if len(first17) != 17 or not ascii_digits(first17):
        raise ValueError("need 17 digits")
    return _ID_CHECK[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


_REASONS = {
    InvalidLength: ("长度应为18位", "it must be 18 characters long"),
    InvalidFormat: ("前17位应为数字", "the first 17 characters must be digits"),
    InvalidChecksum: ("校验码不正确", "the check character is wrong"),
    InvalidComponent: ("出生日期或地区码不正确", "the birth date or area code is wrong"),
}
_BAD_DATE = ("出生日期不是有效日期", "the birth date is not a real date")
_BAD_AREA = ("地区码不存在", "the area code is unknown")


@functools.lru_cache(maxsize=4096)  # a city's few hundred codes; stdnum's table walk was ~0.2 ms a citizen ID
def area_known(area_code: str) -> bool:
    """Is this a division code that has ever existed (python-stdnum's table of GB/T 2260 codes)?

    stdnum's own `ric.validate` also demands the code existed in the birth year, which refuses real
    IDs: a person born in 1980 in a district created in 1983 got that district's code later."""
    from stdnum import numdb

    results = numdb.get("cn/loc").info(area_code)
    return any("county" in props for _part, props in results)


def validate_citizen_id(value: str) -> str:
    """Return the normalised ID (upper-case X) or raise `invalid_citizen_id` saying what is wrong."""
    number = normalise(value)
    try:
        if len(number) != 18:
            raise InvalidLength()
        if not ascii_digits(number[:17]):
            raise InvalidFormat()
        if citizen_id_check_char(number[:17]) != number[17]:
            raise InvalidChecksum()
        try:
            ric.get_birth_date(number)  # a real calendar date
        except InvalidComponent:
            raise SscardError("invalid_citizen_id", reason=_BAD_DATE) from None
        if not area_known(number[:6]):
            raise SscardError("invalid_citizen_id", reason=_BAD_AREA)
    except ValidationError as exc:
        reason = next((r for cls, r in _REASONS.items() if isinstance(exc, cls)), ("格式不正确", "bad format"))
        raise SscardError("invalid_citizen_id", reason=reason) from None
    return number


def is_valid_citizen_id(value: str) -> bool:
    return _passes(validate_citizen_id, value)


@dataclass(frozen=True)
class CitizenIdFacts:
    area_code: str
    birth_date: date
    sex: str  # "M" or "F"


def citizen_id_facts(number: str) -> CitizenIdFacts:
    number = validate_citizen_id(number)
    return CitizenIdFacts(
        area_code=number[:6],
        birth_date=ric.get_birth_date(number),
        sex="M" if int(number[16]) % 2 else "F",
    )


def make_citizen_id(area_code: str, birth: date, sequence: int) -> str:
    """Build a valid ID; `sequence` 0-999, odd for men and even for women (GB 11643)."""
    if not (0 <= sequence <= 999):
        raise ValueError("sequence must be 0-999")
    first17 = f"{area_code}{birth:%Y%m%d}{sequence:03d}"
    return first17 + citizen_id_check_char(first17)


# ---------------------------------------------------------------- card number (社会保障卡卡号)

_CARD_ALPHABET = string.digits + string.ascii_uppercase
_CARD_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_CARD_RE = re.compile(r"^[0-9A-Z]{8}[0-9X]$")


def card_number_check_char(first8: str) -> str:
    """c = 11 - (sum mod 11) over values 0-9, A=10 ... Z=35 with weights 3 7 9 10 5 8 4 2; 10 -> X, 11 -> 0."""
    if len(first8) != 8 or any(ch not in _CARD_ALPHABET for ch in first8):
        raise ValueError("need 8 characters of 0-9A-Z")
    total = sum(_CARD_ALPHABET.index(ch) * w for ch, w in zip(first8, _CARD_WEIGHTS, strict=True))
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def validate_card_number(value: str) -> str:
    number = normalise(value)
    if len(number) != 9:
        raise SscardError("invalid_card_number", reason=("长度应为9位", "it must be 9 characters long"))
    if not _CARD_RE.match(number):
        raise SscardError("invalid_card_number", reason=("含有不允许的字符", "it contains characters not allowed"))
    if card_number_check_char(number[:8]) != number[8]:
        raise SscardError("invalid_card_number", reason=("校验码不正确", "the check character is wrong"))
    return number


def is_valid_card_number(value: str) -> bool:
    return _passes(validate_card_number, value)


def make_card_number(rng: random.Random) -> str:
    """A letter then seven digits, as cities print them, then the check char."""
    body = rng.choice(string.ascii_uppercase) + "".join(rng.choices(string.digits, k=7))
    return body + card_number_check_char(body)


# ---------------------------------------------------------------- card identification code (卡识别码)

IDENT_MIDDLE = "D156000005"
_IDENT_RE = re.compile(r"^\d{6}D156000005[0-9A-F]{16}$")


def validate_ident_code(value: str) -> str:
    code = normalise(value)
    if len(code) != 32:
        raise SscardError("invalid_ident_code", reason=("长度应为32位", "it must be 32 characters long"))
    if not _IDENT_RE.match(code):
        raise SscardError("invalid_ident_code", reason=("格式不正确", "bad format"))
    return code


def make_ident_code(area_code: str, rng: random.Random) -> str:
    if len(area_code) != 6 or not ascii_digits(area_code):
        raise ValueError("area code must be 6 digits")
    return f"{area_code}{IDENT_MIDDLE}{rng.getrandbits(64):016X}"


# ---------------------------------------------------------------- bank card number (PAN)


def validate_pan(value: str, bin_: str | None = None) -> str:
    pan = normalise(value)
    if len(pan) != 19 or not ascii_digits(pan):
        raise SscardError("invalid_pan", reason=("应为19位数字", "it must be 19 digits"))
    if not luhn.is_valid(pan):
        raise SscardError("invalid_pan", reason=("校验位不正确", "the Luhn check digit is wrong"))
    if bin_ is not None and not pan.startswith(bin_):
        raise SscardError("invalid_pan", reason=("不是本行卡号", "it is not this bank's BIN"))
    return pan


def is_valid_pan(value: str) -> bool:
    return _passes(validate_pan, value)


def make_pan(bin_: str, rng: random.Random) -> str:
    if len(bin_) != 6 or not ascii_digits(bin_):
        raise ValueError("a UnionPay BIN is 6 digits")
    body = bin_ + "".join(rng.choices(string.digits, k=12))
    return body + luhn.calc_check_digit(body)


# ---------------------------------------------------------------- masking (pages, logs, receipts, lists)


def _mask_middle(value: str | None, head: int, tail: int) -> str:
    """The first `head` and last `tail` characters kept, the rest starred; too short a value all starred."""
    if not value:
        return ""
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[-tail:]


def mask_citizen_id(value: str | None) -> str:
    return _mask_middle(value, 6, 4)


def mask_pan(value: str | None) -> str:
    return _mask_middle(value, 6, 4)


def mask_card_number(value: str | None) -> str:
    return _mask_middle(value, 2, 2)


def mask_name(value: str | None) -> str:
    if not value:
        return ""
    return value[0] + "*" * max(1, len(value) - 1)


# Bounded by "not a letter or digit" rather than \b: in Python's Unicode regexes Chinese characters are
# word characters, so \b missed an ID written straight after Chinese text ("身份证11010519491231002X").
# Any script's digit counts as one (a full-width ID's first digit was left out of its mask: session 27).
_ALNUM_BEFORE, _ALNUM_AFTER = r"(?<![\dA-Za-z])", r"(?![\dA-Za-z])"
_MASKERS = (
    (re.compile(_ALNUM_BEFORE + r"\d{17}[\dXx]" + _ALNUM_AFTER), mask_citizen_id),
    (re.compile(_ALNUM_BEFORE + r"\d{19}" + _ALNUM_AFTER), mask_pan),
    (
        re.compile(_ALNUM_BEFORE + r"[A-Z][0-9A-Z]{7}[0-9X]" + _ALNUM_AFTER),
        lambda v: mask_card_number(v) if is_valid_card_number(v) else v,
    ),
    (  # a certificate's verification code, grouped or not (core.certificates): it fetches the certificate
        re.compile(_ALNUM_BEFORE + r"(?:[0-9A-Za-z]{4}-?){4}[0-9A-Za-z]" + _ALNUM_AFTER),
        lambda v: mask_verification_code(v) if _is_verification_code(v) else v,
    ),
)


_ANY_MASKABLE = re.compile(r"\d{17}|[A-Z][0-9A-Z]{7}[0-9X]|[0-9A-Za-z]{4}-?[0-9A-Za-z]{4}-?[0-9A-Za-z]{4}")
"""What some pattern above needs, in one scan."""


def _is_verification_code(text: str) -> bool:
    from .certificates import normalize  # (core.certificates: the code's own rules)

    return normalize(text) is not None


def mask_verification_code(value: str) -> str:
    """A certificate's code as the database keeps it in clear: its last 4 characters only (hyphens kept)."""
    out, kept = [], 0
    for ch in reversed(value):
        if ch.isalnum():
            kept += 1
        out.append(ch if kept <= 4 or not ch.isalnum() else "*")
    return "".join(reversed(out))


def _masked_by(mask: Callable[[str], str]) -> Callable[[re.Match[str]], str]:
    return lambda match: mask(match.group(0))


# A mistyped identifier still holds the identifier: a PAN with a letter run into it or a digit too many
# ("/bank-accounts/6222027436751784413x/statement", 20 digits), an ID run into a word. The patterns above
# need a whole identifier, bounded by no letter or digit, so such a path reached the access log in clear
# (session 27's probe). Any run of 17 or more digits they left is masked as a PAN is (first 6, last 4),
# but one inside a 32-character hexadecimal word (a transfer's id, uuid4().hex: digits only by chance).
_LONG_DIGITS = re.compile(r"(?<!\d)\d{17,}(?!\d)")
_HEX_ID = re.compile(r"[0-9a-f]{32}")


def _mask_long_digits(match: re.Match[str]) -> str:
    return match.group(0) if _in_hex_word(match.string, match.start(), match.end()) else mask_pan(match.group(0))


def mask_text(text: str) -> str:
    """Mask every citizen ID, PAN and card number found in free text (log lines, audit details), written as
    `normalise` reads them too: in groups (`6217 0073 1067 1442 606`), in full-width digits, in lower case;
    and any long run of digits that may be one mistyped (`_LONG_DIGITS`). The pass over identifiers as typed
    comes first (session 29): after the ASCII patterns, an ID of 17 ASCII digits and a check character written
    ⑧ had its 17 digits masked as a long run, showing 4 of them and the ⑧, and its asterisks kept the pass
    from seeing the whole."""
    if _SEPARATED_DIGITS.search(text) or _WIDE.search(text) or _LOWER_CARD.search(text):
        text = _mask_as_typed(text)
    if _ANY_MASKABLE.search(text):  # most texts hold none: one scan instead of three
        for pattern, mask in _MASKERS:
            text = pattern.sub(_masked_by(mask), text)
        text = _LONG_DIGITS.sub(_mask_long_digits, text)
    return text


# Session 27: the server reads an identifier as a person types it (`normalise`: NFKC, white space dropped,
# upper case), so `/api/v1/bank-accounts/6217%200073%201067%201442%20606/statement` or a PAN in full-width
# digits addressed the account, and the log showed it in clear: the maskers above saw no 19 ASCII digits.
_SEP = r"[^\S\n]*"  # white space (or a '+', a query string's space: folded to ' ') between two characters
_AS_TYPED = tuple(  # each a lookahead, so that candidates may overlap ("CARD M2379 7286": the card is the second)
    (re.compile(r"(?=(" + _ALNUM_BEFORE + pattern + _ALNUM_AFTER + "))"), mask)
    for pattern, mask in (
        (r"\d(?:" + _SEP + r"\d){16}" + _SEP + r"[\dX]", mask_citizen_id),
        (r"\d(?:" + _SEP + r"\d){18}", mask_pan),
        (r"[A-Z](?:" + _SEP + r"[0-9A-Z]){7}" + _SEP + r"[0-9X]",
         lambda v: mask_card_number(v) if is_valid_card_number(v) else None),
    )
)
_SEPARATED_DIGITS = re.compile(r"\d[\s+]+\d")
# Session 29: digits written in another form (circled ①②③, ⓪, ❶, ➀, ➊, ⓵; superscript ¹²³, subscript ₁₂₃;
# parenthesised ⑴, with a full stop ⒈; another script's decimal digits) carried an identifier past every
# pattern: NFKC makes some of them ASCII digits and not others (❶ and ➀ stay as they are, ⑴ becomes
# three characters), so a character's digit value (unicodedata.digit, a table Unicode keeps) is what `_fold`
# reads. These are every non-ASCII character that has one, but the decimal digits (`\d` already finds
# those), as of Unicode 14 (tests/foundation/test_identifiers.py checks the list against unicodedata).
_DIGIT_FORM_RANGES = ("\u00b2\u00b3\u00b9\u1369-\u1371\u19da\u2070\u2074-\u2079\u2080-\u2089\u2460-\u2468"
                      "\u2474-\u247c\u2488-\u2490\u24ea\u24f5-\u24fd\u24ff\u2776-\u277e\u2780-\u2788\u278a-\u2792"
                      "\U00010a40-\U00010a43\U00010e60-\U00010e68\U00011052-\U0001105a\U0001f100-\U0001f10a")
# a full-width or mathematical digit, a full-width letter or a wide space: what NFKC makes ASCII; a digit in
# another form (above); a Chinese sentence without them stays on the fast path. (Another script's decimal digits
# need no place here: `\d` finds them, in a run or in groups, `_SEPARATED_DIGITS`.)
_WIDE = re.compile(r"[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a\u3000\u00a0\u2000-\u200a\u202f\u205f\U0001d7ce-\U0001d7ff"
                   + _DIGIT_FORM_RANGES + r"]")
_LOWER_CARD = re.compile(r"[a-z]\d{7}")  # a card number typed in lower case (cities print a letter and 7 digits)


@functools.lru_cache(maxsize=4096)
def _fold(ch: str) -> str:
    """One character as `normalise` reads it, kept one character long so that positions stay the same: an
    ASCII letter or digit (upper case), ' ' for white space and '+', NUL for anything else."""
    if ch.isspace() or ch == "+":
        return " " if ch != "\n" else "\0"
    if not ch.isascii():
        digit = unicodedata.digit(ch, None)  # ①, ❶, ², ⑴, ٣...: the digit it is written as (session 29)
        if digit is not None:
            return str(digit)
    folded = unicodedata.normalize("NFKC", ch)
    return folded.upper() if len(folded) == 1 and folded.isascii() and folded.isalnum() else "\0"


# A run of digits as typed (groups apart, an ID's final X) in the folded text, of 17 digits or more, that the
# patterns above did not take whole is masked whole, as `_LONG_DIGITS` masks a contiguous run (first 6, last 4).
# A citizen ID or a PAN run into more digits ("6217 0073 1067 1442 6060", one too many) has no boundary for
# them to match at, or a wrong one ("9 9 1 1 0 1 0 5 1 9 ..." matched from the first 9, showing the birth
# day), and was left in clear, or partly (session 29).
_TYPED_RUN = re.compile(r"\d(?:" + _SEP + r"\d)*(?:" + _SEP + "X)?")
_LONG_RUN_DIGITS = 17


def _with_long_runs(folded: str, text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """`spans`, but for each typed run of `_LONG_RUN_DIGITS` digits or more that they do not cover exactly:
    that run masked whole instead of the spans inside it."""
    for run in _TYPED_RUN.finditer(folded):
        start, end = run.span()
        if end - start < _LONG_RUN_DIGITS or any(s == start and e == end for s, e, _ in spans):
            continue
        compact = "".join(run.group(0).split())  # ASCII digits, and an X at the end
        if len(compact) - compact.endswith("X") < _LONG_RUN_DIGITS or _in_hex_word(text, start, end):
            continue
        spans = [span for span in spans if span[1] <= start or end <= span[0]]
        spans.append((start, end, _mask_middle(compact, 6, 4)))
    return spans


def _in_hex_word(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is part of a 32-character hexadecimal word (a transfer's id): not masked."""
    while start > 0 and text[start - 1].isascii() and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isascii() and text[end].isalnum():
        end += 1
    return bool(_HEX_ID.fullmatch(text[start:end]))


def _mask_as_typed(text: str) -> str:
    folded = "".join(_fold(ch) for ch in text)
    spans: list[tuple[int, int, str]] = []
    for pattern, mask in _AS_TYPED:
        for match in pattern.finditer(folded):
            first, last = match.span(1)
            if any(start < last and first < end for start, end, _ in spans):
                continue
            masked = mask("".join(match.group(1).split()))
            if masked is not None:
                spans.append((first, last, masked))
    spans = _with_long_runs(folded, text, spans)
    for start, end, masked in sorted(spans, reverse=True):
        text = text[:start] + masked + text[end:]
    return text
