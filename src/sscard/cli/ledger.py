"""`sscard account statement PAN` and `sscard account check` (the benchmark is `sscard bench`: sscard.bench)."""

from __future__ import annotations

import json

import typer

from ..core.errors import SscardError

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"
BENCH_PIN = "147258"


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

    @account_app.command("check")
    def check() -> None:
        """Recompute every ledger account from its transfers; exit 1 if anything does not add up."""
        from ..core.roles import CLI_OPERATOR
        from ..services import banking

        out = banking.ledger_check(load_app(), CLI_OPERATOR)
        console.print_json(json.dumps(out))
        if not out["ok"]:
            raise typer.Exit(1)
