"""Text that reaches a PDF from people and operators (names, merchants', outlets' and banks' names, a statement's
lines) is shown as typed: never read as reportlab markup, never an error, never at the cost of a money figure."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import sscard
from sscard.documents import bank_slips
from sscard.documents.statements import Line, Statement, render_statement
from tests.support import pdf_text

AT = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
BIG = 5_100_282  # 51,002.82
HOSTILE = [
    "x<y",  # an unclosed tag: reportlab's parser refused the whole document
    "<font name='zz'>A&B</font>",  # an unknown font: the document failed
    "<img src='/etc/hostname' width='9' height='9'/>",  # a local file (or a URL) opened into the PDF
    "张" * 300,
    "\u202eاحمد\u202c",
    "😀👨\u200d👩\u200d👧",
    "a\x00b\x1b[31mc\r\nd",
]


def _statement(description: str, name: str = "张*") -> bytes:
    return render_statement(Statement(
        bank_name="工商银行", pan_masked="622202*********1234", name_masked=name, period_from=date(2026, 1, 5),
        period_to=date(2026, 1, 9), opening_fen=0, closing_fen=BIG, status="正常", outlet="GSB-001", printed_at=AT,
        lines=[Line(at=AT, description=description, credit_fen=BIG, balance_fen=BIG)]), "zh")


def test_a_statement_line_holding_markup_is_printed_as_typed_and_opens_nothing(monkeypatch):
    opened: list[str] = []
    import reportlab.lib.utils as rl_utils

    real = rl_utils.open_for_read
    monkeypatch.setattr(rl_utils, "open_for_read", lambda name, *a, **k: opened.append(str(name)) or real(name, *a, **k))
    for value in HOSTILE:
        text = pdf_text(_statement(f"商户 {value} · R1", name=value))
        assert text.count("51,002.82") == 4, (value, text)  # closing, credits, the line's credit and balance
        if "<" in value:  # (drawn order: the head's name and the line's words wrap within their cells)
            shown = re.sub(r"\s+", "", pdf_text(_statement(f"商户 {value} · R1", name=value), "-raw"))
            assert re.sub(r"\s+", "", value) in shown, (value, text)
    assert not [name for name in opened if "hostname" in name], opened
    from sscard.documents.drawing import plain

    assert plain("工商银行\u3000西湖\x00\x1b[1m\r\n😀") == "工商银行\u3000西湖[1m  😀"  # a CJK space stays


def test_a_slip_with_a_hostile_holder_name_keeps_its_amounts():
    for value in HOSTILE:
        slip = bank_slips.render_slip({"ref": "R1", "amount_fen": BIG, "balance_after_fen": BIG, "code": "deposit",
                                       "at": AT.isoformat(), "holder_name": value, "pan": "622202*********1234"},
                                      "zh", printed_at=AT)
        text = pdf_text(slip)
        assert text.count("51,002.82") == 2 and "伍万壹仟零贰元捌角贰分" in text, (value, text)


def test_no_document_makes_a_paragraph_but_through_the_one_that_escapes():
    documents = Path(sscard.__file__).resolve().parent / "documents"
    found = [path.name for path in documents.glob("*.py")
             if path.name != "drawing.py" and re.search(r"\bParagraph\(", path.read_text(encoding="utf-8"))]
    assert not found, found


def test_a_medical_slips_long_bill_line_stays_in_its_column(monkeypatch):
    """A bill line's name was cut at 24 characters, wider than its column in Chinese: it ran over the
    目录内/目录外 column. It is fitted to the column's width, whatever its script."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfgen.canvas import Canvas

    from sscard.documents import medical_slip
    from tests.medical.test_slip import VIEW

    drawn: list[tuple[float, float, str, str, float]] = []
    real = Canvas.drawString

    def record(self, x, y, text, *args, **kwargs):
        drawn.append((x, y, text, self._fontname, self._fontsize))
        return real(self, x, y, text, *args, **kwargs)

    monkeypatch.setattr(Canvas, "drawString", record)
    names = ["阿莫西林胶囊" * 4, "W" * 60, "😀" * 40 + "x<y", "a\x00b" * 50]
    lines = [{"category": "drug", "name": name, "code": "", "amount_fen": 200000, "covered": True} for name in names]
    text = pdf_text(medical_slip.render_slip({**VIEW, "lines": lines}))
    assert len(re.findall(r"(?<!¥)2,000\.00", text)) == len(names), text  # each line's amount (¥: the total)
    heads = {said: x for x, _y, said, _f, _s in drawn if said in ("项目", "医保目录")}
    shown = [(said, font, size) for x, _y, said, font, size in drawn if x == heads["项目"] and said != "项目"]
    assert len(shown) == len(names), shown
    for said, font, size in shown:
        assert heads["项目"] + pdfmetrics.stringWidth(said, font, size) < heads["医保目录"], said
