"""CSV for spreadsheets: every text cell opens as text, never as a formula (CSV injection).

A cell starting with = + - @ (or a tab or carriage return) is run by Excel and LibreOffice as a formula:
a staff username or an employer's name like `=HYPERLINK(...)` in a downloaded report would act on the
machine of whoever opens it. `Writer` is the one way sscard writes CSV: every cell passes `cell`, which
puts an apostrophe before such text (the spreadsheets' own "this is text" mark). A number (`-12.50`, a
refund in yuan) stays a number."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[-+]?\d+(\.\d+)?")


def cell(value: Any) -> Any:
    """The value as a CSV cell that a spreadsheet will not run."""
    if isinstance(value, str) and value[:1] in _FORMULA_START and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


class Writer:
    """csv.writer whose every row goes through `cell`."""

    def __init__(self, out: Any, **options: Any) -> None:
        self._writer = csv.writer(out, **options)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([cell(value) for value in row])
