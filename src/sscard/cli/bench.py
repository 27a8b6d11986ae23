"""`sscard bench`: every workload against the baseline in one run (sscard.bench); `bench ledger` and
`bench medical` are the older commands, now parts of the same run."""

from __future__ import annotations

import json
import os

import typer


def bench_group(app: typer.Typer) -> typer.Typer:
    """The `sscard bench` group, for other areas' benchmarks (`bench restart`): made by register() here."""
    for group in app.registered_groups:
        if group.name == "bench" and group.typer_instance is not None:
            return group.typer_instance
    register(app)
    return bench_group(app)


def register(app: typer.Typer) -> None:
    from ..bench import CITY_PEOPLE
    from . import console, err_console

    bench = typer.Typer(invoke_without_command=True, no_args_is_help=False,
                        help="Benchmarks on scratch databases: sscard's workloads against pgbench (or the "
                             "plain sqlite3 loop) in the same run.")
    app.add_typer(bench, name="bench")
    # the options the workloads' commands share (typer reads them, never changes them)
    DB = typer.Option("sqlite", help="sqlite | postgres")
    CLIENTS = typer.Option(8, min=1, max=64)
    SECONDS = typer.Option(10.0, min=1.0)
    PG_URL = typer.Option("", help="PostgreSQL server")
    AS_JSON = typer.Option(False, "--json")
    CLIENT = typer.Option("python", help="what drives (c) and (f): python (threads: every earlier run's figures), "
                                         "wrk (a C client, as the baseline's; docs/PERFORMANCE.md, session 14) or "
                                         "auto (wrk when installed)")

    def progress(message: str) -> None:
        err_console.print(f"[dim]{message}[/dim]")

    def pg(url: str) -> str:
        from ..bench.common import DEFAULT_PG

        return url or os.environ.get("SSCARD_BENCH_POSTGRES_URL") or DEFAULT_PG

    def show(report: dict, as_json: bool) -> None:
        from ..bench.runner import text

        if as_json:
            print(json.dumps(report))  # stdout: the JSON only; progress went to stderr
            return
        for line in text(report):
            console.print(line, highlight=False, soft_wrap=True)

    def run(db: str, clients: int, seconds: float, only: str, pg_url: str, **kw) -> dict:
        from ..bench.runner import WORKLOADS, run

        if db not in ("sqlite", "postgres"):
            raise typer.BadParameter("--db is sqlite or postgres")
        if kw.get("client", "python") not in ("auto", "wrk", "python"):
            raise typer.BadParameter("--client is auto, wrk or python")
        chosen = only.replace(",", "").replace(" ", "")
        if not chosen or set(chosen) - set(WORKLOADS):
            raise typer.BadParameter(f"--only takes workloads among {','.join(WORKLOADS)}")
        return run(db, clients, seconds, only=chosen, pg_url=pg(pg_url), progress=progress, **kw)

    @bench.callback()
    def everything(
        ctx: typer.Context,
        db: str = DB,
        clients: int = CLIENTS,
        seconds: float = typer.Option(10.0, min=1.0, help="per workload"),
        only: str = typer.Option("a,b,c,d,e,f", help="a baseline, b service transfers, c HTTP payments, "
                                                     "d one per transaction, e medical, f counter mix; "
                                                     "g ISO 8583 payments (only when named)"),
        pg_url: str = typer.Option("", help="PostgreSQL server (scratch databases are created on it); default "
                                            "SSCARD_BENCH_POSTGRES_URL or the local server"),
        accounts: int = typer.Option(20, min=2, help="cardholders of (b), (c), (d)"),
        people: int = typer.Option(CITY_PEOPLE, min=100, help="demo cardholders of (e), (f) (enough for (f)'s "
                                                              "replacements to last the run)"),
        scale: int = typer.Option(10, min=1, help="TPC-B scale of the baseline (pgbench -s)"),
        client: str = CLIENT,
        as_json: bool = typer.Option(False, "--json", help="print the report as JSON only (progress on stderr)"),
    ) -> None:
        """All workloads in one run: tps, p50, p99 and the ratio of each to the baseline (a)."""
        if ctx.invoked_subcommand is not None:
            return
        show(run(db, clients, seconds, only, pg_url, accounts=accounts, people=people, scale=scale, client=client),
             as_json)

    @bench.command("ledger")
    def bench_ledger(
        db: str = DB,
        clients: int = CLIENTS,
        seconds: float = SECONDS,
        pg_url: str = PG_URL,
        accounts: int = typer.Option(20, min=2, help="cardholders created through the services"),
        workers: int = typer.Option(1, min=1, max=16, help="uvicorn worker processes for (c)"),
        client: str = CLIENT,
        as_json: bool = AS_JSON,
    ) -> None:
        """The ledger's part: (a) baseline, (b), (c), (d)."""
        show(run(db, clients, seconds, "abcd", pg_url, accounts=accounts, workers=workers, client=client), as_json)

    @bench.command("medical")
    def bench_medical(
        db: str = DB,
        clients: int = CLIENTS,
        seconds: float = SECONDS,
        pg_url: str = PG_URL,
        people: int = typer.Option(CITY_PEOPLE, min=100, help="demo cardholders in the scratch database"),
        as_json: bool = AS_JSON,
    ) -> None:
        """Medical settlements over HTTP (e), against the baseline (a)."""
        show(run(db, clients, seconds, "ae", pg_url, people=people), as_json)
