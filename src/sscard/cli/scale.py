"""`sscard bench lookups`: cardholder lookups over a demo city's database (docs/SCALE.md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    from . import console, err_console
    from .bench import bench_group

    bench = bench_group(app)

    @bench.command("lookups")
    def lookups(
        database_url: str = typer.Option(..., help="a database `sscard demo` filled (its audit log is written to)"),
        demo_json: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                              help="the report of `sscard demo --json` (else new tokens are issued)"),
        clients: int = typer.Option(8, min=1, max=64),
        seconds: float = typer.Option(20, min=1),
        as_json: bool = typer.Option(False, "--json"),
        client: str = typer.Option("auto", help="auto (wrk when installed), wrk or python"),
        workers: int = typer.Option(1, min=1, max=16, help="the server's uvicorn worker processes"),
        think_ms: float = typer.Option(0, min=0, max=60_000, help="also run with each client pausing ~T ms between "
                                       "its requests (wrk): the latency when the server is not saturated"),
    ) -> None:
        """Citizen ID, card number and PAN lookups through the HTTP API at N clients; exit 1 when p99 >= 5 ms."""
        from ..bench.lookups import load_generator, run

        if client not in ("auto", "wrk", "python"):
            raise typer.BadParameter("auto, wrk or python", param_hint="--client")
        try:
            load_generator(client, think_ms)
        except ValueError as refused:
            raise typer.BadParameter(str(refused), param_hint="--think-ms") from None
        out = run(database_url, demo_json, clients, seconds, progress=lambda m: err_console.print(f"[dim]{m}[/dim]"),
                  client=client, workers=workers, think_ms=think_ms)
        if as_json:
            print(json.dumps(out, indent=2))
        else:
            console.print(f"lookups: {out['tps']:.0f}/s, p50 {out['p50_ms']:.2f} ms, p99 {out['p99_ms']:.2f} ms "
                          f"({out['ok']} answers, {out['errors']} errors, {clients} clients of {out['client']}, "
                          f"{workers} server process(es), loop {out['calibration_ms']} ms)")
            b = out["baseline"]
            console.print(f"baseline: {b['tps']:.0f}/s, p50 {b['p50_ms']:.2f} ms, p99 {b['p99_ms']:.2f} ms "
                          f"({b['baseline']}); lookups against it: {out['tps_ratio']}x the rate, "
                          f"{out['p99_ratio']}x the p99")
            for kind, f in out["by_kind"].items():
                console.print(f"  {kind}: {f['tps']:.0f}/s, p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms")
            if "paced" in out:
                p = out["paced"]
                console.print(f"paced (~{p['think_ms']:g} ms between a client's requests): {p['tps']:.0f}/s, "
                              f"p50 {p['p50_ms']:.2f} ms, p90 {p['p90_ms']:.2f} ms, p99 {p['p99_ms']:.2f} ms, "
                              f"max {p['max_ms']:.2f} ms ({p['errors']} errors)")
            if out["refused"]:
                console.print(f"  refused: {out['refused']}")
            console.print(f"target p99 < 5 ms: {'met' if out['met'] else 'missed'}")
        if not out["met"]:
            raise typer.Exit(1)
