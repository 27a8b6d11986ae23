"""Money is integer fen (分) everywhere inside; yuan with two decimals only at the edges."""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

from .errors import SscardError

MAX_FEN = 10**12
"""The most one amount may be (100 million yuan): far above any card's business, far below any integer
limit. Every channel meets it here: every amount a service takes (`require_fen`, which every ledger
movement calls) and every yuan a page reads (`yuan_to_fen`); the API's schemas say it first."""
_YUAN_RE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,2})?$")  # ASCII digits: \d would read "٣" as 3


def yuan_to_fen(text: str | int | Decimal) -> int:
    """Parse '12.30' (a string or Decimal, never a float) into 1230 fen."""
    if isinstance(text, bool) or isinstance(text, float):
        raise SscardError("invalid_amount")
    if isinstance(text, int):
        return text * 100
    s = unicodedata.normalize("NFKC", str(text)).strip()  # a Chinese IME's full-width "１００" is 100
    if not _YUAN_RE.match(s):
        raise SscardError("invalid_amount")
    try:
        fen = int(Decimal(s) * 100)
    except InvalidOperation:
        raise SscardError("invalid_amount") from None
    if fen > MAX_FEN:
        raise SscardError("invalid_amount")
    return fen


def format_yuan(fen: int | None, symbol: str = "") -> str:
    """Money as people read it, wherever it is shown (every page, PDF, hotline answer and refusal):
    5100282 -> '51,002.82', thousands separated, two decimals, the same in both languages; None -> '';
    with symbol='¥': '¥51,002.82', '-¥0.05'. The one way: tests/documents/test_money_format.py walks
    the channels and documents for any other."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{symbol}{whole:,}.{cents:02d}"


def fen_to_yuan(fen: int) -> str:
    """1230 -> '12.30'; -5 -> '-0.05': for machines only (a CSV cell a spreadsheet reads as a number, the
    API's strings); people read format_yuan's."""
    sign = "-" if fen < 0 else ""
    fen = abs(int(fen))
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def require_fen(amount: object, *, zero: bool = False) -> int:
    """A whole number of fen (an int, never a bool or a float), positive (or zero when `zero`), at most MAX_FEN."""
    if not isinstance(amount, int) or isinstance(amount, bool) or not (0 if zero else 1) <= amount <= MAX_FEN:
        raise SscardError("invalid_amount")
    return amount


_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_SMALL = ("", "拾", "佰", "仟")
_BIG = ("", "万", "亿")


def _whole_yuan_in_capitals(n: int) -> str:
    """100,005 -> 壹拾万零伍: groups of four digits under 万/亿, one 零 for any run of zeros
    between two non-zero digits, none at the end."""
    groups = []
    while n:
        groups.append(n % 10000)
        n //= 10000
    if len(groups) > len(_BIG):
        raise ValueError("a trillion yuan or more: no card account holds that")
    out: list[str] = []
    started = need_zero = False
    for gi in range(len(groups) - 1, -1, -1):
        g = groups[gi]
        if g == 0:
            need_zero = need_zero or started
            continue
        for pos in (3, 2, 1, 0):
            d = g // 10**pos % 10
            if d == 0:
                need_zero = need_zero or started
                continue
            if need_zero:
                out.append("零")
                need_zero = False
            out.append(_DIGITS[d] + _SMALL[pos])
            started = True
        out.append(_BIG[gi])
        need_zero = False  # a group's trailing zeros need no 零: 壹拾万柒仟, not 壹拾万零柒仟
    return "".join(out)


def yuan_in_capitals(fen: int) -> str:
    """The amount in Chinese financial capitals (大写金额) as a slip, receipt or voucher writes it under
    the 支付结算办法 rules: 壹拾元整, 壹佰元零伍分, 壹拾万零伍元伍角, 零元整; a negative amount is 负…."""
    if not isinstance(fen, int) or isinstance(fen, bool):
        raise TypeError("fen is an int")
    if fen < 0:
        return "负" + yuan_in_capitals(-fen)
    whole, jiao, f = fen // 100, fen // 10 % 10, fen % 10
    if fen == 0:
        return "零元整"
    text = _whole_yuan_in_capitals(whole) + "元" if whole else ""
    if jiao == 0 and f == 0:
        return text + "整"
    if jiao:
        text += _DIGITS[jiao] + "角"
    elif whole:
        text += "零"  # 角 is 0 but 分 is not: 元 is followed by 零 (325.04 -> 叁佰贰拾伍元零肆分)
    if f:
        text += _DIGITS[f] + "分"
    return text


_SPOKEN = str.maketrans("零壹贰叁肆伍陆柒捌玖拾佰仟", "零一二三四五六七八九十百千")


def spoken_yuan(fen: int) -> str:
    """The amount as a Chinese voice says it (一千二百三十四元五角六分, 十元零五分, 一百元): for a zh-CN
    text-to-speech engine, which reads "1,234.56元" digit by digit or pauses at the comma. The capitals'
    rules in everyday characters, without 整, and 十 rather than 一十 at the start."""
    text = yuan_in_capitals(fen).translate(_SPOKEN).removesuffix("整")
    sign, rest = ("负", text[1:]) if text.startswith("负") else ("", text)
    return sign + (rest[1:] if rest.startswith("一十") else rest)
