"""The `sscard` command line: init, demo, serve, policy show, user add, and each area's commands."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum

import typer
from rich.console import Console
from rich.table import Table

from ..config import SettingsError
from ..core.errors import SscardError
from ..core.policy import PolicyError, load_policy
from ..core.roles import CLI_OPERATOR

app = typer.Typer(no_args_is_help=True, add_completion=False, help="sscard: the financial social security card")
policy_app = typer.Typer(no_args_is_help=True, help="City policies (RULES.md).")
user_app = typer.Typer(no_args_is_help=True, help="Staff users and API tokens.")
id_app = typer.Typer(no_args_is_help=True, help="Check identifiers.")
app.add_typer(policy_app, name="policy")
app.add_typer(user_app, name="user")
app.add_typer(id_app, name="id")
console = Console()
err_console = Console(stderr=True)
# what stops a command before it starts, in one line naming the bad policy or setting (exit 2)
STARTUP_ERRORS = (PolicyError, SettingsError)


def load_app():
    """The app for one command, closed when the command's process ends (its writer's connection is ended
    before the interpreter's, which otherwise printed psycopg's 'error ignored terminating Pipeline')."""
    import atexit

    from ..services.app import build_app

    try:
        app = build_app()
    except STARTUP_ERRORS as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    atexit.register(app.close)
    return app


def say_refusal(exc: SscardError) -> None:
    """A refusal in one line: its code and its message in the operator's language (LANG)."""
    lang = "en" if os.environ.get("LANG", "").startswith("en") else "zh"
    err_console.print(f"[red]{exc.code}[/red]: {exc.message(lang)}")


def fail(exc: SscardError) -> None:
    say_refusal(exc)
    raise typer.Exit(1)


def read_secret(label: str, path: str | None = None, *, confirm: bool = False) -> str:
    """A secret asked for without echo (twice with `confirm`), or read from the first line of a file or, for
    '-', of standard input: never from the command line, where it shows in `ps` and the shell's history (no
    command's parameter is named like a secret unless it names a file: tests/foundation/test_cli.py)."""
    if path:
        try:
            if path == "-":
                line = sys.stdin.readline()
            else:
                with open(path, encoding="utf-8") as handle:
                    line = handle.readline()
        except OSError as exc:
            err_console.print(f"[red]cannot read {label.lower()} from {path}[/red]: {exc.strerror}")
            raise typer.Exit(2) from None
        return line.rstrip("\r\n")
    return str(typer.prompt(label, hide_input=True, confirmation_prompt=confirm))


@app.command()
def init() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    sscard = load_app()
    sscard.db.migrate()
    console.print(f"database ready: {sscard.db.engine.url.render_as_string(hide_password=True)}")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    worker_timeout: int = typer.Option(
        60, help="seconds a worker may take to answer the supervisor's health check before it is killed"),
) -> None:
    """Serve the web app and the API."""
    import uvicorn

    from ..logs import uvicorn_log_config

    if workers == 1:
        import gc

        gc.disable()  # until sscard.asgi has built the app in this process (it freezes and re-enables it)
        settings = load_app().settings  # validate policy and settings before binding the port (imported next)
    else:
        # the supervisor serves nothing: check settings and policy without importing the app (its workers
        # do, and every second the supervisor spends here delays them)
        from ..config import SUPERVISOR_ENV, Settings
        from ..metrics import prepare_multiprocess

        try:
            settings = Settings.from_env()
            load_policy()
        except STARTUP_ERRORS as exc:
            err_console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        prepare_multiprocess(settings.var_dir)  # /metrics adds up the workers' figures
        os.environ[SUPERVISOR_ENV] = str(os.getpid())  # workers end with it (sscard.asgi.end_with_supervisor)
    # proxy_headers off: uvicorn would otherwise take X-Forwarded-For from any 127.0.0.1 peer as the client;
    # which proxies to believe is SSCARD_TRUSTED_PROXIES' decision alone (api/client_address.py).
    # uvicorn's supervisor kills a worker that does not answer its health check within 5 s (its default),
    # and a worker still importing on a loaded machine often did not: killed and restarted, again and
    # again (7-31 s before --workers 2 answered). A hung worker is still killed, after worker_timeout.
    uvicorn.run("sscard.asgi:application", host=host, port=port, workers=workers, log_level="info",
                log_config=uvicorn_log_config(settings.log_format), timeout_worker_healthcheck=worker_timeout,
                proxy_headers=False)


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json")) -> None:
    """Check the deployment: the database answers, and keeps answered writes across a power cut
    (SQLite's synchronous level; PostgreSQL's synchronous_commit and fsync). Exit 1 when it does not."""
    sscard = load_app()
    try:
        found = sscard.db.durability()
    finally:
        sscard.close()
    found = {"database": sscard.db.engine.url.render_as_string(hide_password=True), **found}
    if as_json:
        console.print_json(json.dumps(found))
    else:
        for name, value in found.items():
            if name != "durable":
                console.print(f"{name}: {value}")
        console.print("durable: yes" if found["durable"] else
                      "[bold red]durable: NO: a crash or power cut can take back writes already answered as "
                      "done[/bold red]")
    if not found["durable"]:
        raise typer.Exit(1)


