"""The ISO 8583 tests' gateway: served on a free port from a thread of its own, and terminals loaded with the
keys the ceremony prints, as real ones are (test_gateway.py, test_reversal.py)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest

from sscard.core import terminal_keys
from sscard.core.roles import CLI_OPERATOR
from sscard.iso8583 import server
from sscard.iso8583.client import Terminal
from sscard.services import staff
from tests.ledger.helpers import add_terminal


@contextlib.contextmanager
def serving(app, **kwargs):
    """The gateway on a free port, on an event loop of its own in a thread; stopped at the end."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict = {}

    async def run() -> None:
        box["server"] = await server.start(app, "127.0.0.1", 0, **kwargs)
        box["port"] = box["server"].sockets[0].getsockname()[1]
        started.set()
        async with box["server"]:
            try:
                await box["server"].serve_forever()
            except asyncio.CancelledError:
                pass
        handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in handlers:  # the terminals' connections, still open when the test ends
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    thread = threading.Thread(target=lambda: loop.run_until_complete(run()), daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield box["port"]
    finally:
        loop.call_soon_threadsafe(box["server"].close)
        thread.join(5)


@pytest.fixture
def gateway(city):
    with serving(city.app) as port:
        yield port


def terminal_of(city, port: int, code: str) -> Terminal:
    """A terminal loaded with the keys the ceremony prints (components XORed back), as a real one is."""
    out = staff.issue_terminal_keys(city.app, CLI_OPERATOR, code)
    keys = {}
    for purpose, key in out["keys"].items():
        first, second = (bytes.fromhex(c) for c in key["components"])
        keys[purpose] = bytes(a ^ b for a, b in zip(first, second, strict=True))
        assert terminal_keys.check_value(keys[purpose]) == key["kcv"]
    return Terminal(code, keys["tpk"], keys["tak"], port=port, clock=city.app.clock.now)


@pytest.fixture
def atm(city, gateway):
    add_terminal(city, "ATM00001", "atm", outlet_code="GSB-001")
    term = terminal_of(city, gateway, "ATM00001")
    yield term
    term.close()


@pytest.fixture
def pos(city, gateway):
    term = terminal_of(city, gateway, "POS-1")
    yield term
    term.close()
