"""The settlement slip PDF: Chinese text set in a registered CJK font, the split on it."""

from __future__ import annotations

from sscard.documents import drawing, medical_slip
from tests.support import pdf_text

VIEW = {
    "code": "MS20260105ABCDEF1234", "kind": "settlement", "at": "2026-01-05T02:00:00+00:00", "year": 2026,
    "institution": {"code": "H3", "name": "浙江大学医学院附属第一医院", "kind": "hospital", "level": 3,
                    "designated": True, "settlement_account_no": ""},
    "terminal": "HOSP-H3-1", "card_number": "A1*****2X",
    "person": {"id": 1, "name": "张*", "citizen_id": "330106********0013"}, "bank": "工商银行",
    "lines": [{"category": "drug", "name": "阿莫西林胶囊", "code": "", "amount_fen": 200_000, "covered": True},
              {"category": "material", "name": "自费敷料", "code": "", "amount_fen": 10_000, "covered": False}],
    "split": {"total_fen": 210_000, "covered_fen": 200_000, "uncovered_fen": 10_000, "deductible_fen": 80_000,
              "copay_fen": 24_000, "fund_fen": 96_000, "personal_fen": 104_000, "self_pay_fen": 10_000},
    "self_pay_method": "cash", "personal_balance_after_fen": 46_000, "reverses": None, "refunded_by": None,
    "reason": "",
}



def test_slip_shows_the_split_in_chinese(tmp_path):
    pdf = medical_slip.render_slip(VIEW)
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf)
    for expected in ("社会保障卡医疗费用结算单", "统筹基金支付", "¥960.00", "个人账户支付", "¥1,040.00",
                     "¥100.00", "浙江大学医学院附属第一医院", "阿莫西林胶囊", "张*"):
        assert expected in text, expected


def test_slip_falls_back_to_the_builtin_cid_font_without_a_ttf(monkeypatch, tmp_path):
    monkeypatch.setattr(drawing, "FONT_CANDIDATES", [])
    monkeypatch.delenv(drawing.FONT_SETTING, raising=False)
    drawing.forget_font()
    try:
        assert drawing.cjk_font() == "STSong-Light"
        pdf = medical_slip.render_slip({**VIEW, "kind": "refund", "reverses": "MS2026"})
        assert pdf.startswith(b"%PDF") and b"STSong-Light" in pdf
    finally:
        drawing.forget_font()
