"""The proof of insurance (参保证明) as a PDF: what services.certificates.issue_certificate froze, the
verification code in groups of four, the address of the public check page and a QR code of it.

Chinese first with English beneath (a landlord or an employer abroad may read either); set in the CJK font
the medical slip registers (medical_slip.cjk_font: a TTF when installed, else reportlab's STSong-Light).
The QR code is reportlab's own (reportlab.graphics.barcode.qr), so no further dependency is needed.
"""

from __future__ import annotations

import io
from datetime import datetime

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen import canvas

from .core.clock import SHANGHAI, as_utc
from .medical_slip import cjk_font

KINDS = {
    "pension": ("养老保险", "Pension"),
    "medical": ("医疗保险", "Medical"),
    "unemployment": ("失业保险", "Unemployment"),
    "work_injury": ("工伤保险", "Work injury"),
    "maternity": ("生育保险", "Maternity"),
}
ORDER = tuple(KINDS)


def _local(when: datetime | str) -> datetime:
    value = datetime.fromisoformat(when) if isinstance(when, str) else when
    return as_utc(value).astimezone(SHANGHAI)


def _wrap(value: str, font: str, size: float, room: float) -> list[str]:
    """Lines that fit `room` points: break at spaces in Latin text, anywhere between Chinese characters."""
    lines, current = [], ""
    for ch in value:
        if pdfmetrics.stringWidth(current + ch, font, size) <= room or ch in "，。；：、）":
            # Chinese punctuation never starts a line: it may stand a little into the margin instead
            current += ch
            continue
        cut = current.rfind(" ") if ch != " " and ord(ch) < 0x2E80 else -1
        if cut > 0:
            lines.append(current[:cut])
            current = current[cut + 1:] + ch
        else:
            lines.append(current)
            current = ch.lstrip()
    if current:
        lines.append(current)
    return lines


def render_certificate(issued: dict, verify_url: str, issuer: str = "社会保障卡服务中心") -> bytes:
    """`issued` is issue_certificate's answer; `verify_url` the public check page (the QR code carries it
    with the code, so a phone camera opens the check directly)."""
    font = cjk_font()
    content = issued["content"]
    code = issued["code_grouped"]
    when = _local(issued["issued_at"])
    buf = io.BytesIO()
    width, height = A4
    c = canvas.Canvas(buf, pagesize=A4, pageCompression=1)
    c.setTitle(f"参保证明 Proof of insurance {issued['period_from']} - {issued['period_to']}")
    c.setAuthor("sscard")
    left, right = 20 * mm, width - 20 * mm
    y = height - 24 * mm

    def text(value: str, size: float = 10.5, x: float = left, gap: float = 6 * mm, align: str = "left") -> None:
        nonlocal y
        c.setFont(font, size)
        if align == "center":
            c.drawCentredString(width / 2, y, value)
        elif align == "right":
            c.drawRightString(x, y, value)
        else:
            c.drawString(x, y, value)
        y -= gap

    text("社会保险参保缴费证明", 18, align="center", gap=7 * mm)
    text("Proof of social insurance contributions", 11, align="center", gap=10 * mm)
    text(f"姓名 Name：{content['name']}")
    text(f"社会保障号码 Social security number：{content['citizen_id_masked']}")
    text(f"证明期间 Period：{issued['period_from']} 至 to {issued['period_to']}")
    text(f"开具日期 Issued：{when:%Y-%m-%d %H:%M}（北京时间 Beijing time）", gap=9 * mm)

    text("一、各险种缴费月数  Months with contributions, per insurance", 11.5, gap=7 * mm)
    cols = [left, left + 42 * mm, left + 72 * mm]
    c.setFont(font, 10)
    c.drawString(cols[0], y, "险种 Insurance")
    c.drawString(cols[1], y, "缴费月数 Months")
    y -= 1.5 * mm
    c.line(left, y, left + 110 * mm, y)
    y -= 5 * mm
    for kind in ORDER:
        zh, en = KINDS[kind]
        c.setFont(font, 10)
        c.drawString(cols[0], y, f"{zh} {en}")
        c.drawRightString(cols[1] + 24 * mm, y, str(content["months"].get(kind, 0)))
        y -= 5.6 * mm
    y -= 4 * mm

    if content.get("per_year"):
        text("二、按年度  By year (months)", 11.5, gap=7 * mm)
        xs = [left] + [left + 24 * mm + i * 28 * mm for i in range(len(ORDER))]
        c.setFont(font, 9)
        c.drawString(xs[0], y, "年度 Year")
        for x, kind in zip(xs[1:], ORDER, strict=True):
            c.drawRightString(x + 22 * mm, y, KINDS[kind][0])
        y -= 1.5 * mm
        c.line(left, y, right, y)
        y -= 5 * mm
        for row in content["per_year"]:
            if y < 80 * mm:
                break  # a very long record: the per-kind totals above still cover the whole period
            c.drawString(xs[0], y, str(row["year"]))
            for x, kind in zip(xs[1:], ORDER, strict=True):
                c.drawRightString(x + 22 * mm, y, str(row["months"].get(kind, 0)))
            y -= 5 * mm
        y -= 4 * mm

    if content.get("employers") and y > 95 * mm:
        text("三、缴费单位  Employers", 11.5, gap=7 * mm)
        for e in content["employers"][:6]:
            text(f"{e['name']}  {e['from']} 至 {e['to']}（{e['months']}个月 months）", 9.5, gap=5.2 * mm)
        y -= 3 * mm

    # the verification block at the foot of the page
    qr_size = 34 * mm
    base = 26 * mm
    url = f"{verify_url}?code={issued['code']}"
    widget = QrCodeWidget(url)
    x0, y0, x1, y1 = widget.getBounds()
    drawing = Drawing(qr_size, qr_size, transform=[qr_size / (x1 - x0), 0, 0, qr_size / (y1 - y0), 0, 0])
    drawing.add(widget)
    renderPDF.draw(drawing, c, right - qr_size, base)
    c.setFont(font, 10)
    c.drawString(left, base + 28 * mm, "验证码 Verification code")
    c.setFont("Courier-Bold", 15)
    c.drawString(left, base + 20 * mm, code)
    room = right - qr_size - 6 * mm - left
    lines = (_wrap(f"核验真伪：打开 {verify_url} 输入验证码，或扫描右侧二维码。本证明仅证明上述期间的参保缴费情况。",
                   font, 9, room)
             + _wrap(f"To check it is genuine, open {verify_url} and type the code, or scan the QR code. "
                     "This certifies the contributions above for the period only.", font, 8.5, room))
    line_y = base + 14 * mm
    for line in lines[:6]:
        c.setFont(font, 9)
        c.drawString(left, line_y, line)
        line_y -= 4.4 * mm
    c.setFont(font, 8.5)
    c.drawString(left, base - 6 * mm, f"{issuer} · sscard")
    c.line(left, base + 33 * mm, right, base + 33 * mm)
    c.showPage()
    c.save()
    return buf.getvalue()
