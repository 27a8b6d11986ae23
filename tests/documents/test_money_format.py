"""Money is shown to people one way, by one function (core.money.format_yuan): 51,002.82, never 51002.82
(the UX tester's finding: the statement PDF said 51002.82 where the page said 51,002.82). This walks the
channels' and documents' sources for any other fen-to-yuan formatting, and the documents themselves."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import sscard
from sscard.core.money import fen_to_yuan, format_yuan
from sscard.documents import bank_slips, medical_slip, receipts
from sscard.documents.statements import Line, Statement, render_statement
from sscard.services import window
from sscard.web.pages import templates
from tests.console.helpers import ready_replacement
from tests.medical.test_slip import VIEW
from tests.support import pdf_text

SRC = Path(sscard.__file__).resolve().parent
BIG = 5_100_282  # 51,002.82
BARE = re.compile(r"(?<![\d,.])\d{4,}\.\d\d(?!\d)")  # 51002.82: four or more digits with no separator


def test_format_yuan_is_the_one_way_people_read_money():
    assert format_yuan(BIG) == "51,002.82" and format_yuan(-5) == "-0.05" and format_yuan(None) == ""
    assert format_yuan(123_456_789_00, "¥") == "¥123,456,789.00" and format_yuan(-100_000, "¥") == "-¥1,000.00"
    assert fen_to_yuan(BIG) == "51002.82"  # machines only: CSV cells, the API's strings


def test_no_channel_or_document_formats_fen_as_yuan_another_way():
    """Pages, PDFs, hotline answers, the CLI: no fen_to_yuan, no hand-made thousands or cents, and the
    templates' money filters are format_yuan itself."""
    own = {"ha", "scale.py", "ops.py", "audit.py"}  # operator timings and disk sizes, not money
    found = []
    for folder in ("web", "documents", "hotline", "cli"):
        for path in (SRC / folder).rglob("*.py"):
            if path.name in own:
                continue
            text = path.read_text(encoding="utf-8")
            for pattern in (r"fen_to_yuan", r"divmod\([^)]*,\s*100\)", r"\{whole:,\}", r"/\s*100\b", r":\.2f"):
                found += [f"{path.relative_to(SRC)}: {pattern}" for _ in re.finditer(pattern, text)]
        for path in (SRC / folder).rglob("*.html"):
            if "fen_to_yuan" in path.read_text(encoding="utf-8"):
                found.append(str(path.relative_to(SRC)))
    assert not found, found
    assert templates.env.filters["yuan"] is format_yuan and templates.env.filters["bank_amount"] is format_yuan



def test_every_document_shows_money_with_thousands_separators(app, city, tmp_path):
    at = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
    statement = render_statement(Statement(
        bank_name="工商银行", pan_masked="622202*********1234", name_masked="张*", period_from=date(2026, 1, 5),
        period_to=date(2026, 1, 9), opening_fen=0, closing_fen=BIG, status="正常", outlet="GSB-001", printed_at=at,
        lines=[Line(at=at, description="现金存款", credit_fen=BIG, balance_fen=BIG)]), "zh")
    slip = bank_slips.render_slip({"ref": "R1", "amount_fen": BIG, "balance_after_fen": BIG, "code": "deposit",
                                   "at": at.isoformat(), "holder_name": "张三", "pan": "622202*********1234"},
                                  "zh", printed_at=at)
    card = city.issued_card()
    applied = ready_replacement(city, card)
    fee = window.holder_fee_receipt(app, city.actor("clerk"), applied["receipt_no"])
    receipt = receipts.fee_receipt_pdf({**fee, "due_fen": BIG, "amount_fen": BIG})
    medical = medical_slip.render_slip({**VIEW, "split": {**VIEW["split"], "total_fen": BIG}})
    for name, pdf in (("statement", statement), ("slip", slip), ("fee receipt", receipt), ("medical slip", medical)):
        text = pdf_text(pdf)
        assert "51,002.82" in text, name
        assert not BARE.findall(text), (name, BARE.findall(text))
