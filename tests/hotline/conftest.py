"""Fixtures for the hotline tests: a cardholder whose query password can be typed on a keypad."""

from __future__ import annotations

import pytest

from sscard.core.passwords import weak_pin_reason
from sscard.core.roles import Channel
from sscard.services import banking, passwords

QUERY_PASSWORD = "80468213"  # digits only: a phone keypad has no letters


@pytest.fixture
def holder(city):
    """A person with a collected card who set a digits-only query password on the portal."""
    card = city.issued_card("李四")
    actor = city.cardholder(card, Channel.PORTAL)
    initial = card.card_number[-6:]
    passwords.change_query_password(city.app, actor, initial, QUERY_PASSWORD, QUERY_PASSWORD)
    return card


def pin_for(card, avoid: str = "") -> str:
    for candidate in ("739184", "582947", "691358", "847261"):
        if candidate != avoid and weak_pin_reason(candidate, card.citizen_id, card.birth) is None:
            return candidate
    raise AssertionError("no acceptable PIN among the candidates")


@pytest.fixture
def active(city, app):
    """A GSB card whose account is activated (PIN set at the outlet) with 500.00 yuan in it."""
    card = city.issued_card("周七", phone="13912345678")
    pin = pin_for(card)
    teller = city.actor("teller")
    banking.activate(app, teller, card.pan, card.citizen_id, pin, pin, cardholder_in_person=True)
    banking.deposit(app, teller, card.pan, 50_000)
    card.pin = pin
    return card
