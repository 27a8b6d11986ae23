"""The pages' form parsing layer: a posted form's text, for every page of the consoles and the portal.

Free text typed into a form (an attorney document's reference, a reason, a name a clerk types) keeps the
same rule as the API's request bodies (core.text, `api.schemas.clean_text`): no control, bidirectional or
invisible character. The rule is declared here once, for every field of every form, not field by field:
a field holding such a character is refused `invalid_text` when the page reads it, which is inside the
page's own handling of refusals, so the refusal is shown where that page shows its others, tied to the field
(pages.Refusal names it; sscard.js marks it aria-invalid, describes it by the message and focuses it), and
nothing is done. Read again after that (to show the form once more), the field gives its text without the
refused characters."""

from __future__ import annotations

from collections.abc import Iterable

from ..core.errors import SscardError
from ..core.text import unreadable, without_bad_chars


class Form(dict[str, str]):
    """A posted form (field -> text): reading a field with a refused character raises `invalid_text` naming
    it, once; later reads give the text without those characters."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()):
        super().__init__(pairs)
        self._refused = {k for k, v in self.items() if unreadable(v)}

    def _check(self, key: object) -> None:
        if key in self._refused:
            assert isinstance(key, str)
            self._refused.discard(key)
            super().__setitem__(key, without_bad_chars(super().__getitem__(key)))
            raise SscardError("invalid_text", field=key)

    def __getitem__(self, key: str) -> str:
        self._check(key)
        return super().__getitem__(key)

    def get(self, key: str, default=None):  # type: ignore[override]
        self._check(key)
        return super().get(key, default)

    def kept(self, key: str, default: str = "") -> str:
        """The field's text to show again after a refusal: never refused itself (without the characters)."""
        value = super().get(key, default)
        return without_bad_chars(value) if key in self._refused else value
