"""The audit chain's hashing: the canonical bytes of an audit record and the link to the one before.

Pure (no SQL): the same record read from SQLite or PostgreSQL gives the same bytes, so a chain sealed on
one verifies wherever the rows are read. Canonical form: a compact JSON array of every column in a fixed
order; datetimes as UTC ISO strings with microseconds and a Z; None stays null (distinct from "");
the JSON detail with sorted keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

# Every column of audit_records that the record was written with (not the bank columns, which the
# database derives from them), and its seal_seq (from its seal, audit_seals). Not the seal's prev_hash
# and hash: the link covers them (the previous hash is hashed in front, the record's own is the result).
CHAIN_COLUMNS = (
    "id", "seal_seq", "at", "actor_kind", "actor_id", "actor_role", "on_behalf_of", "attorney_id", "channel",
    "place", "operation", "object_type", "object_id", "person_id", "before", "after", "result",
    "idempotency_key", "detail",
)
GENESIS = "0" * 64  # the prev_hash of the first sealed record


_AT = CHAIN_COLUMNS.index("at")
_values = itemgetter(*CHAIN_COLUMNS)
_dumps = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _utc(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime in an audit record")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_values(values: Sequence[Any]) -> bytes:
    """The bytes a record's hash covers, from its values in CHAIN_COLUMNS order."""
    values = list(values)
    values[_AT] = _utc(values[_AT])  # the one datetime column; JSON detail holds strings already
    return _dumps(values).encode()


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's hash covers."""
    return canonical_values(_values(record))


def link_values(prev_hash: str, values: Sequence[Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\x00" + canonical_values(values)).hexdigest()


def link(prev_hash: str, record: Mapping[str, Any]) -> str:
    """hash = sha256(prev_hash || canonical bytes of the record), hex."""
    return link_values(prev_hash, _values(record))
