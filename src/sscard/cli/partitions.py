"""`sscard partitions ensure|status`: the monthly partitions of the append-only tables (PostgreSQL)."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    from . import console, err_console, load_app

    group = typer.Typer(no_args_is_help=True,
                        help="Monthly partitions of the append-only tables (PostgreSQL; docs/SCALE.md).")
    app.add_typer(group, name="partitions")

    @group.command("ensure")
    def ensure(months_ahead: int = typer.Option(3, "--months-ahead", min=0, max=60,
                                                help="create this month's and the next N months' partitions"),
               months_back: int = typer.Option(0, "--months-back", min=0, max=600,
                                               help="and the N months before (arrears, backfills)")) -> None:
        """Create the coming months' partitions (idempotent; run it daily from cron); a month whose rows are
        already in DEFAULT gets its partition with them moved in. Exit 1 when a month could not be made (a
        lock timeout: the next run retries)."""
        from ..services import partitions

        sscard = load_app()
        try:
            out = partitions.ensure(sscard.db.engine, sscard.clock.today(), months_ahead, months_back=months_back)
        finally:
            sscard.close()
        if sscard.db.engine.dialect.name != "postgresql":
            console.print("SQLite: plain tables, nothing to partition")
            return
        console.print(f"created {len(out['created'])}: {' '.join(out['created']) or '-'}; "
                      f"already there {out['existing']}")
        for name, rows in out["moved"].items():
            err_console.print(f"[yellow]{name}: {rows} rows moved out of DEFAULT (the job had not run ahead)[/yellow]")
        for name, why in out["skipped"].items():
            err_console.print(f"[red]not created {name}: {why}[/red]")
        if out["skipped"]:
            raise typer.Exit(1)

    @group.command("status")
    def status(as_json: bool = typer.Option(False, "--json")) -> None:
        """Each partitioned table's partitions (rows estimated, bytes) and the rows in DEFAULT (exact), told
        apart: older than the table's first month (history loaded before its partitions, arrears: by choice)
        or of a month from the first on (the job did not run ahead); exit 1 when any of the latter."""
        from ..services import partitions

        sscard = load_app()
        try:
            rows = partitions.status(sscard.db.engine)
        finally:
            sscard.close()
        if as_json:
            print(json.dumps(rows, indent=2))
        elif not rows:  # (SQLite printed nothing at all: session 21's operator)
            console.print("SQLite: plain tables, nothing to partition" if sscard.db.engine.dialect.name != "postgresql"
                          else "no partitioned table: run `sscard init`")
        else:
            for t in rows:
                parts = t["partitions"]
                line = (f"{t['table']} by {t['key']}: {len(parts)} partitions, "
                        f"{sum(p['rows_estimated'] for p in parts)} rows (estimated), "
                        f"{sum(p['bytes'] for p in parts) // 1048576} MiB; in DEFAULT {t['in_default']}")
                if t["in_default"] and t["first_month"] is None:
                    line += " (no monthly partition yet: the job has never run)"
                elif t["in_default"]:
                    line += (f" ({t['in_default_history']} older than {t['first_month']}: history, "
                             f"`ensure --months-back N` moves them; {t['in_default_late']} of partitioned months")
                    line += ": the job did not run ahead)" if t["in_default_late"] else ")"
                console.print(line)
        if any(t["in_default_late"] for t in rows):
            raise typer.Exit(1)
