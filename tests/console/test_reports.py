"""The supervisor's day report: operations per clerk, fees, cards in production and awaiting collection."""

from __future__ import annotations

import csv
import io

import pytest

from sscard.core.errors import SscardError
from sscard.services import production, replacement, reports


def test_day_report_counts_operations_fees_and_cards(city, app, clock):
    a, b = city.issued_card(), city.issued_card("王五")
    clerk, csup = city.actor("clerk"), city.actor("csup")
    replacement.apply(app, clerk, a.card_number, "damaged", a.citizen_id, payment="cash")
    replacement.apply_waived(app, csup, b.card_number, "damaged", b.citizen_id, "困难群体")
    report = reports.center_day(app, csup)
    assert report["center"]["code"] == "C01"
    by_user = {c["username"]: c for c in report["clerks"]}
    assert by_user["clerk"]["operations"]["replacement.apply"] == 1
    assert by_user["csup"]["operations"]["replacement.apply_waived"] == 1
    assert report["fees"]["collected_fen"] == 2000 and report["fees"]["waived_fen"] == 2000
    assert report["fees"]["receipts"] == 2
    assert report["cards"]["applied"] == 2
    production.start_batch(app, clerk, "C01")
    assert reports.center_day(app, csup)["cards"]["in_production"] == 2
    rows = list(csv.reader(io.StringIO(reports.to_csv(reports.center_day(app, csup), "en"))))
    assert rows[0] == reports.CSV_HEADERS["en"]
    assert ["fees", "", "total", "2", "20.00", ""] in rows
    assert ["cards", "", "In production", "2", "", "in_production"] in rows
    assert ["operations", "clerk (clerk)", "Replacement application", "1", "", "replacement.apply"] in rows
    zh = list(csv.reader(io.StringIO(reports.to_csv(reports.center_day(app, csup), "zh"))))
    assert ["工本费", "", "现金", "1", "20.00", "cash"] in zh and ["卡片", "", "制卡中", "2", "", "in_production"] in zh
    # another day has none of it
    clock.advance(days=1)
    assert reports.center_day(app, csup)["fees"]["receipts"] == 0


def test_day_report_is_for_supervisors_of_that_center(city, app):
    with pytest.raises(SscardError) as err:
        reports.center_day(app, city.actor("clerk"))
    assert err.value.code == "forbidden"
    with pytest.raises(SscardError) as err:
        reports.center_day(app, city.actor("csup"), center_code="C02")
    assert err.value.code == "wrong_center"
    assert reports.center_day(app, city.actor("operator"), center_code="C02")["center"]["code"] == "C02"


def test_a_report_of_a_day_that_is_no_date_is_refused_not_todays(city, app):
    """Session 21's browser probe: ?day=2026-13-45 showed today's report with no word of the typo."""
    from fastapi.testclient import TestClient

    from sscard.composition import create_app
    from sscard.core.roles import Channel
    from sscard.services import websession
    from tests.support import STAFF_PASSWORD

    with TestClient(create_app(app)) as web:
        web.cookies.set("sscard_staff", websession.staff_login(app, "csup", STAFF_PASSWORD, Channel.WINDOW).token)
        for path in ("/console/report", "/console/report.csv"):
            refused = web.get(f"{path}?day=2026-13-45")
            assert refused.status_code == 422 and "请求格式不正确" in refused.text, path
            assert web.get(path).status_code == 200


def test_a_clerks_looks_are_neither_business_nor_refusals_in_the_day_report(city, app):
    """Session 22's browser probe: "小计（另有被拒绝 115 笔）" for a clerk with no refusal at all: every
    `viewed` record (a page that showed a person) was counted as a refusal."""
    from sscard.services import window

    card = city.issued_card()
    clerk = city.actor("clerk")
    for _ in range(3):
        window.person_overview(app, clerk, card.person_id)
    replacement.apply(app, clerk, card.card_number, "damaged", card.citizen_id, payment="cash")
    row = next(c for c in reports.center_day(app, city.actor("csup"))["clerks"] if c["username"] == "clerk")
    assert row["refused"] == 0 and row["operations"]["replacement.apply"] == 1
    assert "window.person" not in row["operations"] and row["total"] == sum(row["operations"].values())


def test_a_staff_name_that_reads_as_a_formula_is_text_in_the_day_report_csv():
    """Found: the day report's CSV wrote the clerk's username and name as they are; a username an operator
    typed as `=HYPERLINK(...)` (or `@SUM(...)`, `+cmd|...`) ran as a formula in the supervisor's spreadsheet.
    Every CSV now goes through core.spreadsheet.Writer; numbers (a negative amount) stay numbers."""
    report = {
        "clerks": [{"username": '=HYPERLINK("http://x.example","a")', "name": "@SUM(1)", "operations": {},
                    "total": 1, "refused": 0}],
        "fees": {"by_method": {"cash": {"count": 1, "amount_fen": -1250}}, "receipts": 1, "collected_fen": -1250},
        "cards": {},
    }
    rows = list(csv.reader(io.StringIO(reports.to_csv(report, "en"))))
    who = {row[1] for row in rows[1:] if row[1]}
    assert who == {"""'=HYPERLINK("http://x.example","a") (@SUM(1))"""}
    assert ["fees", "", "Cash", "1", "-12.50", "cash"] in rows
