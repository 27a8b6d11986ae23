"""`sscard demo` (a demo city with N cardholders) and `sscard sweep` (the nightly lapse sweep)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..core.errors import SscardError


def _payments_rate(text: str) -> str:
    """`--payments`: checked as the history reads it (demo.history.payments_per_ten_months), refused here."""
    from ..demo.history import payments_per_ten_months

    try:
        payments_per_ten_months(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return text


PAYMENTS = typer.Option("2", "--payments", callback=_payments_rate,
                        help="card payments per active account a month, to a tenth (2, 2.5)")


def _write_private(path: Path, text: str) -> None:
    """The report holds demo passwords and tokens: readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def _line(console: Console, text: str = "") -> None:
    console.print(text, soft_wrap=True, markup=False, highlight=False)


def _print_report(console: Console, report: dict) -> None:
    """Plain lines (not tables): tokens and numbers must copy and paste whole."""
    _line(console, "Staff logins (username / role / name / where / demo password / API token):")
    for u in report["staff"]:
        _line(console, f"  {u['username']:<12} {u['role']:<18} {u['name']:<6} {u['where'] or '-':<8} "
                       f"{u['password']}  {u['api_token']}")
    _line(console, "Terminals (code / kind / where / API token, shown once):")
    for t in report["terminals"]:
        _line(console, f"  {t['code']:<12} {t['kind']:<9} {t['where'] or '-':<10} {t['token']}")
    _line(console, "Sample cardholders (query password, SS password and bank PIN as the demo set them):")
    for p in report["sample_cardholders"]:
        _line(console, f"  {p['name']} ({p['sex']}, {p['birth_date']}) {p['citizen_id']}: {p['label']}")
        _line(console, f"    card {p['card_number']} [{p['ss_status']}]  {p['bank']} PAN {p['pan']} "
                       f"[{p['bank_status']}]")
        extra = f"  bank PIN {p['bank_pin']}" if p.get("bank_pin") else ""
        _line(console, f"    query password {p['query_password']}  SS password {p['ss_password']}{extra}")
        if p.get("old_card_number"):
            _line(console, f"    old card {p['old_card_number']} [{p['old_card_ss_status']}]  old PAN "
                           f"{p['old_pan']} [{p['old_bank_status']}]")


def _print_summary(console: Console, report: dict) -> None:
    counts = report["counts"]
    console.print(f"people: {counts['persons']}  cards by SS state: {counts['ss_status']}")
    console.print(f"bank accounts by state: {counts['bank_status']}")
    for area, out in report["areas"].items():
        console.print(f"{area}: {out}")
    console.print(f"seconds: {report['seconds']}")
    console.print(f"cpu seconds: {report['cpu_seconds']}")


def register(app: typer.Typer) -> None:
    from . import console, err_console, fail, load_app

    @app.command()
    def demo(
        people: int = typer.Option(2000, "--people", min=0, help="how many cardholders"),
        seed: int = typer.Option(1, "--seed", help="same seed, same people, card numbers and PANs"),
        json_file: Path | None = typer.Option(None, "--json", help="write logins, tokens and samples here"),
        if_empty: bool = typer.Option(False, "--if-empty", help="do nothing when the database has people"),
        chunk: int = typer.Option(5000, "--chunk", min=100, help="people per insert transaction"),
        history_months: int = typer.Option(0, "--history-months", min=0, max=120,
                                           help="add N months of payments, pensions, contributions and their "
                                                "audit records (docs/SCALE.md)"),
        payments: str = PAYMENTS,
        insured_share: float = typer.Option(0.5, "--insured-share", min=0, max=1,
                                            help="share of working-age people with monthly contributions"),
    ) -> None:
        """Fill a demo city: banks, outlets, centers, staff of every role, terminals, N cardholders."""
        from ..demo.run import DemoRefused, run_demo

        sscard = load_app()
        progress = Progress(TextColumn("cardholders"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=err_console, transient=False)
        task = None

        def on_start(total: int) -> None:
            nonlocal task
            progress.start()
            task = progress.add_task("people", total=total)

        def on_chunk(n: int) -> None:
            progress.advance(task, n)

        try:
            report = run_demo(sscard, people, seed, if_empty=if_empty, chunk_size=chunk, on_start=on_start,
                              on_chunk=on_chunk, notes=lambda line: err_console.print(line),
                              history_months=history_months,
                              history_rates={"payments": payments, "insured_share": insured_share})
        except DemoRefused as exc:
            err_console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        except SscardError as exc:
            fail(exc)
        finally:
            if task is not None:
                progress.stop()
            sscard.close()
        if report.get("skipped"):
            console.print(f"the database already has {report['existing_people']} people: demo left it alone")
            return
        if json_file:
            _write_private(json_file, json.dumps(report, ensure_ascii=False, indent=2))
            _print_summary(console, report)
            console.print(f"staff logins, terminal tokens and sample cardholders: {json_file}")
        else:
            _print_report(console, report)
            _print_summary(console, report)

    @app.command("demo-history")
    def demo_history(
        months: int = typer.Option(12, "--months", min=1, max=120),
        payments: str = PAYMENTS,
        insured_share: float = typer.Option(0.5, "--insured-share", min=0, max=1),
        seed: int = typer.Option(1, "--seed"),
    ) -> None:
        """Add N months of payments, pensions and contributions (with their audit records) to a demo city that
        `sscard demo` already filled (docs/SCALE.md); the ledger stays balanced."""
        import random
        import time

        from ..demo import history
        from ..demo.run import bulk_engine

        sscard = load_app()
        started = time.perf_counter()
        try:
            out = history.populate(bulk_engine(sscard), random.Random(f"sscard-demo:{seed}:history"),
                                   sscard.clock.today(), months=months,
                                   rates={"payments": payments, "insured_share": insured_share})
            sscard.db.analyze_filled()
        finally:
            sscard.close()
        console.print(f"history: {out} ({time.perf_counter() - started:.1f} s)")

    @app.command()
    def sweep() -> None:
        """The nightly job, as the system: record lapsed temporary SS losses and oral bank losses, seal the
        ready cards left uncollected for card.uncollected_seal_days, and remove the stored answers of
        Idempotency-Keys older than the policy's api.idempotency_keep_days."""
        from ..core.roles import SYSTEM_ACTOR
        from ..services import cards, loss, retention

        sscard = load_app()
        try:
            out = loss.sweep_lapsed(sscard, SYSTEM_ACTOR)
            # RULES §3 (docs/RULES.md R3.2): recorded, not only computed, so the window's queue of cards to
            # hand over and its day report stop counting them (session 25: nothing ever ran this)
            sealed = cards.seal_uncollected(sscard, SYSTEM_ACTOR)["sealed"]
            pruned = retention.prune_all(sscard, SYSTEM_ACTOR)
            keep_days = sscard.policy.api.idempotency_keep_days
        except SscardError as exc:
            fail(exc)
        finally:
            sscard.close()
        console.print(f"lapsed temporary SS losses recorded: {out['ss_cards']}; "
                      f"lapsed oral bank losses recorded: {out['bank_accounts']}; "
                      f"uncollected cards sealed: {sealed}; "
                      f"idempotency records older than {keep_days} days removed: {pruned}")
