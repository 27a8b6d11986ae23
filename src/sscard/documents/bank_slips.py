"""The slip (回单) of a cash deposit or withdrawal at a bank counter, as a PDF the customer signs.

One half-A4 page (A5 landscape), Chinese or English labels; the amount in figures and in Chinese capitals
(the capitals are the legal amount on a Chinese voucher, so they appear in both languages). The font is
the documents' CJK font (drawing.cjk_font). The slip arrives as services.bank_counter.slip's dict:
the PAN already masked, the holder's own name in full (the slip is handed to the holder).
"""

from __future__ import annotations

from datetime import datetime

from reportlab.lib.pagesizes import A5, landscape
from reportlab.lib.units import mm

from ..core.clock import shanghai_time
from ..core.money import format_yuan, yuan_in_capitals
from ..i18n import gettext_in
from .drawing import Page

TEXT = {  # Chinese; English from the documents catalog (context "bank_slip")
    "deposit": "现金存款回单", "withdrawal": "现金取款回单", "ref": "交易参考号", "time": "交易时间", "name": "户名", "pan": "银行卡号",
    "amount": "金额（小写）", "capitals": "金额（大写）", "balance": "交易后余额", "outlet": "网点", "teller": "柜员", "sign": "客户签名：",
    "printed": "打印时间", "note": "请核对回单内容，确认无误后签名。",
}


def _yuan(fen: int | None) -> str:
    return format_yuan(fen, "¥")


SECONDS = "%Y-%m-%d %H:%M:%S"


def _name(names: dict | None, lang: str) -> str:
    if not names:
        return ""
    return (names.get("name_en") if lang == "en" else None) or names.get("name") or names.get("code", "")


def render_slip(slip: dict, lang: str, printed_at: datetime) -> bytes:
    """The slip's PDF bytes."""
    t = {k: gettext_in(lang, "bank_slip", v) for k, v in TEXT.items()}
    page = Page(landscape(A5), f"{t[slip['code']]} {slip['ref']}", _name(slip.get("bank"), lang))
    c, font, width, height = page.c, page.font, page.width, page.height
    left, y = 15 * mm, height - 18 * mm
    c.setFont(font, 15)
    c.drawString(left, y, f"{_name(slip.get('bank'), lang)}  {t[slip['code']]}")
    c.setFont(font, 9)
    c.drawRightString(width - left, y, f"{t['ref']} {slip['ref']}")
    y -= 6 * mm
    c.line(left, y, width - left, y)
    rows = [
        (t["time"], shanghai_time(slip["at"], SECONDS) + (" (Beijing time)" if lang == "en" else "（北京时间）")),
        (t["name"], slip["holder_name"]),
        (t["pan"], slip["pan"]),
        (t["amount"], _yuan(slip["amount_fen"])),
        (t["capitals"], yuan_in_capitals(slip["amount_fen"])),
        (t["balance"], _yuan(slip.get("balance_after_fen"))),
        (t["outlet"], _name(slip.get("outlet"), lang)),
        (t["teller"], " ".join(x for x in (slip.get("teller", ""), slip.get("teller_name", "")) if x)),
    ]
    for label, value in rows:
        y -= 8 * mm
        c.setFont(font, 10)
        c.drawString(left, y, label)
        c.setFont(font, 12 if label in (t["amount"], t["capitals"]) else 11)
        c.drawString(left + 58 * mm, y, str(value))
    y -= 14 * mm
    c.setFont(font, 11)
    c.drawString(left, y, t["sign"])
    c.line(left + 40 * mm, y - 1 * mm, left + 110 * mm, y - 1 * mm)
    c.setFont(font, 8)
    c.drawString(left, 10 * mm, t["note"])
    c.drawRightString(width - left, 10 * mm, f"{t['printed']} {shanghai_time(printed_at, SECONDS)}")
    return page.finish()
