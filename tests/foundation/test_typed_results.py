"""Results read by more than one channel are TypedDicts: a key a channel reads that the service never
returns is a type error, found before a page prints the wrong thing (an English statement once printed
the Chinese bank name: it read `bank["name_en"]`, which banks_and_places did not return)."""

from __future__ import annotations

import pytest

mypy_api = pytest.importorskip("mypy.api")

CHANNEL = """
from sscard.services.app import App
from sscard.services.staff import banks_and_places

def english_bank_name(app: App, code: str) -> str:
    for bank in banks_and_places(app)["banks"]:
        if bank["code"] == code:
            return bank[{key!r}]
    return ""
"""


def _check(tmp_path, key: str) -> tuple[str, int]:
    channel = tmp_path / "channel.py"
    channel.write_text(CHANNEL.format(key=key), encoding="utf-8")
    out, _err, status = mypy_api.run(["--no-error-summary", "--follow-imports=silent", str(channel)])
    return out, status


def test_a_channel_reading_a_key_the_service_returns_type_checks(tmp_path):
    out, status = _check(tmp_path, "name_en")
    assert status == 0, out


def test_a_channel_reading_a_key_the_service_never_returns_is_a_type_error(tmp_path):
    out, status = _check(tmp_path, "english_name")
    assert status == 1 and 'has no key "english_name"' in out, out
