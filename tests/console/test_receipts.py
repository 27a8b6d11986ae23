"""The receipt PDFs render Chinese in the documents' CJK font (a TrueType font when installed), else reportlab's STSong-Light."""

from __future__ import annotations

from sscard.documents import drawing, receipts

SAMPLE = {
    "receipt_no": "L00000001", "card_number": "A1*****2X", "collected_at": "2026-01-05T02:00:00+00:00",
    "issue_date": "2026-01-05", "expiry_date": "2036-01-05", "center": {"code": "C01", "name": "西湖区社保卡服务中心"},
    "person": {"name": "张*", "citizen_id": "110105********002X"}, "reason": "lost", "old_card_number": "B2*****31",
    "old_card_status": "cancelled", "bank": {"code": "GSB", "name": "工商银行", "name_en": "ICBC", "hotline": "95588"},
    "pan": "622202*********1234", "bank_status": "not_activated", "activation_deadline": "2026-03-06",
    "activation_days": 60, "agent": None,
}


def test_collection_receipt_states_the_activation_deadline_in_both_languages():
    zh, en = receipts.activation_notice(SAMPLE)
    assert "2026年3月6日前" in zh and "60天内" in zh and "工商银行" in zh and "95588" in zh
    assert "2026-03-06" in en and "ICBC" in en
    lines = receipts.collection_receipt_lines(SAMPLE)
    assert ("有效期", "Valid", "2026-01-05 — 2036-01-05") in lines
    assert receipts.activation_notice({**SAMPLE, "activation_deadline": None}) is None


def test_without_the_ttc_font_the_builtin_cid_font_is_used(monkeypatch):
    monkeypatch.setattr(drawing, "FONT_CANDIDATES", [])
    monkeypatch.delenv(drawing.FONT_SETTING, raising=False)
    drawing.forget_font()
    try:
        assert drawing.cjk_font() == "STSong-Light"
        pdf = receipts.collection_receipt_pdf(SAMPLE)
        assert pdf.startswith(b"%PDF") and b"STSong-Light" in pdf
    finally:
        drawing.forget_font()  # the next caller finds the real font again
