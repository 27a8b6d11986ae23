"""Dump the schema the migrations build, at head and at every step up and down, to compare two versions of them.

    .venv/bin/python tools/schema_dump.py OUTDIR [sqlite] [postgres]
    (check out the other version) ... tools/schema_dump.py OUTDIR2 ...; diff -r -x s.db OUTDIR OUTDIR2

SQLite: the sorted `sqlite_master` rows; PostgreSQL: `pg_dump --schema-only --no-owner` of a scratch database
(its header lines and \\restrict keys left out), each followed by the alembic_version row. Files: <backend>_head
(Database.migrate, as the server and the tests migrate), <backend>_up_NN_<revision> (one revision at a time),
<backend>_down_NN_from_<revision> (one at a time back to nothing) and <backend>_reup_head. PostgreSQL's URL:
SSCARD_TEST_POSTGRES_URL (a database on that server is created and dropped). The monthly partitions follow
today's month: compare dumps made the same month.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from sscard.db import Database, alembic_config

PG = os.environ.get("SSCARD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def dump_sqlite(url: str, path: Path) -> None:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT type, name, tbl_name, sql FROM sqlite_master")).all()
        versioned = any(r[1] == "alembic_version" for r in rows)
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() if versioned else []
    engine.dispose()
    path.write_text("\n".join(sorted(f"{t}|{n}|{tb}|{s}" for t, n, tb, s in rows)) + f"\nVERSION {version}\n")


def dump_postgres(url: str, path: Path) -> None:
    u = make_url(url)
    out = subprocess.run(["pg_dump", "--schema-only", "--no-owner", "-h", u.host or "127.0.0.1",
                          "-U", u.username or "postgres", u.database or ""],
                         check=True, capture_output=True, text=True).stdout
    engine = create_engine(url)
    with engine.connect() as conn:
        versioned = conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() if versioned else []
    engine.dispose()
    body = [line for line in out.splitlines() if not line.startswith(("-- Dumped", "\\restrict", "\\unrestrict"))]
    path.write_text("\n".join(body) + f"\nVERSION {version}\n")


def _run(cfg: Config, engine: Engine, step: Callable[[Config, str], None], target: str) -> None:
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        step(cfg, target)


def dump_backend(backend: str, out: Path) -> None:
    admin = None
    if backend == "sqlite":
        file = out / "s.db"
        url, dump = f"sqlite:///{file}", dump_sqlite
    else:
        name = f"schema_dump_{uuid.uuid4().hex[:6]}"
        admin = create_engine(PG, isolation_level="AUTOCOMMIT")
        url, dump = make_url(PG).set(database=name).render_as_string(hide_password=False), dump_postgres

    def fresh() -> Database:
        if admin is None:
            file.unlink(missing_ok=True)
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        return Database(url)

    db = fresh()
    db.migrate()
    dump(url, out / f"{backend}_head.txt")
    db.dispose()
    db = fresh()
    cfg = alembic_config(url)
    revisions = [s.revision for s in reversed(list(ScriptDirectory.from_config(cfg).walk_revisions()))]
    for i, revision in enumerate(revisions):
        _run(cfg, db.engine, command.upgrade, revision)
        dump(url, out / f"{backend}_up_{i:02d}_{revision}.txt")
    for i, revision in enumerate(reversed(revisions)):
        _run(cfg, db.engine, command.downgrade, "-1")
        dump(url, out / f"{backend}_down_{i:02d}_from_{revision}.txt")
    _run(cfg, db.engine, command.upgrade, "heads")
    dump(url, out / f"{backend}_reup_head.txt")
    db.dispose()
    if admin is not None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    print(backend, "ok:", " ".join(revisions))


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    for backend in sys.argv[2:] or ["sqlite", "postgres"]:
        dump_backend(backend, target)
