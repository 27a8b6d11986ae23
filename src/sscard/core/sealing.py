"""Sealed references: a short value (a PAN) a page carries to a follow-up form without showing it.

Encrypt-then-MAC with HMAC-SHA256 as both the key stream and the tag, under a key the caller derives
(the bank console: the server key and the session, so a reference dies with its session). A reference
that was changed, cut or made under another key opens as `invalid_request`, never as another value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from .errors import SscardError

NONCE_BYTES = 12
TAG_BYTES = 16


def seal(key: bytes, value: str) -> str:
    """An opaque, URL-safe reference to `value` under `key` (a fresh nonce each time)."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    body = nonce + _xor(value.encode(), _stream(key, nonce))
    return base64.urlsafe_b64encode(body + _tag(key, body)).decode().rstrip("=")


def open_sealed(key: bytes, ref: str) -> str:
    """The value behind `seal`'s reference, or `invalid_request` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4))
    except (ValueError, binascii.Error):
        raise SscardError("invalid_request") from None
    body, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
    if len(body) <= NONCE_BYTES or not hmac.compare_digest(tag, _tag(key, body)):
        raise SscardError("invalid_request")
    nonce, data = body[:NONCE_BYTES], body[NONCE_BYTES:]
    try:
        return _xor(data, _stream(key, nonce)).decode()
    except UnicodeDecodeError:
        raise SscardError("invalid_request") from None


def _stream(key: bytes, nonce: bytes) -> bytes:
    """32 bytes of key stream: enough for a PAN (19) or a card number (9); longer values are refused."""
    return hmac.new(key, b"stream" + nonce, hashlib.sha256).digest()


def _tag(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, b"tag" + body, hashlib.sha256).digest()[:TAG_BYTES]


def _xor(data: bytes, stream: bytes) -> bytes:
    if len(data) > len(stream):
        raise ValueError("a sealed value is at most 32 bytes")
    return bytes(a ^ b for a, b in zip(data, stream[:len(data)], strict=True))
