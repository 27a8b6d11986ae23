"""The medical settlement slip (医保结算单) as a PDF, with the split, in Chinese, set in the documents'
CJK font (drawing.cjk_font).
"""

from __future__ import annotations

from reportlab.lib.pagesizes import A5
from reportlab.lib.units import mm

from ..core.clock import in_shanghai
from ..core.labels import label_zh
from ..core.money import format_yuan
from .drawing import Page, fit


def _yuan(fen: int) -> str:
    return format_yuan(fen, "¥")


def render_slip(view: dict) -> bytes:
    """`view` is services.medical.settlement_view(...): the slip shows exactly what was recorded."""
    refund = view["kind"] == "refund"
    page = Page(A5, f"{'医保退费单' if refund else '医保结算单'} {view['code']}", pageCompression=1)
    c, font, height = page.c, page.font, page.height
    left, right = 12 * mm, page.width - 12 * mm
    page.y = height - 16 * mm

    def line(text: str, size: float = 9) -> None:
        page.text(text, size, left, 5.2 * mm)

    def pair(label: str, value: str, size: float = 9) -> None:
        page.pair(label, value, size, left, right, 5.2 * mm)

    page.text("社会保障卡医疗费用退费单" if refund else "社会保障卡医疗费用结算单", 14, left, 9 * mm, "center")
    inst = view["institution"]
    kind = ((label_zh("institution_level", str(inst["level"])) if inst.get("level") else "")
            + label_zh("institution_kind", inst["kind"]))
    at = in_shanghai(view["at"])
    line(f"结算单号：{view['code']}" + (f"（冲正 {view['reverses']}）" if view.get("reverses") else ""))
    line(f"定点机构：{inst['name']}（{kind}）  终端：{view.get('terminal') or ''}")
    line(f"结算时间：{at:%Y-%m-%d %H:%M:%S}（北京时间）")
    person = view["person"]
    line(f"参保人：{person['name']}  社会保障号码：{person['citizen_id']}  卡号：{view['card_number']}")
    page.y -= 2 * mm
    c.line(left, page.y + 3 * mm, right, page.y + 3 * mm)
    c.setFont(font, 9)
    c.drawString(left, page.y, "类别")
    c.drawString(left + 14 * mm, page.y, "项目")
    c.drawString(left + 80 * mm, page.y, "医保目录")
    c.drawRightString(right, page.y, "金额（元）")
    page.y -= 5.2 * mm
    sign = -1 if refund else 1
    for item in view["lines"]:
        if page.y < 60 * mm:
            c.showPage()
            page.y = height - 16 * mm
        c.setFont(font, 9)
        c.drawString(left, page.y, label_zh("item_category", item["category"]))
        c.drawString(left + 14 * mm, page.y, fit(item.get("name") or "", font, 9, 64 * mm))
        c.drawString(left + 80 * mm, page.y, "目录内" if item["covered"] else "目录外（自费）")
        c.drawRightString(right, page.y, format_yuan(sign * item["amount_fen"]))
        page.y -= 5.2 * mm
    c.line(left, page.y + 3 * mm, right, page.y + 3 * mm)
    page.y -= 1 * mm
    split = view["split"]
    pair("医疗费用总额", _yuan(split["total_fen"]), 10)
    pair("  其中：医保目录内", _yuan(split["covered_fen"]))
    pair("        目录外自费", _yuan(split["uncovered_fen"]))
    pair("  本次计入起付标准", _yuan(split["deductible_fen"]))
    pair("统筹基金支付", _yuan(split["fund_fen"]), 10)
    pair("个人账户支付", _yuan(split["personal_fen"]), 10)
    pair(f"个人现金/银行账户支付（{label_zh('self_pay_method', view['self_pay_method'])}）",
         _yuan(split["self_pay_fen"]), 10)
    pair("个人账户余额", _yuan(view["personal_balance_after_fen"]))
    page.y -= 3 * mm
    line("统筹基金 + 个人账户 + 个人自付 = 医疗费用总额。", 8)
    line("请妥善保管本结算单。社会保障应用密码请勿告知他人。", 8)
    return page.finish()

