"""The server-rendered SVG chart of pension contributions per year."""

import re
import xml.etree.ElementTree as ET

from sscard.web.portal import _nice_step, pension_chart_svg

POINTS = [
    {"year": 2023, "employer_fen": 1_152_000, "personal_fen": 576_000, "total_fen": 1_728_000, "months": 12},
    {"year": 2024, "employer_fen": 976_000, "personal_fen": 488_000, "total_fen": 1_464_000, "months": 10},
]
NS = "{http://www.w3.org/2000/svg}"


def test_the_chart_is_an_accessible_svg_with_a_bar_pair_and_labels_per_year():
    svg = str(pension_chart_svg(POINTS, "zh"))
    root = ET.fromstring(svg)
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "pension-chart-title pension-chart-desc"
    assert root.find(f"{NS}title").text == "每年养老保险缴费"
    desc = root.find(f"{NS}desc").text
    assert "2023年：合计17,280.00元（个人5,760.00元，单位11,520.00元，12个月）" in desc
    assert "2024年：合计14,640.00元" in desc
    bars = [r for r in root.iter(f"{NS}rect") if r.get("class") in ("personal", "employer")]
    assert len(bars) == 2 * 2 + 2  # two stacked bars per year + the two legend keys
    labels = [t.text for t in root.iter(f"{NS}text")]
    assert "2023" in labels and "2024" in labels and "1.7万" in labels and "个人缴纳" in labels
    heights = {r.get("class"): float(r.get("height")) for r in bars[:2]}
    assert heights["employer"] == 2 * heights["personal"]  # the employer pays twice the personal share


def test_english_labels_and_no_chart_without_data():
    svg = str(pension_chart_svg(POINTS, "en"))
    assert "<title id=\"pension-chart-title\">Pension contributions per year</title>" in svg
    assert "2023: 17,280.00 yuan (personal 5,760.00, employer 11,520.00, 12 months)" in svg
    assert re.search(r">17\.3k<", svg)
    assert str(pension_chart_svg([], "zh")) == ""


def test_gridline_steps_are_round_numbers():
    assert _nice_step(1_728_000) == 500_000
    assert _nice_step(400) == 100
    assert _nice_step(0) == 1


def _labels(svg: str, cls: str) -> list[str]:
    root = ET.fromstring(svg)
    return [t.text for t in root.iter(f"{NS}text") if t.get("class", "").startswith(cls)]


def test_every_label_of_a_chart_is_in_one_unit_and_gridlines_read_their_true_value():
    """Issue 17: a small year read 3568 beside 4.5万; and a 1.5万 gridline rounded to 2万 would mislead."""
    small_and_large = [
        {"year": 2021, "employer_fen": 237_900, "personal_fen": 118_900, "total_fen": 356_800, "months": 1},
        {"year": 2022, "employer_fen": 2_880_000, "personal_fen": 1_440_000, "total_fen": 4_320_000, "months": 12},
    ]
    zh = str(pension_chart_svg(small_and_large, "zh"))
    assert _labels(zh, "value") == ["0.4万", "4.3万"]
    assert _labels(zh, "axis")[:5] == ["0", "1.5万", "3.0万", "4.5万", "6.0万"]
    en = str(pension_chart_svg(small_and_large, "en"))
    assert _labels(en, "value") == ["3.6k", "43.2k"]
    assert _labels(en, "axis")[:5] == ["0", "15k", "30k", "45k", "60k"]
    only_small = [dict(small_and_large[0])]
    assert _labels(str(pension_chart_svg(only_small, "zh")), "value") == ["3,568"]  # all in yuan when small
