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
from ..core.money import format_yuan, yuan_in_capitals
from ..i18n import bilingual, label_pair
from .drawing import Page, wrap


def _pair(message: str, **params) -> tuple[str, str]:
    """(Chinese, English) of a receipt's text: the English is in the documents catalog (context "receipt")."""
    return bilingual(message, "receipt", **params)


def _line(zh: str, value: str) -> tuple[str, str, str]:
    return (*_pair(zh), value)


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
    reason = label_pair("reason", r["reason"])
    method = label_pair("fee_method", r["method"])
    lines = [
        _line("收据编号", r["receipt_no"]),
        _line("收款时间", _when(r["paid_at"])),
        _line("收款单位", _unit(r["center"])),
        _line("持卡人", f"{r['person']['name']}  {r['person']['citizen_id']}"),
        _line("业务", f"{reason[0]} / {reason[1]}"),
        _line("原卡号", r["old_card_number"]),
        _line("新卡号", r["new_card_number"]),
        _line("应收工本费", format_yuan(r['due_fen'], "¥")),
        _line("实收金额", format_yuan(r['amount_fen'], "¥")),
        _line("金额大写", f"人民币{yuan_in_capitals(r['amount_fen'])}"),
        _line("缴费方式", f"{method[0]} / {method[1]}"),
    ]
    if r["method"] == "waived":
        lines.append(_line("减免原因", r.get("waive_reason") or ""))
    if r.get("agent"):
        lines.append(_line("受托人", f"{r['agent']['name']}  {r['agent']['citizen_id']}"))
    lines.append(_line("经办人", _clerk(r)))
    if r.get("refund"):  # the receipt is kept as issued; a reprint says the fee went back (RULES R6.15)
        lines.append(_line("已退款", f"{r['refund']['refund_receipt_no']}  {_when(r['refund']['refunded_at'])}"))
    return lines


def collection_receipt_lines(r: dict) -> list[tuple[str, str, str]]:
    reason = label_pair("reason", r["reason"])
    lines = [
        _line("回执编号", r["receipt_no"]),
        _line("领卡时间", _when(r["collected_at"])),
        _line("发卡网点", _unit(r.get("center"))),
        _line("持卡人", f"{r['person']['name']}  {r['person']['citizen_id']}"),
        _line("社会保障卡号", r["card_number"]),
        _line("业务", f"{reason[0]} / {reason[1]}"),
        _line("有效期", f"{_when(r['issue_date'])} — {_when(r['expiry_date'])}"),
        _line("开户银行", f"{r['bank']['name']} / {r['bank']['name_en']}  {r['pan']}"),
    ]
    if r.get("old_card_number"):
        lines.append(_line("原卡（已注销）", r["old_card_number"]))
    if r.get("agent"):
        lines.append(_line("代领人（受托人）", f"{r['agent']['name']}  {r['agent']['citizen_id']}"))
    if r.get("clerk"):
        lines.append(_line("经办人", _clerk(r)))
    return lines


NOTICE = ("请于{deadline_zh}前（领卡后{days}天内）持本卡和本人身份证到{bank}网点启用金融功能，逾期须由银行"
          "主管办理延期。银行客服热线：{hotline}。")


def activation_notice(r: dict) -> tuple[str, str] | None:
    """The seed's rule, on paper: activate within 60 days at the card's bank, with card and ID."""
    deadline = r.get("activation_deadline")
    if not deadline:
        return None
    bank = r["bank"]
    days = r.get("activation_days", 60)
    when = deadline if isinstance(deadline, str) else deadline.isoformat()
    return _pair(NOTICE, deadline_zh=_day_zh(deadline), deadline=when, days=days, bank=bank["name"],
                 bank_en=bank["name_en"] or bank["name"], hotline=bank["hotline"])


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


FOOTER = "社会保障卡挂失与银行账户挂失须分别办理。社会保障服务热线 12333。"


def fee_receipt_pdf(r: dict) -> bytes:
    return _render(_pair("社会保障卡工本费收据"), fee_receipt_lines(r), None, _pair(FOOTER))


def collection_receipt_pdf(r: dict) -> bytes:
    return _render(_pair("社会保障卡领卡回执"), collection_receipt_lines(r), activation_notice(r), _pair(FOOTER),
                   (_pair("领卡人签字"), _pair("日期")))
