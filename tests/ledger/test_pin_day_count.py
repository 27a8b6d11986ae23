"""Docs/RULES.md gap 15: with `bank_pin.lock` = `next_day` wrong PINs count per Asia/Shanghai day (当日连续):
two wrong before midnight and one after do not lock the PIN; three within one day do. With `until_reset`
they count in a row whatever the day."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sscard.core.errors import SscardError
from sscard.services import banking
from tests.support import City

from .helpers import PIN, activated, terminal

BEFORE_MIDNIGHT = datetime(2026, 1, 5, 15, 50, tzinfo=UTC)  # 23:50 in Shanghai


def _wrong(app, atm, pan) -> str:
    with pytest.raises(SscardError) as e:
        banking.withdraw(app, atm, pan, 100, "999999")
    return e.value.code


def test_wrong_pins_before_and_after_shanghai_midnight_do_not_add_up_to_a_lock(city, app, clock):
    card = activated(city, opening_fen=10_000)
    atm = terminal(city, "ATM-GSB-1")
    clock.set(BEFORE_MIDNIGHT)
    assert [_wrong(app, atm, card.pan) for _ in range(2)] == ["wrong_pin", "wrong_pin"]
    clock.advance(minutes=20)  # 00:10 the next Shanghai day
    with pytest.raises(SscardError) as e:
        banking.withdraw(app, atm, card.pan, 100, "999999")
    assert e.value.code == "wrong_pin" and e.value.to_dict()["tries_left"] == 2  # the day's first
    assert [_wrong(app, atm, card.pan)] == ["wrong_pin"]  # the day's second
    assert _wrong(app, atm, card.pan) == "pin_locked"  # the day's third: locked until the next midnight
    with pytest.raises(SscardError) as locked:
        banking.withdraw(app, atm, card.pan, 100, PIN)
    assert locked.value.code == "pin_locked"


def test_wrong_pins_across_midnight_still_count_in_a_row_until_reset(make_app, clock):
    app = make_app(bank_pin={"lock": "until_reset"})
    city = City(app)
    card = activated(city, opening_fen=10_000)
    atm = terminal(city, "ATM-GSB-1")
    clock.set(BEFORE_MIDNIGHT)
    assert [_wrong(app, atm, card.pan) for _ in range(2)] == ["wrong_pin", "wrong_pin"]
    clock.advance(minutes=20)
    assert _wrong(app, atm, card.pan) == "pin_locked"
