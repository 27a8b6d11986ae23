"""A command run on a database without sscard's schema says so and what to run, instead of a traceback."""

from __future__ import annotations

import os
import subprocess
import sys


def test_a_command_on_a_database_without_the_schema_names_sscard_init_and_exits_2(tmp_path):
    env = {**os.environ, "SSCARD_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}", "SSCARD_VAR_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", "from sscard.cli import main; main()", "account", "check"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "sscard init" in done.stderr and "Traceback" not in done.stderr + done.stdout


def test_a_command_whose_database_cannot_be_reached_says_so_in_one_line_and_exits_2(tmp_path):
    """Session 26: `sscard sweep` (cron's nightly job) with the database down printed a 645-line traceback, exit 1,
    like a check that failed. Now one line naming the database's refusal (never the URL's password), exit 2."""
    from sqlalchemy.exc import OperationalError

    from sscard.cli import _database_unreachable

    assert _database_unreachable(OperationalError("SELECT 1", {}, Exception("database is locked"))) == ""
    for url in ("postgresql+psycopg://postgres:hunter2pw@127.0.0.1:1/nope", f"sqlite:///{tmp_path / 'no' / 'x.db'}"):
        env = {**os.environ, "SSCARD_DATABASE_URL": url, "SSCARD_VAR_DIR": str(tmp_path), "COLUMNS": "200"}
        # (the reconnecting tries cut to a second: what is tested is how the command gives up, not how long it
        # waits for a failover, db.RECONNECT_SECONDS)
        done = subprocess.run([sys.executable, "-c", "import sscard.db as db; db.RECONNECT_SECONDS = 1.0; "
                               "from sscard.cli import main; main()", "sweep"],
                              capture_output=True, text=True, env=env, timeout=120, check=False)
        said = done.stderr + done.stdout
        assert done.returncode == 2, said[-2000:]
        assert "the database cannot be used" in said and "Traceback" not in said and "hunter2pw" not in said, said
        # (before it, the reconnecting tries of services.app, one line each, as a server's)
        assert said.strip().splitlines()[-1].startswith("the database cannot be used"), said[-2000:]
