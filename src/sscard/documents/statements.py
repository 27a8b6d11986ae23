"""The bank account statement as a PDF (reportlab), in Chinese or English.

`render_statement(Statement(...), lang)` answers the PDF bytes, set in the documents' CJK font
(drawing.cjk_font).

Amounts arrive as integer fen and are printed as yuan with two decimals; the PAN and the name arrive
already masked (this module never sees a full number).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date, datetime

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import SimpleDocTemplate, Spacer, Table, TableStyle

from ..core.clock import shanghai_time
from ..core.money import format_yuan
from ..i18n import gettext_in
from .drawing import cjk_font, paragraph


@dataclass
class Line:
    at: datetime
    description: str
    debit_fen: int = 0  # money out of the account
    credit_fen: int = 0  # money into the account
    balance_fen: int | None = None


@dataclass
class Statement:
    bank_name: str
    pan_masked: str
    name_masked: str
    period_from: date
    period_to: date
    opening_fen: int
    closing_fen: int
    status: str = ""
    outlet: str = ""
    printed_at: datetime | None = None
    lines: list[Line] = field(default_factory=list)

    @property
    def total_debit_fen(self) -> int:
        return sum(x.debit_fen for x in self.lines)

    @property
    def total_credit_fen(self) -> int:
        return sum(x.credit_fen for x in self.lines)


TEXT = {  # Chinese; English from the documents catalog (context "statement")
    "title": "社会保障卡银行账户对账单", "bank": "开户银行", "pan": "银行卡号", "name": "户名", "period": "期间", "status": "账户状态",
    "opening": "期初余额", "closing": "期末余额", "debits": "支出合计", "credits": "收入合计", "time": "交易时间", "desc": "摘要",
    "debit": "支出", "credit": "收入", "balance": "余额", "none": "本期无交易", "printed": "打印时间", "outlet": "打印网点",
    "unit": "单位：元", "page": "第{n}页", "note": "本对账单金额单位为人民币元。如有疑问，请致电开户银行客服热线。",
}


def render_statement(st: Statement, lang: str = "zh") -> bytes:
    """The statement as PDF bytes (A4), every string set in the CJK font so Chinese always renders."""
    t = {k: gettext_in(lang, "statement", v) for k, v in TEXT.items()}
    font = cjk_font()
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=16 * mm,
                            bottomMargin=16 * mm, title=t["title"], author=st.bank_name, subject=st.pan_masked)
    title = ParagraphStyle("title", fontName=font, fontSize=15, leading=20, spaceAfter=6)
    body = ParagraphStyle("body", fontName=font, fontSize=9, leading=12)
    small = ParagraphStyle("small", fontName=font, fontSize=8, leading=10, textColor=colors.grey)

    story: list = [paragraph(t["title"], title)]
    pairs = [(t["bank"], st.bank_name), (t["pan"], st.pan_masked)]
    if st.name_masked:
        pairs.append((t["name"], st.name_masked))
    pairs += [
        (t["period"], f"{st.period_from.isoformat()} — {st.period_to.isoformat()}"),
        (t["opening"], format_yuan(st.opening_fen)), (t["closing"], format_yuan(st.closing_fen)),
        (t["credits"], format_yuan(st.total_credit_fen)), (t["debits"], format_yuan(st.total_debit_fen)),
    ]
    if st.status:
        pairs.append((t["status"], st.status))
    if st.outlet:
        pairs.append((t["outlet"], st.outlet))
    story += [head_table(pairs, font, body), Spacer(1, 5 * mm), paragraph(t["unit"], small)]

    rows: list[list] = [[t["time"], t["desc"], t["debit"], t["credit"], t["balance"]]]
    for line in st.lines:
        rows.append([
            shanghai_time(line.at),
            paragraph(line.description, body),
            format_yuan(line.debit_fen) if line.debit_fen else "",
            format_yuan(line.credit_fen) if line.credit_fen else "",
            "" if line.balance_fen is None else format_yuan(line.balance_fen),
        ])
    if not st.lines:
        rows.append(["", paragraph(t["none"], body), "", "", ""])
    lines_table = Table(rows, colWidths=[32 * mm, 70 * mm, 26 * mm, 26 * mm, 26 * mm], repeatRows=1)
    lines_table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), font, 9),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef1f4")),
        ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#d9dee4")),
    ]))
    story += [lines_table, Spacer(1, 6 * mm), paragraph(t["note"], small)]

    printed = shanghai_time(st.printed_at) if st.printed_at else ""

    def footer(canvas, doc_) -> None:
        canvas.saveState()
        canvas.setFont(font, 8)
        canvas.setFillColor(colors.grey)
        canvas.drawString(15 * mm, 9 * mm, f"{t['printed']} {printed}  {st.outlet}".strip())
        canvas.drawRightString(A4[0] - 15 * mm, 9 * mm, t["page"].format(n=doc_.page))
        canvas.restoreState()

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()


HEAD_COLUMNS = (28 * mm, 62 * mm, 28 * mm, 62 * mm)  # label, value, label, value


def head_table(pairs: list[tuple[str, str]], font: str, body: ParagraphStyle) -> Table:
    """The statement's head, two facts a row: each value a paragraph that wraps within its column (a long
    holder's, bank's or outlet's name ran over the next column and off the page as a plain cell)."""
    pairs = pairs + [("", "")] * (len(pairs) % 2)
    head = [[pairs[i][0], paragraph(pairs[i][1], body), pairs[i + 1][0], paragraph(pairs[i + 1][1], body)]
            for i in range(0, len(pairs), 2)]
    table = Table(head, colWidths=list(HEAD_COLUMNS))
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), font, 9),
        ("TEXTCOLOR", (0, 0), (0, -1), colors.HexColor("#5b6673")),
        ("TEXTCOLOR", (2, 0), (2, -1), colors.HexColor("#5b6673")),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))
    return table
