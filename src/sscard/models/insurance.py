"""Tables of the insurance area (owned by that area; see docs/ARCHITECTURE.md)."""

from __future__ import annotations
