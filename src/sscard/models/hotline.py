"""Tables of the hotline area (owned by that area; see docs/ARCHITECTURE.md)."""

from __future__ import annotations
