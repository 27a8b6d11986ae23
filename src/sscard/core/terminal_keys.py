"""Terminal keys for the ISO 8583 channel: a PIN key (TPK) and a MAC key (TAK) per terminal.

Why derived and not stored: a terminal's keys are computed from the server's key with the terminal's code
and a purpose (HMAC-SHA256, a label per use), so no key is ever written to the database or a log, and a
new server process needs nothing but its key file to check a terminal's MACs and open its PIN blocks. The
one place a key leaves the server is the key ceremony (`sscard iso8583 keys`), which prints each key as two
random components (XOR) and its check value, to be loaded into the terminal under dual control.

PINs travel as ISO 9564-1 format 0 PIN blocks enciphered under the TPK (double-length TDES, ECB); messages
carry an ISO 9797-1 algorithm 3 MAC ("retail MAC", padding method 2) under the TAK. psec does the
cryptography; this module only names the keys and says how they are used.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import warnings

from cryptography.utils import CryptographyDeprecationWarning
from psec import des, mac, pinblock

# psec builds its ciphers with cryptography's TripleDES, which cryptography marks "decrepit": double-length
# TDES is still what ISO 9564 PIN blocks and retail MACs of the installed terminals use (constraints.txt pins
# the cryptography that has it). The warning is said once here, not at every PIN block.
warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning, module="psec")

KEY_PURPOSES = ("tpk", "tak")
MAC_LENGTH = 8  # bytes (16 hex characters in field 64)


def derive(server_key: bytes, terminal_code: str, purpose: str) -> bytes:
    """The terminal's double-length TDES key for `purpose` ("tpk" or "tak"), with odd parity."""
    if purpose not in KEY_PURPOSES:
        raise ValueError(f"unknown terminal key purpose {purpose!r}")
    label = b"sscard iso8583 terminal key\x00" + purpose.encode() + b"\x00" + terminal_code.encode()
    raw = hmac.new(server_key, label, hashlib.sha256).digest()[:16]
    if raw[:8] == raw[8:]:  # a double-length key with equal halves is single DES: never (2^-64), but refused
        raise ValueError("degenerate terminal key")
    return des.adjust_key_parity(raw)


def check_value(key: bytes) -> str:
    """The key check value (KCV): the first 3 bytes of zeros enciphered, as terminals and HSMs print it."""
    return des.generate_kcv(key, 3).hex().upper()


def components(key: bytes) -> tuple[str, str]:
    """Two random components whose XOR is the key, for two custodians (hex, upper case)."""
    first = des.adjust_key_parity(secrets.token_bytes(len(key)))
    second = bytes(a ^ b for a, b in zip(key, first, strict=True))
    return first.hex().upper(), second.hex().upper()


def pin_block(tpk: bytes, pin: str, pan: str) -> str:
    """A terminal's side: the PIN as an enciphered ISO 9564 format 0 block (16 hex characters)."""
    return des.encrypt_tdes_ecb(tpk, pinblock.encode_pinblock_iso_0(pin, pan)).hex().upper()


def pin_from_block(tpk: bytes, block_hex: str, pan: str) -> str | None:
    """The PIN inside an enciphered format 0 block, or None when the block is not one (wrong key, wrong
    PAN, wrong format): a PIN that cannot be read is a wrong PIN, never an error that says why."""
    try:
        clear = des.decrypt_tdes_ecb(tpk, bytes.fromhex(block_hex))
        return pinblock.decode_pinblock_iso_0(clear, pan)
    except ValueError:
        return None


def message_mac(tak: bytes, data: bytes) -> str:
    """The MAC of a message's bytes (hex, upper case)."""
    return mac.generate_retail_mac(tak[:8], tak[8:], data, 2, MAC_LENGTH).hex().upper()


def mac_matches(tak: bytes, data: bytes, given: str) -> bool:
    return hmac.compare_digest(message_mac(tak, data), given.upper())
