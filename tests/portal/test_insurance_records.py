"""Contribution records by type and month, totals per year, pension per year, CSV; own records only."""

import csv
import io

import pytest

from sscard.core.errors import SscardError
from sscard.core.roles import SYSTEM_ACTOR
from sscard.services import insurance


def _record(app, person_id, month, base_fen, employer=("91330106MA2H000001", "杭州西湖科技有限公司"), types=None):
    return insurance.record_month(app, SYSTEM_ACTOR, person_id, month, employer[0], employer[1], base_fen,
                                  types=types)


def test_a_recorded_month_has_all_five_types_with_amounts_from_the_base(city, app):
    card = city.issued_card()
    out = _record(app, card.person_id, "2025-03", 800_000)
    by_type = {r["insurance_type"]: r for r in out["records"]}
    assert set(by_type) == set(insurance.INSURANCE_TYPES)
    assert by_type["pension"] == {"insurance_type": "pension", "employer_fen": 128_000, "personal_fen": 64_000}
    assert by_type["work_injury"]["personal_fen"] == 0
    assert by_type["maternity"]["personal_fen"] == 0
    assert by_type["unemployment"] == {"insurance_type": "unemployment", "employer_fen": 4_000, "personal_fen": 4_000}


def test_amounts_round_half_up_to_the_fen_in_integers():
    assert insurance.share_of(12_345, 50) == 62  # 61.725 -> 62
    assert insurance.share_of(10_001, 800) == 800  # 800.08 -> 800
    assert all(isinstance(v, int) for v in insurance.amounts_for("medical", 654_321))


def test_records_list_by_month_and_type_with_totals_per_year(city, app):
    card = city.issued_card()
    holder = city.cardholder(card)
    for month in ("2024-11", "2024-12", "2025-01", "2025-02"):
        _record(app, card.person_id, month, 600_000)
    _record(app, card.person_id, "2025-03", 700_000, employer=("91330102MA2H000002", "上城贸易有限公司"),
            types=["pension", "medical"])
    data = insurance.contribution_records(app, holder, card.person_id)
    assert data["years"] == [2025, 2024]
    assert [r["month"] for r in data["rows"][:2]] == ["2025-03", "2025-03"]
    assert [r["insurance_type"] for r in data["rows"][:2]] == ["pension", "medical"]
    assert data["rows"][0]["employer_name"] == "上城贸易有限公司"
    assert len(data["rows"]) == 4 * 5 + 2
    y2025, y2024 = data["totals"]
    assert y2024["year"] == 2024 and y2024["months"] == 2
    assert y2024["by_type"]["pension"] == {"employer_fen": 192_000, "personal_fen": 96_000, "total_fen": 288_000,
                                           "months": 2}
    assert y2025["months"] == 3
    assert y2025["by_type"]["pension"]["total_fen"] == 2 * 144_000 + 168_000
    assert y2025["by_type"]["unemployment"]["months"] == 2
    assert y2025["total_fen"] == sum(r["total_fen"] for r in data["rows"] if r["year"] == 2025)
    assert [p["year"] for p in data["pension_by_year"]] == [2024, 2025]
    only = insurance.contribution_records(app, holder, card.person_id, year=2025, insurance_type="pension")
    assert [r["month"] for r in only["rows"]] == ["2025-03", "2025-02", "2025-01"]
    assert len(only["totals"]) == 2  # totals always cover every year on record


def test_a_month_cannot_be_recorded_twice_for_the_same_employer(city, app):
    card = city.issued_card()
    _record(app, card.person_id, "2025-05", 500_000)
    with pytest.raises(SscardError) as err:
        _record(app, card.person_id, "2025-05", 500_000, types=["pension"])
    assert err.value.code == "already_exists"


@pytest.mark.parametrize("month", ["2025-13", "2025-1", "25-01", ""])
def test_bad_months_types_and_bases_are_refused(city, app, month):
    card = city.issued_card()
    with pytest.raises(SscardError) as err:
        _record(app, card.person_id, month, 500_000)
    assert err.value.code == "invalid_month"
    with pytest.raises(SscardError) as err:
        _record(app, card.person_id, "2025-01", 500_000, types=["pension", "lottery"])
    assert err.value.code == "invalid_insurance_type"
    with pytest.raises(SscardError) as err:
        _record(app, card.person_id, "2025-01", 0)
    assert err.value.code == "invalid_amount"


def test_a_cardholder_cannot_read_another_persons_records(city, app):
    mine = city.issued_card("李四")
    other = city.issued_card("王五")
    _record(app, other.person_id, "2025-01", 500_000)
    with pytest.raises(SscardError) as err:
        insurance.contribution_records(app, city.cardholder(mine), other.person_id)
    assert err.value.code == "person_not_found"  # as an id of nobody (session 22)
    with pytest.raises(SscardError) as err:
        insurance.record_month(app, city.cardholder(mine), mine.person_id, "2025-01", "X1", "x", 500_000)
    assert err.value.code == "forbidden"


def test_csv_has_a_header_and_one_line_per_record_in_yuan(city, app):
    card = city.issued_card()
    _record(app, card.person_id, "2025-01", 812_345, employer=("91330106MA2H000009", "=cmd|'/c calc'!A1"),
            types=["pension", "work_injury"])
    text = insurance.contributions_csv(app, city.cardholder(card), card.person_id)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["月份", "险种", "缴费单位"]
    assert rows[1] == ["2025-01", "养老保险", "'=cmd|'/c calc'!A1", "91330106MA2H000009", "8123.45", "1299.75",
                       "649.88", "1949.63"]
    assert rows[2][1] == "工伤保险" and rows[2][6] == "0.00"
    english = list(csv.reader(io.StringIO(insurance.contributions_csv(app, city.cardholder(card), card.person_id,
                                                                       lang="en"))))
    assert english[0][0] == "Month" and english[1][1] == "Pension"


def test_own_card_is_chosen_by_the_server_for_the_signed_in_cardholder_only(city, app):
    card = city.issued_card()
    other = city.issued_card("王五")
    out = insurance.own_card(app, city.cardholder(card), "loss")
    assert out == {"card_number": card.card_number, "ss_status": "normal"}
    assert insurance.own_card(app, city.cardholder(other), "password")["card_number"] == other.card_number
    with pytest.raises(SscardError) as err:
        insurance.own_card(app, city.actor("clerk"), "loss")
    assert err.value.code == "forbidden"
    person_id, _cid = city.new_person("赵六")
    from sscard.services.passwords import cardholder_actor

    with pytest.raises(SscardError) as err:
        insurance.own_card(app, cardholder_actor(person_id, "赵六", "portal"), "loss")
    assert err.value.code == "no_issued_card"
