"""The statement PDF (sscard.documents.statements) and the statement lines the console builds (no database)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from sscard.documents import drawing
from sscard.documents.statements import Line, Statement, render_statement
from sscard.services.bank_counter import lines_of
from sscard.web.bank_console import describe, statement_lines


def a_statement(n: int = 3) -> Statement:
    start = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
    lines, balance = [], 0
    for i in range(n):
        amount = 10_000 + i
        balance += amount
        lines.append(Line(at=start + timedelta(hours=i), description=f"现金存款 · 网点柜台 {i}", credit_fen=amount,
                          balance_fen=balance))
    return Statement(bank_name="工商银行", pan_masked="622202*********1234", name_masked="张*",
                     period_from=date(2026, 1, 5), period_to=date(2026, 1, 9), opening_fen=0, closing_fen=balance,
                     status="正常", outlet="GSB-001", printed_at=start, lines=lines)


def pages_of(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf))


def test_statement_pdf_is_set_in_a_cjk_font_in_both_languages():
    for lang in ("zh", "en"):
        pdf = render_statement(a_statement(), lang)
        assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
        assert re.search(rb"/BaseFont\s*/(STSong-Light|[A-Z]{6}\+)", pdf)
        assert pages_of(pdf) == 1


def test_a_long_statement_runs_over_several_pages():
    assert pages_of(render_statement(a_statement(120), "zh")) >= 3


def test_without_a_truetype_cjk_font_the_builtin_cid_font_is_used(monkeypatch, tmp_path):
    monkeypatch.setattr(drawing, "FONT_CANDIDATES", [(str(tmp_path / "missing.ttc"), 0)])
    monkeypatch.setenv(drawing.FONT_SETTING, str(tmp_path / "also-missing.ttf"))
    drawing.forget_font()
    try:
        assert drawing.cjk_font() == drawing.CID_FALLBACK
        pdf = render_statement(a_statement(), "zh")
        assert b"STSong-Light" in pdf
    finally:
        drawing.forget_font()  # the next caller finds the real font again


def test_the_one_font_setting_names_the_font_of_every_document(monkeypatch, tmp_path):
    """SSCARD_PDF_FONT ("path" or "path:index") comes first; a file reportlab cannot read is passed over."""
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")
    real = next((p for p, _ in drawing.FONT_CANDIDATES if Path(p).is_file()), None)
    if real is None:
        pytest.skip("no TrueType CJK font installed")
    monkeypatch.setattr(drawing, "FONT_CANDIDATES", [])
    for setting, expected in ((str(broken), drawing.CID_FALLBACK), (f"{real}:0", drawing.FONT_NAME)):
        monkeypatch.setenv(drawing.FONT_SETTING, setting)
        drawing.forget_font()
        try:
            assert drawing.cjk_font() == expected
        finally:
            drawing.forget_font()


def test_statement_lines_work_the_balance_back_and_skip_holds():
    entries = [  # newest first, as services.banking.statement answers
        {"id": 4, "transfer_id": "a" * 32, "at": "2026-01-05T04:00:00+00:00", "code": "payment", "kind": "pending",
         "direction": "debit", "amount_fen": 50, "counterparty": "merchant:POS-1"},
        {"id": 3, "transfer_id": "b" * 32, "at": "2026-01-05T03:00:00+00:00", "code": "withdrawal",
         "kind": "posted", "direction": "debit", "amount_fen": 300, "counterparty": "cash:GSB-001"},
        {"id": 2, "transfer_id": "c" * 32, "at": "2026-01-05T02:00:00+00:00", "code": "pension", "kind": "posted",
         "direction": "credit", "amount_fen": 600, "counterparty": "pension_payer"},
        {"id": 1, "transfer_id": "d" * 32, "at": "2026-01-05T01:00:00+00:00", "code": "transfer",
         "kind": "posted", "direction": "credit", "amount_fen": 400, "counterparty": "621700*********9876"},
    ]
    lines = lines_of(entries, 700)
    assert [x["balance_after_fen"] for x in lines] == [None, 700, 1000, 400]
    assert [x["ref"][:9] for x in lines] == ["20260105-"] * 4 and len({x["ref"] for x in lines}) == 4
    outlets = {"GSB-001": {"code": "GSB-001", "name": "工商银行西湖支行", "name_en": "ICBC Xihu Sub-branch"}}
    words = statement_lines({"lines": lines}, "zh", outlets)
    assert [x["description"] for x in words] == [
        "消费（预授权） · 商户 POS-1", "现金取款 · 工商银行西湖支行", "养老金", "转账 · 621700*********9876"]
    assert describe(entries[1], "en", outlets) == "Cash withdrawal · ICBC Xihu Sub-branch"
    assert describe(entries[1], "en") == "Cash withdrawal · counter at GSB-001"  # an outlet not (yet) known


@pytest.mark.parametrize("kind, words", [("void", "hold released"), ("expire", "hold expired")])
def test_hold_endings_are_named(kind, words):
    entry = {"code": "payment", "kind": kind, "direction": "credit", "amount_fen": 1, "counterparty": ""}
    assert describe(entry, "en") == f"Payment ({words})"


def test_a_slip_pdf_is_titled_and_signed_for_in_the_page_language():
    from sscard.documents.bank_slips import render_slip

    slip = {"ref": "20261202-7KQ2MXR", "code": "withdrawal", "amount_fen": 20050,
            "at": datetime(2026, 12, 2, 1, 30, tzinfo=UTC), "balance_after_fen": 99950, "holder_name": "欧阳明月",
            "pan": "622202*********5317", "bank": {"code": "GSB", "name": "工商银行", "name_en": "ICBC"},
            "outlet": {"code": "GSB-001", "name": "工商银行西湖支行", "name_en": "ICBC Xihu Sub-branch"},
            "teller": "teller_gsb1", "teller_name": "王柜员"}
    english = render_slip(slip, "en", printed_at=datetime(2026, 12, 2, 1, 31, tzinfo=UTC))
    assert english.startswith(b"%PDF") and b"Cash withdrawal slip 20261202-7KQ2MXR" in english
    assert b"/Author (ICBC)" in english
    chinese = render_slip(slip, "zh", printed_at=datetime(2026, 12, 2, 1, 31, tzinfo=UTC))
    assert re.search(rb"/BaseFont\s*/(STSong-Light|[A-Z]{6}\+)", chinese)


def test_a_counterparty_code_holding_markup_is_printed_as_text_never_read_as_markup(tmp_path):
    """Found: a line's words went into reportlab's Paragraph as its markup. An institution whose code (an
    operator types it) holds `<b` stopped the statement PDF with a 500, and `<img src=...>` made reportlab
    open that file of the server (or URL) to draw it."""
    secret = tmp_path / "not-for-the-pdf.png"
    secret.write_bytes(b"not an image")
    st = a_statement(0)
    for code in ("medical:<b", f'medical:<img src="{secret}"/>', "medical:A&B"):
        words = describe({"code": "purchase", "counterparty": f"merchant:{code}"}, "zh")
        assert code in words
        st.lines.append(Line(at=datetime(2026, 1, 6, tzinfo=UTC), description=words, debit_fen=100))
    pdf = render_statement(st, "zh")
    assert pdf.startswith(b"%PDF") and pages_of(pdf) == 1


def test_a_long_name_in_the_statement_head_wraps_within_its_column():
    """Session 24's left-alone list: a very long holder's, bank's or outlet's name ran over the next column and
    off the page: the head's values were plain cells. Each is a paragraph now, wrapped within its column."""
    from reportlab.lib.styles import ParagraphStyle

    from sscard.documents.statements import HEAD_COLUMNS, head_table

    long_name = "阿卜杜热合曼·买买提依明·艾力江·吐尔逊" * 3
    table = head_table([("户名", long_name), ("网点", "工商银行" + "西湖区文三路" * 8 + "支行"), ("期间", "2026")],
                       "Helvetica", ParagraphStyle("b", fontName="Helvetica", fontSize=9, leading=12))
    for row in table._cellvalues:
        for column, cell in zip((1, 3), (row[1], row[3]), strict=True):
            width, height = cell.wrap(HEAD_COLUMNS[column], 1000)
            assert width <= HEAD_COLUMNS[column]
    first = table._cellvalues[0][1]
    first.wrap(HEAD_COLUMNS[1], 1000)
    assert len(first.blPara.lines) > 1  # wrapped, not run over
    st = a_statement(0)
    st.name_masked, st.outlet = long_name, "工商银行" + "西湖区文三路" * 8 + "支行"
    assert render_statement(st, "zh").startswith(b"%PDF")
