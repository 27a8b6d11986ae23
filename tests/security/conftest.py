"""Fixtures of the security tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def api(client):
    """The app over HTTP (tests/conftest.py's `client`), under the name the probe tests call it."""
    return client
