"""Backups that restore: `sscard backup FILE` and `sscard restore FILE`.

- PostgreSQL: `pg_dump --format=custom` of the configured database (one snapshot: every transaction
  committed before it started is in it, none that commits later), restored by `pg_restore` in one
  transaction. pg_dump must be at least the server's major version (it refuses otherwise; we say so first).
- SQLite: the online backup API (`sqlite3.Connection.backup`) copies the whole file in one step under one
  read transaction: consistent while the server keeps writing (WAL readers do not block the writer).
  The backup is itself a SQLite database; restore copies it into the target with the same API.

A restore only ever writes into an EMPTY database (no tables; a SQLite file that does not exist yet):
there is no `--force`. Overwriting a live card system's ledger by mistake costs more than the minute it
takes to create an empty database (`createdb`, or a new file name). After the restore the ledger check
runs on the restored data, and the audit chain check too once it exists (see `restore`).

Passwords in a PostgreSQL URL reach pg_dump/pg_restore through PGPASSWORD, never through their command
line (which every user of the machine can read in `ps`).
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from .core.errors import SscardError, register_messages

register_messages({
    "restore_target_not_empty": (
        409, "恢复目标数据库不是空的（{detail}）：请恢复到新建的空数据库",
        "The database to restore into is not empty ({detail}): restore into a new, empty database"),
    "backup_tool_missing": (
        500, "找不到 {tool}（apt-get install postgresql-client）", "{tool} not found (apt-get install postgresql-client)"),
    "backup_tool_too_old": (
        500, "{tool} 的版本 {client} 低于数据库服务器的版本 {server}", "{tool} {client} is older than the database server {server}"),
    "backup_failed": (500, "备份或恢复失败：{detail}", "Backup or restore failed: {detail}"),
    "backup_not_found": (404, "备份文件不存在：{path}", "No backup file at {path}"),
    "backup_onto_database": (
        409, "备份文件不能是数据库本身（{path}）：请另选文件名",
        "The backup file cannot be the database itself ({path}): choose another file name"),
})

PG_TIMEOUT = 3600  # seconds: a dump or restore that takes longer is stuck


PRIVATE = 0o600
"""A backup holds every citizen ID, name and PIN digest: readable by its owner only, like var/secret.key
(session 22's privacy probe found backups world-readable)."""


def backup(database_url: str, dest: Path) -> dict:
    """Write a backup of the database to `dest` (replaced atomically: a failed backup leaves no file)."""
    dest = Path(dest)
    if _is_sqlite(database_url):
        _refuse_the_database_itself(_sqlite_path(database_url), dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE))  # the owner's alone, from the start
    try:
        if _is_sqlite(database_url):
            _sqlite_backup(_sqlite_path(database_url), partial)
            fmt = "sqlite"
        else:
            _check_pg_tool("pg_dump", database_url)
            _run_pg(["pg_dump", "--format=custom", "--compress=6", "--file", str(partial)], database_url)
            fmt = "pg_dump custom"
        os.chmod(partial, PRIVATE)  # (should a tool have made the file anew)
        with open(partial, "rb") as fh:
            os.fsync(fh.fileno())
        partial.replace(dest)
        _sync_dir(dest.parent)  # the rename itself survives a power cut (session 22's reliability probe)
    finally:
        partial.unlink(missing_ok=True)
    return {"file": str(dest), "format": fmt, "bytes": dest.stat().st_size}


def restore(database_url: str, src: Path) -> dict:
    """Restore `src` into the empty database at `database_url`; refuse a database that has any table."""
    src = Path(src)
    if not src.is_file():
        raise SscardError("backup_not_found", path=str(src))
    if _is_sqlite(database_url):
        target = Path(_sqlite_path(database_url))
        if target.exists() and target.stat().st_size > 0:
            raise SscardError("restore_target_not_empty", detail=f"{target} exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")  # a restore cut short leaves no database
        partial.unlink(missing_ok=True)
        os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE))  # as its backup: the owner's
        try:
            _sqlite_restore(src, partial)
            partial.replace(target)
            _sync_dir(target.parent)
        finally:
            partial.unlink(missing_ok=True)
    else:
        tables = _tables(database_url)
        if tables:
            raise SscardError("restore_target_not_empty", detail=f"{len(tables)} tables, e.g. {tables[0]}")
        _check_pg_tool("pg_restore", database_url)
        _run_pg(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", str(src)],
                database_url)
    return {"file": str(src), "tables": len(_tables(database_url))}


