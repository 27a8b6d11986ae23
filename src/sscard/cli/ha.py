"""`sscard ha up|status|down` (the pg_auto_failover formation) and `sscard drill failover`."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from . import console, err_console


def register(app: typer.Typer) -> None:
    ha = typer.Typer(no_args_is_help=True, help="A replicated PostgreSQL with automatic failover (pg_auto_failover).")
    drill = typer.Typer(no_args_is_help=True, help="Drills: prove the system survives what it must.")
    app.add_typer(ha, name="ha")
    app.add_typer(drill, name="drill")

    def formation(base_port: int | None):
        from ..ha import Formation

        return Formation.default(base_port=base_port)

    def guarded(fn):
        from ..ha import HaError

        try:
            return fn()
        except HaError as exc:
            err_console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None

    @ha.command("up")
    def up(base_port: int | None = typer.Option(None, help="monitor's port; nodes on the next two (default 25430)")
           ) -> None:
        """Create or start the monitor and two nodes (primary, synchronous standby) under var/ha/."""
        f = formation(base_port)
        guarded(lambda: f.up(say=console.print))
        console.print(f"primary {f.primary()}; sscard connects with")
        print(f"  SSCARD_DATABASE_URL='{f.url()}'")  # not wrapped: copied as it is

    @ha.command("status")
    def status(base_port: int | None = None, as_json: bool = typer.Option(False, "--json")) -> None:
        """The monitor's view of the nodes; exit 1 unless one is primary and the other a standby."""
        f = formation(base_port)
        nodes = f.nodes()
        if as_json:
            console.print_json(json.dumps({"nodes": nodes, "healthy": f.healthy(), "url": f.url()}))
        else:
            table = Table(title=f"pg_auto_failover formation ({f.root})")
            for col in ("node", "port", "state", "assigned", "LSN", "timeline", "health", "postmaster"):
                table.add_column(col)
            for n in nodes:
                table.add_row(n["name"], str(n["port"]), n["state"], n["goal"], n["lsn"], str(n["tli"]),
                              "ok" if n["health"] == 1 else str(n["health"]), str(n["pid"] or "-"))
            console.print(table)
            print(f"SSCARD_DATABASE_URL='{f.url()}'")
        if not nodes:
            err_console.print("no formation answers (sscard ha up)")
        if not f.healthy():
            raise typer.Exit(1)

    @ha.command("down")
    def down(base_port: int | None = None,
             remove: bool = typer.Option(False, "--remove", help="also delete var/ha (all its data)")) -> None:
        """Stop the nodes and the monitor."""
        f = formation(base_port)
        guarded(lambda: f.down(remove=remove, say=console.print))

    @drill.command("failover")
    def failover(seconds: float = typer.Option(60, min=5), clients: int = typer.Option(8, min=1),
                 people: int = typer.Option(200, min=20),
                 keep: bool = typer.Option(False, help="keep the drill's files and a formation it created")) -> None:
        """Payments and transfers over HTTP while the primary's postmaster is SIGKILLed; exit 1 when an
        acknowledged payment is lost or one is applied twice."""
        from ..ha.drill import run_drill

        out = guarded(lambda: run_drill(seconds, clients, people, keep=keep, say=console.print))
        kill = "no kill (the drill ended first)" if not out.killed else (
            f"killed {out.killed}, promoted {out.promoted or 'nobody'}"
            + (f" in {out.promoted_at - out.killed_at:.1f} s" if out.promoted_at else ""))
        console.print(f"{kill}; requests {len(out.requests)}, refused {out.refused} {out.refusals or ''}, unanswered {out.unanswered}, "
                      f"refused but in the ledger {out.refused_in_ledger}, ledger balances {out.ledger_ok}, "
                      f"sscard account check exit {out.account_check_rc}, re-joined "
                      + (f"after {out.rejoined_after:.1f} s" if out.rejoined_after is not None else "no"))
        print(f"acknowledged {out.acknowledged}, lost {out.lost}, duplicated {out.duplicated}, "
              f"longest unavailability {out.longest_unavailability:.1f} s", flush=True)
        if not out.ok or not out.killed or out.rejoined_after is None:
            raise typer.Exit(1)
