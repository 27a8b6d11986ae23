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
from ..core.labels import INSURANCE_KIND
from ..i18n import bilingual, label_pair
from .drawing import Page, wrap

ORDER = tuple(INSURANCE_KIND)  # the five insurances, as a record lists them


CHECK = "核验真伪：打开 {url} 输入验证码，或扫描右侧二维码。本证明仅证明上述期间的参保缴费情况。"


def both(zh: str, sep: str = " ") -> str:
    """A certificate's text as it prints: the Chinese, then its English (documents catalog, "certificate")."""
    return sep.join(bilingual(zh, "certificate"))


def render_certificate(issued: dict, verify_url: str, issuer: str = "社会保障卡服务中心") -> bytes:
    """`issued` is issue_certificate's answer; `verify_url` the public check page (the QR code carries it
    with the code, so a phone camera opens the check directly)."""
    content = issued["content"]
    code = issued["code_grouped"]
    when = in_shanghai(issued["issued_at"])
    page = Page(A4, f"{both('参保证明')} {issued['period_from']} - {issued['period_to']}", pageCompression=1)
    c, font, width = page.c, page.font, page.width
    left, right = 20 * mm, width - 20 * mm
    page.y = page.height - 24 * mm

    def text(value: str, size: float = 10.5, gap: float = 6 * mm, align: str = "left") -> None:
        page.text(value, size, left, gap, align)

    title_zh, title_en = bilingual("社会保险参保缴费证明", "certificate")
    text(title_zh, 18, align="center", gap=7 * mm)
    text(title_en, 11, align="center", gap=10 * mm)
    text(f"{both('姓名')}：{content['name']}")
    text(f"{both('社会保障号码')}：{content['citizen_id_masked']}")
    text(f"{both('证明期间')}：{issued['period_from']} {both('至')} {issued['period_to']}")
    text(f"{both('开具日期')}：{when:%Y-%m-%d %H:%M}（{both('北京时间')}）", gap=9 * mm)

    text(both("一、各险种缴费月数", "  "), 11.5, gap=7 * mm)
    cols = [left, left + 42 * mm, left + 72 * mm]
    c.setFont(font, 10)
    c.drawString(cols[0], page.y, both("险种"))
    c.drawString(cols[1], page.y, both("缴费月数"))
    page.y -= 1.5 * mm
    c.line(left, page.y, left + 110 * mm, page.y)
    page.y -= 5 * mm
    for kind in ORDER:
        zh, en = label_pair("insurance_kind", kind)
        c.setFont(font, 10)
        c.drawString(cols[0], page.y, f"{zh} {en}")
        c.drawRightString(cols[1] + 24 * mm, page.y, str(content["months"].get(kind, 0)))
        page.y -= 5.6 * mm
    page.y -= 4 * mm

    if content.get("per_year"):
        text(both("二、按年度", "  "), 11.5, gap=7 * mm)
        xs = [left] + [left + 24 * mm + i * 28 * mm for i in range(len(ORDER))]
        c.setFont(font, 9)
        c.drawString(xs[0], page.y, both("年度"))
        for x, kind in zip(xs[1:], ORDER, strict=True):
            c.drawRightString(x + 22 * mm, page.y, INSURANCE_KIND[kind])
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
        text(both("三、缴费单位", "  "), 11.5, gap=7 * mm)
        for e in content["employers"][:6]:
            text(f"{e['name']}  {e['from']} 至 {e['to']}（{e['months']}{both('个月')}）", 9.5, gap=5.2 * mm)
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
    c.drawString(left, base + 28 * mm, both("验证码"))
    c.setFont("Courier-Bold", 15)
    c.drawString(left, base + 20 * mm, code)
    room = right - qr_size - 6 * mm - left
    check_zh, check_en = bilingual(CHECK, "certificate", url=verify_url)
    lines = wrap(check_zh, font, 9, room) + wrap(check_en, font, 8.5, room)
    line_y = base + 14 * mm
    for line in lines[:6]:
        c.setFont(font, 9)
        c.drawString(left, line_y, line)
        line_y -= 4.4 * mm
    c.setFont(font, 8.5)
    c.drawString(left, base - 6 * mm, f"{issuer} · sscard")
    c.line(left, base + 33 * mm, right, base + 33 * mm)
    return page.finish()
