"""The counter's pages say the city's policies, not the defaults (session 25's rules probe: the bank console
said "60 days" for the activation window and its extension and "3 wrong PINs" whatever sscard.toml set, while
the services, the portal and the receipts followed the settings)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from sscard.composition import create_app
from tests.bank_console.conftest import Counter, text_of
from tests.support import City


def test_the_counters_pages_say_the_policys_windows_and_pin_tries(make_app):
    app = make_app(activation={"window_days": 30, "max_extension_days": 20}, bank_pin={"max_failures": 4})
    City(app)
    for lang, expected in (
        ("zh", {"/bank": ["领卡后30天内"], "/bank/withdraw": ["连续输错4次"],
                "/bank/supervisor": ["最多20天", "1-20天，不填为20天"]}),
        ("en", {"/bank": ["Within 30 days of collection"], "/bank/withdraw": ["4 wrong PINs in a row"],
                "/bank/supervisor": ["up to 20 days", "1-20, empty means 20"]}),
    ):
        with TestClient(create_app(app)) as client:
            client.cookies.set("lang", lang)
            teller, supervisor = Counter(client, "teller"), None
            for path, words in expected.items():
                if path == "/bank/supervisor":
                    client.cookies.clear()
                    client.cookies.set("lang", lang)
                    supervisor = Counter(client, "bsup")
                page = (supervisor or teller).get(path)
                assert page.status_code == 200, (path, page.status_code)
                text = text_of(page.text)
                for word in words:
                    assert word in text, (lang, path, word)
                assert "60" not in text.replace("2026", ""), (lang, path)