def checks_after_restore(app) -> dict:
    """What `sscard restore` runs on the restored database: {name: result}, each result with "ok"."""
    from .core.roles import CLI_OPERATOR
    from .services import audit_chain, banking

    # the ledger adds up, and the audit chain is unbroken (records sealed before the backup keep their
    # hashes; records written after the last seal are sealed now, on the restored copy)
    # `sscard restore` exits non-zero when any result's "ok" is false.
    return {"ledger": banking.ledger_check(app, CLI_OPERATOR), "audit": audit_chain.verify(app, seal_first=True)}


# ---------------------------------------------------------------- SQLite


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sync_dir(folder: Path) -> None:
    """fsync a folder: a file renamed into it is there after a power cut, not only in the page cache."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sqlite_path(url: str) -> str:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise SscardError("backup_failed", detail="an in-memory SQLite database has nothing to back up")
    return database


def _refuse_the_database_itself(path: str, dest: Path) -> None:
    """`sscard backup var/sscard.db` (the database's own name, or its -wal/-shm/-journal) renamed the copy over
    the live file: the server went on writing into the unlinked one and its WAL was left beside another file,
    which is how SQLite says a database is corrupted (sqlite.org/howtocorrupt.html, 2.4). Session 27."""
    live = Path(path).resolve()
    target = dest.resolve()
    if target in {live, *(live.with_name(live.name + suffix) for suffix in ("-wal", "-shm", "-journal"))}:
        raise SscardError("backup_onto_database", path=str(dest))


def _sqlite_backup(path: str, dest: Path) -> None:
    if not Path(path).is_file():
        raise SscardError("backup_failed", detail=f"no database at {path}")
    source = sqlite3.connect(path, timeout=60)  # read only; not mode=ro, which cannot open a WAL file alone
    target = sqlite3.connect(dest)
    try:
        source.backup(target)  # pages=-1: everything in one step, one read transaction: one snapshot
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    finally:
        target.close()
        source.close()
    _sqlite_integrity(dest)


def _sqlite_restore(src: Path, target: Path) -> None:
    _sqlite_integrity(src)
    source = sqlite3.connect(src)
    dest = sqlite3.connect(target)
    try:
        source.backup(dest)
        dest.execute("PRAGMA journal_mode=WAL")  # as the server runs it
    finally:
        dest.close()
        source.close()


def _sqlite_integrity(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise SscardError("backup_failed", detail=f"{path}: {exc}") from None
    finally:
        conn.close()
    if result != "ok":
        raise SscardError("backup_failed", detail=f"{path}: integrity check: {result}")


# ---------------------------------------------------------------- PostgreSQL


def _engine(url: str):
    from .db import make_engine

    return make_engine(url, pool_size=1)


def _tables(url: str) -> list[str]:
    engine = _engine(url)
    try:
        return sorted(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The libpq URI for the command-line tools (no password in it) and the environment carrying it."""
    u = make_url(url)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = u.password
    plain = u.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run_pg(args: list[str], url: str) -> None:
    uri, env = _libpq(url)
    cmd = [args[0], "--dbname", uri, *args[1:]]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=PG_TIMEOUT)
    except FileNotFoundError:
        raise SscardError("backup_tool_missing", tool=args[0]) from None
    if proc.returncode != 0:
        raise SscardError("backup_failed", detail=f"{args[0]}: {proc.stderr.strip()[-800:]}")


def _check_pg_tool(tool: str, url: str) -> None:
    """pg_dump/pg_restore older than the server cannot read it: say so before trying."""
    path = shutil.which(tool)
    if path is None:
        raise SscardError("backup_tool_missing", tool=tool)
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    client = int(match.group(1)) if match else 0
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            server = int(conn.execute(text("SHOW server_version_num")).scalar()) // 10000
    finally:
        engine.dispose()
    if client < server:
        raise SscardError("backup_tool_too_old", tool=tool, client=client, server=server)
