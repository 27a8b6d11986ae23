"""A terminal's side of the gateway, for the simulator (`sscard iso8583 send`) and the tests: it builds
messages with pyiso8583, enciphers the PIN block and MACs under the terminal's keys (psec), and frames them
as the server reads them. Loaded with the two keys the key ceremony printed, as a real terminal is."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..core import terminal_keys
from .gateway import decode, encode

PROCESSING_CODES = {"purchase": "000000", "withdraw": "011000", "deposit": "210010", "balance": "311000"}


@dataclass
class Terminal:
    code: str
    tpk: bytes
    tak: bytes
    host: str = "127.0.0.1"
    port: int = 8583
    stan: int = 0
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))  # field 7's time (UTC)
    _sock: socket.socket | None = field(default=None, repr=False)

    def message(self, kind: str, pan: str, amount_fen: int | None = None, pin: str | None = None, *,
                stan: int | None = None, at: datetime | None = None) -> dict[str, Any]:
        """A 0200 for `kind` (purchase, withdraw, deposit, balance), numbered with the next STAN."""
        if stan is None:
            self.stan = self.stan % 999_999 + 1
            stan = self.stan
        at = (at or self.clock()).astimezone(UTC)
        doc: dict[str, Any] = {"t": "0200", "2": pan, "3": PROCESSING_CODES[kind], "7": at.strftime("%m%d%H%M%S"),
                               "11": f"{stan:06d}", "12": at.strftime("%H%M%S"), "13": at.strftime("%m%d"),
                               "22": "051", "41": self.code.ljust(8), "49": "156"}
        if amount_fen is not None:
            doc["4"] = f"{amount_fen:012d}"
        if pin is not None:
            doc["52"] = terminal_keys.pin_block(self.tpk, pin, pan)
        return doc

    def reversal(self, original: dict[str, Any], *, dispensed_fen: int | None = None, advice: bool = False,
                 stan: int | None = None, at: datetime | None = None) -> dict[str, Any]:
        """A 0400 (or, `advice`, a 0420) reversing `original` (the 0200 this terminal sent): its PAN,
        processing code and amount, field 90 naming its MTI, STAN and field 7, and with `dispensed_fen` field
        95 (what was really dispensed: actual amount, settlement amount, two zero fees). A new STAN and time:
        send the same message again as the repeat (0401/0421)."""
        if stan is None:
            self.stan = self.stan % 999_999 + 1
            stan = self.stan
        at = (at or self.clock()).astimezone(UTC)
        doc: dict[str, Any] = {"t": "0420" if advice else "0400", "3": original["3"], "4": original["4"],
                               "7": at.strftime("%m%d%H%M%S"), "11": f"{stan:06d}", "41": self.code.ljust(8),
                               "49": original.get("49", "156"),
                               "90": f"{original['t']}{original['11']}{original['7']}" + "0" * 22}
        if original.get("2"):
            doc["2"] = original["2"]
        if dispensed_fen is not None:
            doc["95"] = f"{dispensed_fen:012d}{dispensed_fen:012d}C00000000C00000000"
        return doc

    def sign_on(self) -> dict[str, Any]:
        self.stan = self.stan % 999_999 + 1
        return self.send({"t": "0800", "7": self.clock().astimezone(UTC).strftime("%m%d%H%M%S"), "11": f"{self.stan:06d}",
                          "41": self.code.ljust(8), "70": "001"})

    def send(self, doc: dict[str, Any], *, mac: bool = True) -> dict[str, Any]:
        """Send one message, MACed under the terminal's key, and return the decoded answer (its MAC checked:
        an answer whose MAC fails raises, as a terminal would refuse to dispense on it)."""
        return self.send_raw(encode(doc, self.tak if mac else None))

    def send_raw(self, raw: bytes) -> dict[str, Any]:
        if self._sock is None:
            self._sock = socket.create_connection((self.host, self.port), timeout=30)
        self._sock.sendall(struct.pack(">H", len(raw)) + raw)
        (length,) = struct.unpack(">H", _read(self._sock, 2))
        answer_raw = _read(self._sock, length)
        doc = decode(answer_raw)
        if any(k in doc for k in ("64", "128")) and not terminal_keys.mac_matches(self.tak, answer_raw[:-16],
                                                                               doc.get("128", doc.get("64", ""))):
            raise ValueError("the host's answer has a wrong MAC")
        return doc

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the gateway closed the connection")
        data += chunk
    return data


def balances(doc: dict[str, Any]) -> dict[str, int]:
    """Field 54 read back: {"01": ledger fen, "02": available fen}."""
    text, out = str(doc.get("54", "")), {}
    for i in range(0, len(text) - 19, 20):
        part = text[i:i + 20]
        out[part[2:4]] = int(part[8:]) * (-1 if part[7] == "D" else 1)
    return out
