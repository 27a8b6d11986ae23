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
