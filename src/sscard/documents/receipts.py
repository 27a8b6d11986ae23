"""PDF receipts from the window: the production-fee receipt and the card-collection receipt (which
states the 60-day activation deadline). Bilingual (Chinese first), in the documents' CJK font
(drawing.cjk_font).

What a receipt shows comes from the services: the window's receipts for the cardholder
(services/window.py) carry the cardholder's own full name and new card number, the collecting unit and
the clerk's name and staff number; the API's copies arrive masked. The PDF adds nothing unmasked. The fee
receipt writes the amount in Chinese capitals (core.money.yuan_in_capitals); the collection receipt has
a line for the collector's signature."""

from __future__ import annotations

from datetime import date, datetime

from reportlab.lib.pagesizes import A5, landscape
from reportlab.lib.units import mm

from ..core.clock import shanghai_time
from ..core.money import fen_to_yuan, yuan_in_capitals
from .drawing import Page, wrap

REASONS = {
    "first": ("首次申领", "First issue"),
    "lost": ("遗失补卡", "Lost"),
    "damaged": ("损坏换卡", "Damaged"),
    "expiring": ("到期换卡", "Expiring"),
    "data_change": ("信息变更换卡", "Personal data changed"),
    "bank_change": ("更换银行", "Change of bank"),
}
METHODS = {"cash": ("现金", "Cash"), "card": ("刷卡", "Card"), "waived": ("减免", "Waived")}


def _when(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str) and len(value) == 10:
        return value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            try:
                value = date.fromisoformat(value)
            except ValueError:
                return value
    if isinstance(value, datetime):
        return shanghai_time(value)
    return value.isoformat()


def _day_zh(value) -> str:
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return f"{value.year}年{value.month}月{value.day}日"


def _unit(center: dict | None) -> str:
    """A center by name (and its English name), never only by its code."""
    if not center:
        return ""
    en = center.get("name_en") or ""
    return f"{center['name']} / {en}" if en and en != center["name"] else center["name"]


def _clerk(r: dict) -> str:
    clerk = r.get("clerk") or {}
    if clerk.get("name"):
        return f"{clerk['name']}（工号 No. {clerk['number']}）" if clerk.get("number") else clerk["name"]
    return r.get("staff") or ""


def fee_receipt_lines(r: dict) -> list[tuple[str, str, str]]:
    """(Chinese label, English label, value) for each line of a fee receipt."""
    reason = REASONS.get(r["reason"], (r["reason"], r["reason"]))
    method = METHODS.get(r["method"], (r["method"], r["method"]))
    lines = [
        ("收据编号", "Receipt no.", r["receipt_no"]),
        ("收款时间", "Date", _when(r["paid_at"])),
        ("收款单位", "Collecting unit", _unit(r["center"])),
        ("持卡人", "Cardholder", f"{r['person']['name']}  {r['person']['citizen_id']}"),
        ("业务", "Service", f"{reason[0]} / {reason[1]}"),
        ("原卡号", "Old card", r["old_card_number"]),
        ("新卡号", "New card", r["new_card_number"]),
        ("应收工本费", "Fee due", f"¥{fen_to_yuan(r['due_fen'])}"),
        ("实收金额", "Amount paid", f"¥{fen_to_yuan(r['amount_fen'])}"),
        ("金额大写", "In words", f"人民币{yuan_in_capitals(r['amount_fen'])}"),
        ("缴费方式", "Paid by", f"{method[0]} / {method[1]}"),
    ]
    if r["method"] == "waived":
        lines.append(("减免原因", "Waiver reason", r.get("waive_reason") or ""))
    if r.get("agent"):
        lines.append(("受托人", "Agent", f"{r['agent']['name']}  {r['agent']['citizen_id']}"))
    lines.append(("经办人", "Clerk", _clerk(r)))
    return lines


def collection_receipt_lines(r: dict) -> list[tuple[str, str, str]]:
    reason = REASONS.get(r["reason"], (r["reason"], r["reason"]))
    lines = [
        ("回执编号", "Receipt no.", r["receipt_no"]),
        ("领卡时间", "Collected", _when(r["collected_at"])),
        ("发卡网点", "Service center", _unit(r.get("center"))),
        ("持卡人", "Cardholder", f"{r['person']['name']}  {r['person']['citizen_id']}"),
        ("社会保障卡号", "Card number", r["card_number"]),
        ("业务", "Service", f"{reason[0]} / {reason[1]}"),
        ("有效期", "Valid", f"{_when(r['issue_date'])} — {_when(r['expiry_date'])}"),
        ("开户银行", "Bank", f"{r['bank']['name']} / {r['bank']['name_en']}  {r['pan']}"),
    ]
    if r.get("old_card_number"):
        lines.append(("原卡（已注销）", "Old card (cancelled)", r["old_card_number"]))
    if r.get("agent"):
        lines.append(("代领人（受托人）", "Collected by agent", f"{r['agent']['name']}  {r['agent']['citizen_id']}"))
    if r.get("clerk"):
        lines.append(("经办人", "Clerk", _clerk(r)))
    return lines


