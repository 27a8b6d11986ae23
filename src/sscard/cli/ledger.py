"""`sscard account statement PAN`, `sscard account pension FILE --period YYYY-MM` and `sscard account check` (the benchmark is `sscard bench`: sscard.bench)."""

from __future__ import annotations

import csv
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import typer

from ..core.errors import SscardError

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"
BENCH_PIN = "147258"


PERIOD = re.compile(r"20\d\d-(0[1-9]|1[0-2])")
PENSION_CALLERS = 8  # lines in flight at once: the writer commits them in groups


def credit_pension_file(app: Any, file: Path, period: str) -> dict[str, Any]:
    """Credit every line of a pension payer's CSV (pan, amount in yuan) for `period`, as the system's batch
    job. A malformed line is refused by number and credits nothing; the others go on.

    Each line is keyed by the month and the PAN as the ledger reads it (`validate_pan`: full-width digits and
    spaces normalised), so the same card written two ways is one key (session 26: `６２２２…` and `6222…` on two
    lines, or in two runs, credited the month twice). A PAN on more than one line of the file is refused on each
    of its well-formed lines (`pan_repeated`): which amount is right is the payer's to say, and the second line of the same
    amount was reported credited while its key's stored answer credited nothing. A file that is not UTF-8 (or
    not CSV) is refused whole, naming the line, before anything is credited."""
    from ..core.identifiers import validate_pan
    from ..core.money import yuan_to_fen
    from ..core.roles import SYSTEM_ACTOR
    from ..services import banking, batching

    if not PERIOD.fullmatch(period):
        raise typer.BadParameter("the period is a month, YYYY-MM", param_hint="--period")
    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise typer.BadParameter(f"line {line} is not UTF-8 (save the file as UTF-8; nothing was credited)",
                                 param_hint="FILE") from None
    try:
        rows = [(n, row) for n, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1)
                if row and any(c.strip() for c in row)]
    except csv.Error as exc:
        raise typer.BadParameter(f"not a CSV file of pan,amount lines ({exc}; nothing was credited)",
                                 param_hint="FILE") from None
    if rows and rows[0][1][0].strip().lower() == "pan":
        rows = rows[1:]  # a header line
    def read(row: list[str]) -> tuple[str, int] | SscardError:
        """A line's PAN as the ledger reads it and its amount in fen, or why it is refused."""
        try:
            if len(row) != 2:
                raise SscardError("invalid_request")
            return validate_pan(row[0]), yuan_to_fen(row[1].strip())
        except SscardError as exc:
            return exc

    read_lines = {n: read(row) for n, row in rows}  # each line read once
    lines_of: dict[str, list[int]] = {}  # each PAN of a well-formed line: its lines
    for n, found in read_lines.items():
        if not isinstance(found, SscardError):
            lines_of.setdefault(found[0], []).append(n)
    repeated = {n for lines in lines_of.values() if len(lines) > 1 for n in lines}

    redirected: dict[int, str] = {}  # a line whose old card's PAN was credited to its replacement's account

    def one(numbered: tuple[int, list[str]]) -> tuple[int, int, str | None]:
        n, _row = numbered
        try:
            found = read_lines[n]
            if isinstance(found, SscardError):
                raise found
            pan, amount = found
            if n in repeated:
                raise SscardError("pan_repeated")
            out = batching.call(app, banking.credit_pension, SYSTEM_ACTOR, pan, amount, period,
                                idempotency_key=f"pension:{period}:{pan}")
            if out.get("redirected_to"):
                redirected[n] = out["redirected_to"]
        except SscardError as exc:
            return n, 0, exc.code
        return n, amount, None

    with ThreadPoolExecutor(PENSION_CALLERS) as pool:
        done = list(pool.map(one, rows))
    return {"period": period, "lines": len(rows), "credited": sum(1 for _n, _f, code in done if code is None),
            "credited_fen": sum(fen for _n, fen, code in done if code is None),
            "refused": [{"line": n, "code": code} for n, _f, code in done if code is not None],
            # docs/RULES.md R10.11: the old card's PAN, credited to the account behind its replacement card
            "redirected": [{"line": n, "to": redirected[n]} for n in sorted(redirected)]}


def register(app: typer.Typer) -> None:
    from . import console, fail, load_app

    account_app = typer.Typer(no_args_is_help=True, help="Bank accounts: statements and the ledger check.")
    app.add_typer(account_app, name="account")

    @account_app.command("statement")
    def statement(pan: str, limit: int = typer.Option(20, min=1, max=200), before_id: int | None = None,
                  as_json: bool = typer.Option(False, "--json")) -> None:
        """Balance and history of the account behind a PAN, newest first (page with --before-id)."""
        from rich.table import Table

        from ..core.roles import CLI_OPERATOR
        from ..services import banking

        try:
            out = banking.statement(load_app(), CLI_OPERATOR, pan, limit=limit, before_id=before_id)
        except SscardError as exc:
            fail(exc)
            return
        if as_json:
            console.print_json(json.dumps(out, default=str, ensure_ascii=False))
            return
        console.print(f"{out['pan']}  status {out['status']}  balance {out['balance']}  available {out['available']}")
        table = Table()
        for col in ("id", "at", "code", "kind", "in/out", "amount", "counterparty", "ref"):
            table.add_column(col)
        for e in out["entries"]:
            table.add_row(str(e["id"]), str(e["at"])[:19], e["code"], e["kind"],
                          "out" if e["direction"] == "debit" else "in", e["amount"], e["counterparty"], e["ref"])
        console.print(table)
        if out["next_before_id"]:
            console.print(f"more: --before-id {out['next_before_id']}")

    @account_app.command("pension")
    def pension(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV: pan,amount (yuan)"),
                period: str = typer.Option(..., help="the month paid, YYYY-MM"),
                as_json: bool = typer.Option(False, "--json")) -> None:
        """The pension payer's monthly file: each line's amount credited to its card's account, as the batch
        job (the only way money enters from the pension payer: no person's credential may). Each line is
        keyed by month and PAN, so a file run again credits nothing twice; exit 1 if any line was refused."""
        out = credit_pension_file(load_app(), file, period)
        if as_json:
            console.print_json(json.dumps(out, ensure_ascii=False))
        else:
            console.print(f"credited {out['credited']} lines, {out['credited_fen']} fen (a line an earlier run of this "
                          f"file credited is counted, never credited twice); refused {len(out['refused'])}")
            for line in out["refused"]:
                console.print(f"  line {line['line']}: {line['code']}")
            if out["redirected"]:
                console.print(f"redirected {len(out['redirected'])} (the card was replaced: credited to the "
                              f"replacement card's account; update the payer's file)")
            for line in out["redirected"]:
                console.print(f"  line {line['line']}: to {line['to']}")
        if out["refused"]:
            raise typer.Exit(1)

    @account_app.command("check")
    def check() -> None:
        """Recompute every ledger account from its transfers; exit 1 if anything does not add up."""
        from ..core.roles import CLI_OPERATOR
        from ..services import banking

        out = banking.ledger_check(load_app(), CLI_OPERATOR)
        console.print_json(json.dumps(out))
        if not out["ok"]:
            raise typer.Exit(1)
