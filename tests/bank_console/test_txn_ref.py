"""Short transaction references (core.txn_ref): readable, stable, checked, found again when typed loosely."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from sscard.core.txn_ref import ALPHABET, normalize, short_ref

LATE_EVENING_UTC = datetime(2026, 12, 1, 17, 30, tzinfo=UTC)  # 01:30 on 2 December in Shanghai


def test_a_reference_is_the_shanghai_date_and_seven_unambiguous_characters():
    ref = short_ref("0123456789abcdef0123456789abcdef", LATE_EVENING_UTC)
    assert re.fullmatch(r"20261202-[0-9A-HJKMNP-TV-Z]{7}", ref)
    assert not set(ref[9:]) & set("ILOU")
    assert short_ref("0123456789abcdef0123456789abcdef", LATE_EVENING_UTC) == ref  # derived, so stable
    assert short_ref("0123456789abcdef0123456789abcdef", date(2026, 12, 2)) == ref


def test_ids_that_are_not_uuid_hex_still_get_a_reference():
    assert normalize(short_ref("POS-1:receipt-77", LATE_EVENING_UTC)) is not None


@given(st.uuids(version=4), st.integers(min_value=9, max_value=15), st.sampled_from(ALPHABET))
def test_any_single_mistyped_character_fails_the_check(uid: uuid.UUID, position: int, other: str):
    ref = short_ref(uid.hex, LATE_EVENING_UTC)
    if ref[position] == other:
        return
    typo = ref[:position] + other + ref[position + 1:]
    assert normalize(typo) is None


@given(st.uuids(version=4))
def test_a_reference_typed_loosely_reads_back_as_printed(uid: uuid.UUID):
    ref = short_ref(uid.hex, LATE_EVENING_UTC)
    loose = (ref[:8] + " " + ref[9:12] + "-" + ref[12:]).lower().replace("0", "o").replace("1", "l")
    assert normalize(loose) == ref


def test_swapping_two_neighbours_is_caught():
    ref = short_ref("fedcba9876543210fedcba9876543210", LATE_EVENING_UTC)
    body = ref[9:]
    for i in range(len(body) - 1):
        if body[i] != body[i + 1]:
            swapped = body[:i] + body[i + 1] + body[i] + body[i + 2:]
            assert normalize(ref[:9] + swapped) is None, swapped


def test_nonsense_and_impossible_dates_are_not_references():
    for text in ("", "hello", "20261302-ABCDEFG", "2026120-ABCDEFGH", "20261202-ABCDEF"):
        assert normalize(text) is None
