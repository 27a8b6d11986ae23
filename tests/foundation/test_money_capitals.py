"""Amounts in Chinese financial capitals (大写) as slips and receipts print them: known cases from the
payment-settlement rules, and a reader of capitals that gets every amount back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sscard.core.money import yuan_in_capitals

DIGITS = {c: i for i, c in enumerate("零壹贰叁肆伍陆柒捌玖")}
SMALL = {"拾": 10, "佰": 100, "仟": 1000}


@pytest.mark.parametrize("fen, text", [
    (0, "零元整"),
    (1, "壹分"),
    (50, "伍角"),
    (1000, "壹拾元整"),
    (10000, "壹佰元整"),
    (10005, "壹佰元零伍分"),
    (32504, "叁佰贰拾伍元零肆分"),
    (1640902, "壹万陆仟肆佰零玖元零贰分"),
    (168032, "壹仟陆佰捌拾元叁角贰分"),
    (10000550, "壹拾万零伍元伍角"),
    (10700053, "壹拾万柒仟元伍角叁分"),
    (100000000 * 100, "壹亿元整"),
    (100010000 * 100, "壹亿零壹万元整"),
    (101000000 * 100, "壹亿零壹佰万元整"),
    (100000001 * 100, "壹亿零壹元整"),
    (1001000 * 100, "壹佰万壹仟元整"),
    (2000, "贰拾元整"),
    (-1050, "负壹拾元伍角"),
])
def test_known_amounts_read_as_the_settlement_rules_write_them(fen, text):
    assert yuan_in_capitals(fen) == text


def _read(text: str) -> int:
    sign = -1 if text.startswith("负") else 1
    text = text.removeprefix("负").removesuffix("整")
    whole, _, frac = text.rpartition("元") if "元" in text else ("", "", text)
    total = section = num = 0
    for ch in whole:
        if ch in DIGITS:
            num = DIGITS[ch]
        elif ch in SMALL:
            section += num * SMALL[ch]
            num = 0
        elif ch == "万":
            total += (section + num) * 10_000
            section = num = 0
        elif ch == "亿":
            total = (total + section + num) * 100_000_000
            section = num = 0
    yuan = total + section + num
    fen = 0
    for i, ch in enumerate(frac):
        if ch == "角":
            fen += DIGITS[frac[i - 1]] * 10
        elif ch == "分":
            fen += DIGITS[frac[i - 1]]
    return sign * (yuan * 100 + fen)


@given(st.integers(min_value=-(10**14 - 1), max_value=10**14 - 1))
def test_every_amount_reads_back_to_the_same_fen(fen):
    text = yuan_in_capitals(fen)
    assert _read(text) == fen
    assert "零零" not in text and not text.removesuffix("整").endswith("零")


def test_a_float_is_refused_and_a_trillion_yuan_is_beyond_any_account():
    with pytest.raises(TypeError):
        yuan_in_capitals(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        yuan_in_capitals(10**14)


def test_an_amount_is_said_in_everyday_chinese_words_for_the_hotlines_voice():
    from sscard.core.money import spoken_yuan

    said = {123456: "一千二百三十四元五角六分", 1005: "十元零五分", 10000: "一百元", 0: "零元", 5: "五分",
            110000: "一千一百元", 1000000005: "一千万元零五分", -1250: "负十二元五角", 1010: "十元一角"}
    assert {fen: spoken_yuan(fen) for fen in said} == said
    assert not any(c in spoken_yuan(fen) for fen in range(0, 200_000, 777) for c in "0123456789,.整壹贰拾佰仟")
