"""The `sscard` command line on a fresh SQLite database: init, user add (hash kept, never the password),
token, and refusals as exit code 1 with the error code."""

from __future__ import annotations

import sqlite3

from typer.testing import CliRunner

from sscard.cli import app as cli_app

PASSWORD = "Cli-Operator-Pass-9"


def test_init_user_add_and_token_keep_no_password_in_clear(tmp_path):
    db = tmp_path / "cli.db"
    env = {"SSCARD_DATABASE_URL": f"sqlite:///{db}", "SSCARD_VAR_DIR": str(tmp_path),
           "SSCARD_CONFIG": str(tmp_path / "none.toml"), "LANG": "en_US.UTF-8", "COLUMNS": "200"}
    runner = CliRunner()
    result = runner.invoke(cli_app, ["init"], env=env)
    assert result.exit_code == 0, result.output
    assert "database ready" in result.output

    result = runner.invoke(cli_app, ["user", "add", "op1", "--role", "operator", "--password", PASSWORD, "--token"],
                           env=env)
    assert result.exit_code == 0, result.output
    assert "added op1 (operator)" in result.output and "API token (shown once)" in result.output
    assert PASSWORD not in result.output

    result = runner.invoke(cli_app, ["user", "add", "op1", "--role", "operator", "--password", PASSWORD], env=env)
    assert result.exit_code == 1 and "already_exists" in result.output
    result = runner.invoke(cli_app, ["user", "add", "op2", "--role", "janitor", "--password", PASSWORD], env=env)
    assert result.exit_code == 1 and "invalid_request" in result.output
    result = runner.invoke(cli_app, ["user", "add", "op3", "--role", "operator", "--password", "short"], env=env)
    assert result.exit_code == 1 and "weak_password" in result.output

    result = runner.invoke(cli_app, ["user", "token", "--username", "op1"], env=env)
    assert result.exit_code == 0
    token = result.output.strip()
    assert len(token) >= 40

    with sqlite3.connect(db) as conn:
        hashes = [r[0] for r in conn.execute("select password_hash from staff_users")]
        digests = [r[0] for r in conn.execute("select digest from api_tokens")]
        dump = "\n".join(conn.iterdump())
    assert len(hashes) == 1 and hashes[0].startswith("$argon2id$")
    assert len(digests) == 2 and token not in digests
    assert PASSWORD not in dump and token not in dump