@policy_app.command("show")
def policy_show(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every policy setting with its value, its default and what it means."""
    try:
        policy = load_policy()
    except PolicyError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    rows = policy.describe()
    if as_json:
        console.print_json(json.dumps({name: value for name, value, _d, _t in rows}))
        return
    table = Table(title="sscard policy")
    for col in ("setting", "value", "default", "meaning"):
        table.add_column(col)
    for name, value, default, text in rows:
        style = "bold yellow" if value != default else ""
        table.add_row(name, str(value), str(default), text, style=style)
    console.print(table)


@user_app.command("add")
def user_add(
    username: str,
    role: str = typer.Option(..., help="clerk | center_supervisor | teller | bank_supervisor | operator"),
    password_file: str | None = typer.Option(None, help="read the password from this file's first line ('-': "
                                                       "standard input); without it, asked for (not echoed)"),
    name: str = typer.Option("", help="display name"),
    center: str | None = typer.Option(None, help="service center code (clerks, center supervisors)"),
    outlet: str | None = typer.Option(None, help="bank outlet code (tellers, bank supervisors)"),
    token: bool = typer.Option(False, help="also issue an API token for this user"),
) -> None:
    """Add a staff user (argon2id hash kept, never the password)."""
    from ..services import staff

    password = read_secret("Password", password_file, confirm=True)
    sscard = load_app()
    try:
        out = staff.add_user(sscard, CLI_OPERATOR, username, password, role, name, center, outlet)
        console.print(f"added {out['username']} ({out['role']})")
        if token:
            console.print(f"API token (shown once): {staff.issue_token(sscard, CLI_OPERATOR, username=username)['token']}")
    except SscardError as exc:
        fail(exc)


@user_app.command("token")
def user_token(username: str | None = None, terminal: str | None = None,
               rotate: bool = typer.Option(False, help="revoke every other token of this user or terminal")) -> None:
    """Issue an API token for a staff user or a terminal (shown once); --rotate revokes its others."""
    from ..services import staff

    try:
        issued = staff.issue_token(load_app(), CLI_OPERATOR, username=username, terminal_code=terminal, rotate=rotate)
        console.print(issued["token"])
        if rotate:
            console.print(f"revoked: {issued['revoked']}", style="dim")
    except SscardError as exc:
        fail(exc)


@user_app.command("disable")
def user_disable(username: str) -> None:
    """Disable a staff user (who left): no sign-in, every console session ended, every API token revoked."""
    from ..services import staff

    try:
        out = staff.disable(load_app(), CLI_OPERATOR, username)
        console.print(f"disabled {out['username']}: sessions ended {out['sessions_ended']}, "
                      f"API tokens revoked {out['tokens_revoked']}")
    except SscardError as exc:
        fail(exc)


@user_app.command("enable")
def user_enable(username: str) -> None:
    """Let a disabled staff user sign in again (their API tokens stay revoked: `sscard user token`)."""
    from ..services import staff

    try:
        out = staff.enable(load_app(), CLI_OPERATOR, username)
        console.print(f"enabled {out['username']}")
    except SscardError as exc:
        fail(exc)


@user_app.command("reset-password")
def user_reset_password(
    username: str,
    password_file: str | None = typer.Option(None, help="the new password from this file's first line ('-': "
                                                       "standard input); without it, a one-time password is made "
                                                       "and shown once"),
) -> None:
    """Reset a staff user's forgotten password: a one-time password (shown once), to be changed at the next
    sign-in (the console opens only the change page until then); the lock and the count cleared, the user's
    console sessions ended and API tokens revoked (`sscard user token` issues new ones)."""
    from ..core.passwords import one_time_staff_password
    from ..services import staff

    password = read_secret("Password", password_file) if password_file else one_time_staff_password()
    try:
        out = staff.reset_password(load_app(), CLI_OPERATOR, username, password)
    except SscardError as exc:
        fail(exc)
    console.print(f"password of {username} reset; it must be changed at the next sign-in "
                  f"(sessions ended {out['sessions_ended']}, API tokens revoked {out['tokens_revoked']})")
    if not password_file:
        console.print(f"one-time password (shown once): {password}")


@user_app.command("unlock")
def user_unlock(username: str) -> None:
    """Lift a staff user's login lock now (wrong passwords: policy login.staff_max_failures / _lock_minutes)."""
    from ..services import staff

    try:
        out = staff.unlock(load_app(), CLI_OPERATOR, username)
        console.print(f"unlocked {out['username']}" if out["was_locked"] else f"{out['username']} was not locked; "
                      "its count of wrong passwords starts again")
    except SscardError as exc:
        fail(exc)


@user_app.command("list")
def user_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every staff user with their state: active or disabled, locked until, must change the password."""
    from ..services import staff

    try:
        listed = staff.list_staff(load_app(), CLI_OPERATOR)["staff"]
    except SscardError as exc:
        fail(exc)
        return
    if as_json:
        console.print_json(json.dumps(listed))
        return
    table = Table(title="staff users")
    for col in ("user", "name", "role", "place", "state", "locked until", "must change"):
        table.add_column(col)
    for e in listed:
        table.add_row(e["username"], e["display_name"], e["role"], e["place"],
                      "active" if e["active"] else "disabled", e["locked_until"] or "",
                      "yes" if e["must_change_password"] else "")
    console.print(table)


class IdKind(StrEnum):
    auto = "auto"
    citizen_id = "citizen_id"
    card_number = "card_number"
    pan = "pan"


@id_app.command("check")
def id_check(value: str, kind: IdKind = typer.Option(IdKind.auto)) -> None:
    """Validate a citizen ID, card number or PAN; exit 1 with the reason when it is wrong."""
    from ..core.identifiers import validate_card_number, validate_citizen_id, validate_pan

    name = kind.value
    if kind == IdKind.auto:
        name = {18: "citizen_id", 9: "card_number", 19: "pan"}.get(len(value.strip()), "citizen_id")
    check = {"citizen_id": validate_citizen_id, "card_number": validate_card_number, "pan": validate_pan}[name]
    try:
        console.print(f"valid {name}: {check(value)}")
    except SscardError as exc:
        fail(exc)


def _register_area_commands() -> None:
    """Each area adds its commands in its own module: sscard.cli.<area> exposing `register(app)`."""
    import importlib
    import pkgutil

    from .. import cli as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register:
            register(app)


def password_in_arguments(args: list[str]) -> bool:
    """Whether an argument is a URL carrying a password (`postgresql://user:secret@host/db`, `?password=`):
    the command line shows in `ps` and the shell's history, so the password goes in PGPASSWORD, ~/.pgpass or
    the environment's SSCARD_DATABASE_URL instead."""
    from urllib.parse import parse_qs, urlsplit

    for arg in args:
        value = arg.partition("=")[2] if arg.startswith("--") and "=" in arg else arg
        if "://" not in value:
            continue
        try:
            url = urlsplit(value)
            if url.password or any(k.lower() == "password" for k in parse_qs(url.query)):
                return True
        except ValueError:
            continue
    return False


def main() -> None:
    if password_in_arguments(sys.argv[1:]):
        err_console.print("[red]a password in a URL on the command line shows in `ps` and the shell's history[/red]: "
                          "give it in PGPASSWORD or ~/.pgpass (or the URL in SSCARD_DATABASE_URL) instead")
        sys.exit(2)
    if sys.argv[1:2] != ["serve"]:  # `serve` is this module's: a restart need not import every area's commands
        _register_area_commands()
    try:
        app()
    except STARTUP_ERRORS as exc:
        err_console.print(f"[red]{exc}[/red]")
        sys.exit(2)
    except SscardError as exc:  # a refusal a command did not catch itself (a bad amount): said, not traced
        say_refusal(exc)
        sys.exit(1)
    except OSError as exc:  # a file named on the command line that cannot be read or written: said, not traced
        where = f"{exc.filename}: " if exc.filename else ""
        err_console.print(f"[red]{where}{exc.strerror or exc}[/red]")
        sys.exit(1)
    except Exception as exc:
        unreachable = _database_unreachable(exc)
        if unreachable:  # cron's mail said it in 645 lines of traceback (session 26's `sscard sweep`)
            err_console.print(f"[red]the database cannot be used[/red]: {unreachable} (SSCARD_DATABASE_URL, or "
                              "the command's --database-url)")
            sys.exit(2)
        if not _schema_missing(exc):
            raise
        err_console.print("[red]the database has no sscard schema, or an older one[/red]: "
                          "run `sscard init` (creates or upgrades it), or point SSCARD_DATABASE_URL at "
                          f"the right database ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")
        sys.exit(2)


def _database_unreachable(exc: BaseException) -> str:
    """The driver's first line when a command could not connect to (or open) its database: PostgreSQL's
    connection failures (SQLSTATE class 08, or none: refused, unknown host, bad password) and SQLite's
    "unable to open database file"; "" for anything else. The driver's line names the host and port, never
    the URL's password."""
    from sqlalchemy.exc import OperationalError

    from ..db import is_disconnect  # the failover retry's own test of a connection that broke or never was

    if not isinstance(exc, OperationalError):
        return ""
    text = str(exc.orig).strip()
    if is_disconnect(exc) or text.startswith("unable to open database file"):
        return text.splitlines()[0][:200] if text else type(exc.orig).__name__
    return ""


def _schema_missing(exc: BaseException) -> bool:
    """A command run on a database without sscard's tables or columns (a new SQLite file, a database not
    upgraded): SQLite's "no such table/column", PostgreSQL's undefined table or column (42P01, 42703)."""
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError):
        return False
    code = getattr(exc.orig, "sqlstate", None)
    text = str(exc.orig)
    return code in ("42P01", "42703") or text.startswith(("no such table", "no such column"))
