"""`operation.jsonable` copies the common shapes directly instead of a JSON round trip; what it returns
must be exactly what the round trip (and so a replay of the stored answer) gives."""

from __future__ import annotations

import enum
import json
from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from sscard.services.operation import json_default, jsonable


class Kind(enum.StrEnum):
    CARD = "card"


def _round_trip(value):
    return json.loads(json.dumps(value, default=json_default, ensure_ascii=False))


leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=8),
    st.datetimes(timezones=st.just(UTC)), st.dates(), st.just(Kind.CARD),
    st.floats(allow_nan=False, allow_infinity=False),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
        st.dictionaries(st.integers(0, 9), inner, max_size=3),  # non-string keys: the round trip's way
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=20,
)


@given(values)
def test_jsonable_is_the_json_round_trip(value):
    fast = jsonable(value)
    assert fast == _round_trip(value)
    assert json.dumps(fast, sort_keys=True, ensure_ascii=False) == json.dumps(
        _round_trip(value), sort_keys=True, ensure_ascii=False)


def test_an_answer_keeps_its_types_as_a_replay_would():
    answer = {"pan": "622202*********0001", "balance_fen": 100, "ok": True, "at": datetime(2026, 1, 5, tzinfo=UTC),
              "day": date(2026, 1, 5), "codes": ("a", "b"), "kind": Kind.CARD, "none": None}
    fast = jsonable(answer)
    assert fast == {"pan": "622202*********0001", "balance_fen": 100, "ok": True, "at": "2026-01-05T00:00:00+00:00",
                    "day": "2026-01-05", "codes": ["a", "b"], "kind": "card", "none": None}
    assert type(fast["kind"]) is str
