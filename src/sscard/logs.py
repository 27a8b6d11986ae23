"""Logging that never shows a citizen ID, PAN or card number in clear (RULES §2 masking)."""

from __future__ import annotations

import logging

from .core.identifiers import mask_text


class MaskingFilter(logging.Filter):
    """Rewrites each record's message with every identifier masked, whatever logger wrote it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  (a broken record is still logged as is)
            return True
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_masking() -> None:
    """Attach the filter to every handler of the root and uvicorn loggers (idempotent)."""
    for name in ("", "uvicorn", "uvicorn.access", "uvicorn.error", "sscard"):
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if not any(isinstance(f, MaskingFilter) for f in handler.filters):
                handler.addFilter(MaskingFilter())
        if not any(isinstance(f, MaskingFilter) for f in logger.filters):
            logger.addFilter(MaskingFilter())
