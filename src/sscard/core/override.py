"""A supervisor's override (a freeze or its lifting, a longer activation window, a clerk's action reversed)
says why, for the audit record an auditor reads: one rule for every such operation and channel."""

from __future__ import annotations

from .errors import SscardError

REASON_LENGTH = 200


def require_reason(reason: str) -> str:
    """The reason as recorded (trimmed, at most REASON_LENGTH characters); `reason_required` when blank."""
    if not (reason or "").strip():
        raise SscardError("reason_required")
    return reason.strip()[:REASON_LENGTH]
