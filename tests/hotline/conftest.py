"""Fixtures for the hotline tests: a cardholder whose query password can be typed on a keypad."""

from __future__ import annotations

import pytest

from sscard.core.roles import Channel
from sscard.services import passwords

QUERY_PASSWORD = "80468213"  # digits only: a phone keypad has no letters


@pytest.fixture
def holder(city):
    """A person with a collected card who set a digits-only query password on the portal."""
    card = city.issued_card("李四")
    actor = city.cardholder(card, Channel.PORTAL)
    initial = card.card_number[-6:]
    passwords.change_query_password(city.app, actor, initial, QUERY_PASSWORD, QUERY_PASSWORD)
    return card