def activation_notice(r: dict) -> tuple[str, str] | None:
    """The seed's rule, on paper: activate within 60 days at the card's bank, with card and ID."""
    deadline = r.get("activation_deadline")
    if not deadline:
        return None
    bank = r["bank"]
    days = r.get("activation_days", 60)
    when = deadline if isinstance(deadline, str) else deadline.isoformat()
    return (
        f"请于{_day_zh(deadline)}前（领卡后{days}天内）持本卡和本人身份证到{bank['name']}网点启用金融功能，"
        f"逾期须由银行主管办理延期。银行客服热线：{bank['hotline']}。",
        f"Activate the card's financial function by {when} (within {days} days of collection) at an outlet "
        f"of {bank['name_en'] or bank['name']}, bringing the card and your ID. Bank hotline: {bank['hotline']}.",
    )


SIGNATURE = (("领卡人签字", "Collected by (signature)"), ("日期", "Date"))


def _render(title: tuple[str, str], lines: list[tuple[str, str, str]], notice: tuple[str, str] | None,
            footer: tuple[str, str], signature: tuple[tuple[str, str], tuple[str, str]] | None = None) -> bytes:
    page = Page(landscape(A5), f"{title[0]} {title[1]}", invariant=1)
    c, font, width, height = page.c, page.font, page.width, page.height
    left, right = 15 * mm, width - 15 * mm
    y = height - 18 * mm
    c.setFont(font, 16)
    c.drawCentredString(width / 2, y, title[0])
    y -= 7 * mm
    c.setFont(font, 10)
    c.drawCentredString(width / 2, y, title[1])
    y -= 4 * mm
    c.line(left, y, right, y)
    y -= 7 * mm
    label_w = 58 * mm
    wrapped = [(zh, en, wrap(str(value), font, 10.5, right - left - label_w)) for zh, en, value in lines]
    box_lines = [(t, 10.5 if i == 0 else 8.5) for i, text in enumerate(notice or ())
                 for t in wrap(text, font, 10.5 if i == 0 else 8.5, right - left - 8 * mm)]
    box_h = sum(s * 0.42 * mm + 1.4 * mm for _, s in box_lines) + 4 * mm if notice else 0
    # everything fits on the one page: the lines close up when a notice and a signature line need room
    below = 16 * mm + (box_h + 3 * mm if notice else 0) + (14 * mm if signature else 0)
    rows = sum(len(parts) for _, _, parts in wrapped) or 1
    step = max(4.2 * mm, min(6.5 * mm, (y - below) / rows))
    for zh, en, parts in wrapped:
        c.setFont(font, 10.5)
        c.drawString(left, y, zh)
        c.setFont(font, 7.5)
        c.setFillGray(0.35)
        c.drawString(left + 30 * mm, y, en)
        c.setFillGray(0)
        c.setFont(font, 10.5)
        for i, part in enumerate(parts):
            if i:
                y -= step
            c.drawString(left + label_w, y, part)
        y -= step
    if notice:
        y -= 2 * mm
        c.setStrokeColorRGB(0.7, 0.15, 0.12)
        c.setLineWidth(1.2)
        c.rect(left, y - box_h + 4 * mm, right - left, box_h)
        c.setStrokeGray(0)
        c.setLineWidth(1)
        y -= 1 * mm
        for text, s in box_lines:
            c.setFont(font, s)
            c.drawString(left + 4 * mm, y, text)
            y -= s * 0.42 * mm + 1.4 * mm
        y -= 4 * mm
    if signature:  # a line to sign on, and one for the date, above the footer
        y = max(y - 5 * mm, 21 * mm)
        (sign_zh, sign_en), (date_zh, date_en) = signature
        c.setFont(font, 10.5)
        c.drawString(left, y, sign_zh)
        c.line(left + 26 * mm, y - 1 * mm, left + 100 * mm, y - 1 * mm)
        c.drawString(left + 108 * mm, y, date_zh)
        c.line(left + 120 * mm, y - 1 * mm, right, y - 1 * mm)
        c.setFont(font, 7.5)
        c.setFillGray(0.35)
        c.drawString(left, y - 4.5 * mm, sign_en)
        c.drawString(left + 108 * mm, y - 4.5 * mm, date_en)
        c.setFillGray(0)
    c.setFont(font, 8)
    c.setFillGray(0.35)
    c.drawString(left, 10 * mm, footer[0])
    c.drawString(left, 6 * mm, footer[1])
    return page.finish()


FOOTER = ("社会保障卡挂失与银行账户挂失须分别办理。社会保障服务热线 12333。",
          "The social security side and the bank account are reported lost separately. Hotline 12333.")


def fee_receipt_pdf(r: dict) -> bytes:
    return _render(("社会保障卡工本费收据", "Social Security Card Production Fee Receipt"), fee_receipt_lines(r),
                   None, FOOTER)


def collection_receipt_pdf(r: dict) -> bytes:
    return _render(("社会保障卡领卡回执", "Social Security Card Collection Receipt"), collection_receipt_lines(r),
                   activation_notice(r), FOOTER, SIGNATURE)
