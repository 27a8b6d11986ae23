"""The proof of insurance (参保证明) as a PDF: what services.certificates.issue_certificate froze, the
verification code in groups of four, the address of the public check page and a QR code of it.

Chinese first with English beneath (a landlord or an employer abroad may read either); set in the
documents' CJK font (drawing.cjk_font).
The QR code is reportlab's own (reportlab.graphics.barcode.qr), so no further dependency is needed.
"""

from __future__ import annotations

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm

from ..core.clock import in_shanghai
from .drawing import Page, wrap

KINDS = {
    "pension": ("养老保险", "Pension"),
    "medical": ("医疗保险", "Medical"),
    "unemployment": ("失业保险", "Unemployment"),
    "work_injury": ("工伤保险", "Work injury"),
    "maternity": ("生育保险", "Maternity"),
}
ORDER = tuple(KINDS)


def render_certificate(issued: dict, verify_url: str, issuer: str = "社会保障卡服务中心") -> bytes:
    """`issued` is issue_certificate's answer; `verify_url` the public check page (the QR code carries it
    with the code, so a phone camera opens the check directly)."""
    content = issued["content"]
    code = issued["code_grouped"]
    when = in_shanghai(issued["issued_at"])
    page = Page(A4, f"参保证明 Proof of insurance {issued['period_from']} - {issued['period_to']}", pageCompression=1)
    c, font, width = page.c, page.font, page.width
    left, right = 20 * mm, width - 20 * mm
    page.y = page.height - 24 * mm

    def text(value: str, size: float = 10.5, gap: float = 6 * mm, align: str = "left") -> None:
        page.text(value, size, left, gap, align)

    text("社会保险参保缴费证明", 18, align="center", gap=7 * mm)
    text("Proof of social insurance contributions", 11, align="center", gap=10 * mm)
    text(f"姓名 Name：{content['name']}")
    text(f"社会保障号码 Social security number：{content['citizen_id_masked']}")
    text(f"证明期间 Period：{issued['period_from']} 至 to {issued['period_to']}")
    text(f"开具日期 Issued：{when:%Y-%m-%d %H:%M}（北京时间 Beijing time）", gap=9 * mm)

    text("一、各险种缴费月数  Months with contributions, per insurance", 11.5, gap=7 * mm)
    cols = [left, left + 42 * mm, left + 72 * mm]
    c.setFont(font, 10)
    c.drawString(cols[0], page.y, "险种 Insurance")
    c.drawString(cols[1], page.y, "缴费月数 Months")
    page.y -= 1.5 * mm
    c.line(left, page.y, left + 110 * mm, page.y)
    page.y -= 5 * mm
    for kind in ORDER:
        zh, en = KINDS[kind]
        c.setFont(font, 10)
        c.drawString(cols[0], page.y, f"{zh} {en}")
        c.drawRightString(cols[1] + 24 * mm, page.y, str(content["months"].get(kind, 0)))
        page.y -= 5.6 * mm
    page.y -= 4 * mm

    if content.get("per_year"):
        text("二、按年度  By year (months)", 11.5, gap=7 * mm)
        xs = [left] + [left + 24 * mm + i * 28 * mm for i in range(len(ORDER))]
        c.setFont(font, 9)
        c.drawString(xs[0], page.y, "年度 Year")
        for x, kind in zip(xs[1:], ORDER, strict=True):
            c.drawRightString(x + 22 * mm, page.y, KINDS[kind][0])
        page.y -= 1.5 * mm
        c.line(left, page.y, right, page.y)
        page.y -= 5 * mm
        for row in content["per_year"]:
            if page.y < 80 * mm:
                break  # a very long record: the per-kind totals above still cover the whole period
            c.drawString(xs[0], page.y, str(row["year"]))
            for x, kind in zip(xs[1:], ORDER, strict=True):
                c.drawRightString(x + 22 * mm, page.y, str(row["months"].get(kind, 0)))
            page.y -= 5 * mm
        page.y -= 4 * mm

    if content.get("employers") and page.y > 95 * mm:
        text("三、缴费单位  Employers", 11.5, gap=7 * mm)
        for e in content["employers"][:6]:
            text(f"{e['name']}  {e['from']} 至 {e['to']}（{e['months']}个月 months）", 9.5, gap=5.2 * mm)
        page.y -= 3 * mm

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
    lines = (wrap(f"核验真伪：打开 {verify_url} 输入验证码，或扫描右侧二维码。本证明仅证明上述期间的参保缴费情况。",
                   font, 9, room)
             + wrap(f"To check it is genuine, open {verify_url} and type the code, or scan the QR code. "
                     "This certifies the contributions above for the period only.", font, 8.5, room))
    line_y = base + 14 * mm
    for line in lines[:6]:
        c.setFont(font, 9)
        c.drawString(left, line_y, line)
        line_y -= 4.4 * mm
    c.setFont(font, 8.5)
    c.drawString(left, base - 6 * mm, f"{issuer} · sscard")
    c.line(left, base + 33 * mm, right, base + 33 * mm)
    return page.finish()
