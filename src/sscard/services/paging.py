"""Cursor pages: one more row is read than the page holds, so a page says there is a next one only when
there is (a last page holding exactly `limit` rows answered a cursor, and the client's next request an
empty page: session 23's integrator). Every paginated answer with a `next_before_id` goes through here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def one_more(limit: int) -> int:
    """How many rows to read for a page of `limit`: one more, to know whether a next page exists."""
    return limit + 1


def cut(rows: Sequence[T], limit: int, cursor: Callable[[T], Any]) -> tuple[list[T], Any]:
    """The page (at most `limit` of `rows`, read with `one_more(limit)`) and the cursor of the next page:
    the last row's (`cursor`), or None when no row is left after this page."""
    page = list(rows[:limit])
    return page, (cursor(page[-1]) if len(rows) > limit and page else None)
