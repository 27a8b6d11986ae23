"""The medical settlement slip (医保结算单) as a PDF, with the split, in Chinese.

reportlab needs a TrueType font for Chinese: the first CJK TTF/TTC found is registered (Debian's
fonts-wqy-zenhei, wqy-microhei, Droid Sans Fallback, or one named by SSCARD_CJK_FONT); without one,
reportlab's built-in CID font STSong-Light is used (Adobe's CJK fonts, rendered by the PDF viewer).
"""

from __future__ import annotations

import io
import os
from functools import lru_cache
from pathlib import Path

from reportlab.lib.pagesizes import A5
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

from .core.clock import SHANGHAI, as_utc
from .core.money import fen_to_yuan

FONT_NAME = "SscardCJK"
CID_FALLBACK = "STSong-Light"
TTF_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    str(Path(__file__).parent / "fonts" / "cjk.ttf"),
)

KIND_ZH = {"hospital": "医院", "pharmacy": "定点药店"}
LEVEL_ZH = {1: "一级", 2: "二级", 3: "三级"}
CATEGORY_ZH = {"drug": "药品", "treatment": "诊疗", "material": "材料"}
METHOD_ZH = {"cash": "现金", "bank": "银行账户", "none": "无"}


@lru_cache(maxsize=1)
def cjk_font() -> str:
    """Register and name the font the slip is set in (a TTF when there is one, else the CID font)."""
    candidates = [os.environ.get("SSCARD_CJK_FONT", "")] + list(TTF_CANDIDATES)
    for path in candidates:
        if not path or not Path(path).is_file():
            continue
        try:
            kwargs = {"subfontIndex": 0} if path.lower().endswith(".ttc") else {}
            pdfmetrics.registerFont(TTFont(FONT_NAME, path, **kwargs))
            return FONT_NAME
        except Exception:  # noqa: BLE001 - a broken font file: try the next one
            continue
    pdfmetrics.registerFont(UnicodeCIDFont(CID_FALLBACK))
    return CID_FALLBACK


def _yuan(fen: int) -> str:
    return f"¥{fen_to_yuan(fen)}"


def render_slip(view: dict) -> bytes:
    """`view` is services.medical.settlement_view(...): the slip shows exactly what was recorded."""
    font = cjk_font()
    buf = io.BytesIO()
    width, height = A5
    c = canvas.Canvas(buf, pagesize=A5, pageCompression=1)
    refund = view["kind"] == "refund"
    c.setTitle(f"{'医保退费单' if refund else '医保结算单'} {view['code']}")
    c.setAuthor("sscard")
    left, right = 12 * mm, width - 12 * mm
    y = height - 16 * mm

    def line(text: str, size: float = 9, x: float = left, gap: float = 5.2 * mm) -> None:
        nonlocal y
        c.setFont(font, size)
        c.drawString(x, y, text)
        y -= gap

    def pair(label: str, value: str, size: float = 9) -> None:
        nonlocal y
        c.setFont(font, size)
        c.drawString(left, y, label)
        c.drawRightString(right, y, value)
        y -= 5.2 * mm

    c.setFont(font, 14)
    c.drawCentredString(width / 2, y, "社会保障卡医疗费用退费单" if refund else "社会保障卡医疗费用结算单")
    y -= 9 * mm
    inst = view["institution"]
    kind = (LEVEL_ZH.get(inst.get("level"), "") + KIND_ZH.get(inst["kind"], inst["kind"]))
    at = as_utc(_parse(view["at"])).astimezone(SHANGHAI)
    line(f"结算单号：{view['code']}" + (f"（冲正 {view['reverses']}）" if view.get("reverses") else ""))
    line(f"定点机构：{inst['name']}（{kind}）  终端：{view.get('terminal') or ''}")
    line(f"结算时间：{at:%Y-%m-%d %H:%M:%S}（北京时间）")
    person = view["person"]
    line(f"参保人：{person['name']}  社会保障号码：{person['citizen_id']}  卡号：{view['card_number']}")
    y -= 2 * mm
    c.line(left, y + 3 * mm, right, y + 3 * mm)
    c.setFont(font, 9)
    c.drawString(left, y, "类别")
    c.drawString(left + 14 * mm, y, "项目")
    c.drawString(left + 80 * mm, y, "医保目录")
    c.drawRightString(right, y, "金额（元）")
    y -= 5.2 * mm
    sign = -1 if refund else 1
    for item in view["lines"]:
        if y < 60 * mm:
            c.showPage()
            y = height - 16 * mm
        c.setFont(font, 9)
        c.drawString(left, y, CATEGORY_ZH.get(item["category"], item["category"]))
        c.drawString(left + 14 * mm, y, (item.get("name") or "")[:24])
        c.drawString(left + 80 * mm, y, "目录内" if item["covered"] else "目录外（自费）")
        c.drawRightString(right, y, fen_to_yuan(sign * item["amount_fen"]))
        y -= 5.2 * mm
    c.line(left, y + 3 * mm, right, y + 3 * mm)
    y -= 1 * mm
    split = view["split"]
    pair("医疗费用总额", _yuan(split["total_fen"]), 10)
    pair("  其中：医保目录内", _yuan(split["covered_fen"]))
    pair("        目录外自费", _yuan(split["uncovered_fen"]))
    pair("  本次计入起付标准", _yuan(split["deductible_fen"]))
    pair("统筹基金支付", _yuan(split["fund_fen"]), 10)
    pair("个人账户支付", _yuan(split["personal_fen"]), 10)
    pair(f"个人现金/银行账户支付（{METHOD_ZH.get(view['self_pay_method'], view['self_pay_method'])}）",
         _yuan(split["self_pay_fen"]), 10)
    pair("个人账户余额", _yuan(view["personal_balance_after_fen"]))
    y -= 3 * mm
    line("统筹基金 + 个人账户 + 个人自付 = 医疗费用总额。", 8)
    line("请妥善保管本结算单。社会保障应用密码请勿告知他人。", 8)
    c.showPage()
    c.save()
    return buf.getvalue()


def _parse(value):
    from datetime import datetime

    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
