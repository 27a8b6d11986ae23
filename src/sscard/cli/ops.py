"""`sscard backup FILE`, `sscard restore FILE` and `sscard bench restart` (docs/OPERATIONS.md)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

import typer
from sqlalchemy.exc import OperationalError

from ..core.errors import SscardError
from ..core.identifiers import ascii_digits, mask_text

SSCARD = [sys.executable, "-c", "from sscard.cli import main; main()"]
CHEAP_ROUTE = "/api/v1/identifiers/check?kind=citizen_id&value=11010519491231002X"  # no database, no login


def register(app: typer.Typer) -> None:
    from . import console, err_console, fail, load_app
    from .bench import bench_group

    bench = bench_group(app)

    @app.command("backup")
    def backup_cmd(file: Path) -> None:
        """Back up the configured database to FILE (PostgreSQL: pg_dump custom format; SQLite: the
        online backup API), consistent while the server runs."""
        from .. import backup

        try:
            out = backup.backup(load_app().settings.database_url, file)
        except SscardError as exc:
            fail(exc)
            return
        except OperationalError as exc:
            _unreachable(exc)
        console.print_json(json.dumps(out))

    @app.command("restore")
    def restore_cmd(
        file: Path,
        database_url: str | None = typer.Option(None, help="restore here instead of SSCARD_DATABASE_URL"),
    ) -> None:
        """Restore FILE into an EMPTY database (refused otherwise), then check the ledger (and the audit
        chain); exit 1 when a check fails."""
        from .. import backup
        from ..config import Settings, SettingsError, parse_database_url
        from ..services.app import build_app

        try:
            settings = Settings.from_env()
            url = parse_database_url("--database-url", database_url) if database_url else settings.database_url
        except SettingsError as exc:
            err_console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        try:
            restored = backup.restore(url, file)
        except SscardError as exc:
            fail(exc)
            return
        except OperationalError as exc:
            _unreachable(exc)
        try:
            app = build_app(Settings(database_url=url, secret_key=settings.secret_key, var_dir=settings.var_dir))
        except Exception as exc:  # noqa: BLE001  a bad policy file: the data is restored, say what is wrong
            err_console.print(f"[red]restored, but the checks could not run: {exc}[/red]")
            raise typer.Exit(2) from None
        try:
            checks = backup.checks_after_restore(app)
        finally:
            app.close()
        console.print_json(json.dumps({"restored": restored, "checks": checks}, default=str))
        if not all(result.get("ok") for result in checks.values()):
            err_console.print("[red]a check failed on the restored database[/red]")
            raise typer.Exit(1)

    @bench.command("restart")
    def bench_restart(
        times: int = typer.Option(3, min=1, max=20, help="kill and restart this many times"),
        workers: int = typer.Option(1, min=1, max=16),
        database_url: str | None = typer.Option(None, help="default: a scratch SQLite database"),
    ) -> None:
        """Start `sscard serve`, SIGKILL it (its whole process group, workers included) and time the restart
        from the new process's start to its first 200 (printed, not asserted)."""
        cpu: list[float] = []
        figures = run_restart_bench(times, workers, database_url, cpu=cpu,
                                    progress=lambda m: console.print(f"[dim]{m}[/dim]"))
        for i, seconds in enumerate(figures, 1):
            console.print(f"restart {i}: first answer after {seconds:.2f} s ({cpu[i - 1]:.2f} CPU s)")
        ordered = sorted(figures)
        console.print(f"restart to first answer: median {ordered[len(ordered) // 2]:.2f} s, worst {ordered[-1]:.2f} s "
                      f"(goal < 2 s), workers {workers}, load average {os.getloadavg()[0]:.1f}; CPU seconds the "
                      f"server's processes used until then: median {sorted(cpu)[len(cpu) // 2]:.2f} (about the "
                      "wall time on an idle machine)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pgid: int) -> float:
    """User + system CPU of the processes in a process group so far (Linux /proc; 0 elsewhere)."""
    total = 0
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if ascii_digits(entry):
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:  # pgrp
                total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def run_restart_bench(times: int, workers: int, database_url: str | None, *, cpu: list[float] | None = None,
                      progress=lambda m: None) -> list[float]:
    """Seconds from each restart's process start to its first 200; `cpu` gets the CPU seconds it used."""
    import httpx

    scratch = Path(tempfile.mkdtemp(prefix="sscard-restart-"))
    env = dict(os.environ)
    env.setdefault("SSCARD_VAR_DIR", str(scratch))
    env["SSCARD_DATABASE_URL"] = database_url or f"sqlite:///{scratch / 'restart.db'}"
    if not database_url:
        subprocess.run([*SSCARD, "init"], env=env, check=True, capture_output=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}{CHEAP_ROUTE}"
    cmd = [*SSCARD, "serve", "--port", str(port), "--workers", str(workers)]

    def start() -> tuple[subprocess.Popen, float]:
        began = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = began + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"sscard serve exited with {proc.returncode}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    if cpu is not None:
                        cpu.append(_cpu_seconds(proc.pid))
                    return proc, time.monotonic() - began
            except httpx.HTTPError:
                time.sleep(0.01)
        raise RuntimeError("sscard serve did not answer within 120 s")

    def kill(proc: subprocess.Popen) -> None:
        os.killpg(proc.pid, signal.SIGKILL)  # the supervisor and its workers, as a crashed host would
        proc.wait(timeout=10)

    proc, first = start()
    if cpu is not None:
        cpu.clear()  # the cold start's figure is not a restart's
    progress(f"cold start: {first:.2f} s")
    figures = []
    try:
        for _ in range(times):
            kill(proc)
            proc, seconds = start()
            figures.append(seconds)
    finally:
        if proc.poll() is None:
            kill(proc)
        shutil.rmtree(scratch, ignore_errors=True)
    return figures


def _unreachable(exc: OperationalError) -> NoReturn:
    """The database could not be reached (it does not exist: `createdb` forgotten; the server is down): one
    line saying so, not the 500 lines of a traceback an operator had to read to the end (session 21)."""
    from . import err_console

    first = (str(exc.orig) if exc.orig is not None else str(exc)).strip().splitlines()[0]
    err_console.print(f"[red]cannot reach the database[/red]: {mask_text(first)}")
    raise typer.Exit(1)
