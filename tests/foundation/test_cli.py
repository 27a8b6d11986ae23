"""The `sscard` command line on a fresh SQLite database: init, user add (hash kept, never the password),
token, and refusals as exit code 1 with the error code."""

from __future__ import annotations

import sqlite3

from typer.testing import CliRunner

from sscard.cli import app as cli_app

PASSWORD = "Cli-Operator-Pass-9"
SECRET_WORDS = ("password", "passwd", "pin", "passphrase", "secret")


def test_init_user_add_and_token_keep_no_password_in_clear(tmp_path):
    db = tmp_path / "cli.db"
    env = {"SSCARD_DATABASE_URL": f"sqlite:///{db}", "SSCARD_VAR_DIR": str(tmp_path),
           "SSCARD_CONFIG": "", "LANG": "en_US.UTF-8", "COLUMNS": "200"}
    runner = CliRunner()
    result = runner.invoke(cli_app, ["init"], env=env)
    assert result.exit_code == 0, result.output
    assert "database ready" in result.output

    result = runner.invoke(cli_app, ["user", "add", "op1", "--role", "operator", "--token"], env=env,
                           input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "added op1 (operator)" in result.output and "API token (shown once)" in result.output
    assert PASSWORD not in result.output

    secret = tmp_path / "password.txt"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    result = runner.invoke(cli_app, ["user", "add", "op1", "--role", "operator", "--password-file", str(secret)], env=env)
    assert result.exit_code == 1 and "already_exists" in result.output
    result = runner.invoke(cli_app, ["user", "add", "op2", "--role", "janitor", "--password-file", "-"], env=env,
                           input=PASSWORD + "\n")
    assert result.exit_code == 1 and "invalid_request" in result.output
    result = runner.invoke(cli_app, ["user", "add", "op3", "--role", "operator"], env=env, input="short\nshort\n")
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


def test_no_command_takes_a_secret_on_its_command_line(tmp_path):
    """A password typed as an argument shows in `ps` and the shell's history (`sscard user add --password ...`
    did): every command's parameters are walked; a secret is asked for without echo or read from a file."""
    import click
    import typer

    def walk(command: click.Command, path: str):
        yield path, command
        for name, sub in (getattr(command, "commands", None) or {}).items():
            yield from walk(sub, f"{path} {name}")

    root = typer.main.get_command(cli_app)
    found = [f"{path}: {param.name}" for path, command in walk(root, "sscard") for param in command.params
             if any(word in (param.name or "").lower().split("_") for word in SECRET_WORDS)
             and not (param.name or "").endswith("_file") and not getattr(param, "is_flag", False)]
    assert not found, found

    env = {"SSCARD_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "SSCARD_VAR_DIR": str(tmp_path),
           "SSCARD_CONFIG": "", "LANG": "en_US.UTF-8", "COLUMNS": "200"}
    result = CliRunner().invoke(cli_app, ["user", "add", "op9", "--role", "operator", "--password", PASSWORD], env=env)
    assert result.exit_code == 2 and "No such option" in result.output and PASSWORD not in result.output
    result = CliRunner().invoke(cli_app, ["user", "add", "op9", "--role", "operator", "--password-file",
                                          str(tmp_path / "missing")], env=env)
    assert result.exit_code == 2 and "cannot read password" in result.output and "Traceback" not in result.output


def test_bad_input_on_the_command_line_is_a_one_line_error_never_a_traceback(tmp_path, monkeypatch, capsys):
    """`sscard id check X --kind nope` printed a KeyError's traceback, `sscard backup` into a folder that is a file a
    FileNotFoundError's, `sscard iso8583 send ... --amount abc` (after asking for the PIN) an SscardError's: an
    unknown choice is refused by the parser (exit 2), a file that cannot be read or
    written is named in one line (exit 1), and so is a refusal (its code and message), in sscard.cli.main,
    whatever the command."""


    for name, value in {"SSCARD_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "SSCARD_VAR_DIR": str(tmp_path),
                        "SSCARD_CONFIG": "", "LANG": "en_US.UTF-8",
                        "COLUMNS": "200"}.items():
        monkeypatch.setenv(name, value)

    def run(*args: str) -> tuple[int, str]:
        code = _exit_code_of_main(monkeypatch, *args)
        out = capsys.readouterr()
        return code, out.out + out.err

    code, said = run("id", "check", "11010519491231002X", "--kind", "nope")
    assert code == 2 and "Invalid value for '--kind'" in said and "Traceback" not in said, said
    code, said = run("id", "check", "11010519491231002X", "--kind", "citizen_id")
    assert code == 0 and "valid citizen_id" in said
    assert run("init")[0] == 0
    (tmp_path / "a-file").write_text("not a folder", encoding="utf-8")
    code, said = run("backup", str(tmp_path / "a-file" / "backup.db"))
    assert code == 1 and "a-file: File exists" in said and "Traceback" not in said, said
    # a refusal no command caught (the ISO 8583 simulator's amount), before any PIN is asked for
    code, said = run("iso8583", "send", "GSBATM01", "withdraw", "--pan", "6222020000000000000", "--amount", "abc")
    assert code == 1 and "invalid_amount" in said and "PIN" not in said and "Traceback" not in said, said


def _exit_code_of_main(monkeypatch, *args: str) -> int:
    """`sscard ARGS` through sscard.cli.main, as the console script runs it: its exit code."""
    import sys

    from sscard.cli import main

    monkeypatch.setattr(sys, "argv", ["sscard", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_a_url_with_a_password_is_refused_on_the_command_line(monkeypatch, capsys):
    """`sscard restore F --database-url postgresql://u:secret@db/x` (or `bench --pg-url`, `events publish --url`)
    put a database password where `ps` shows it: refused before anything runs, saying where it goes instead."""


    for args in (["restore", "f.dump", "--database-url", "postgresql+psycopg://u:Secret-9@db2/x"],
                 ["bench", "--pg-url=postgresql://postgres:pw@127.0.0.1/postgres"],
                 ["events", "publish", "--url", "nats://a:b@127.0.0.1:4222"],
                 ["restore", "f.dump", "--database-url", "postgresql+psycopg:///x?host=db&password=pw"]):
        code = _exit_code_of_main(monkeypatch, *args)
        said = capsys.readouterr().err
        assert code == 2 and "PGPASSWORD" in said and "Secret-9" not in said, (args, said)
    from sscard.cli import password_in_arguments

    assert not password_in_arguments(["restore", "f.dump", "--database-url", "postgresql+psycopg://postgres@db2/x",
                                      "sqlite:///var/restored.db", "--pg-url=postgresql://u@h/db", "a:b@c"])


def test_the_operator_disables_resets_and_unlocks_staff_from_the_command_line(tmp_path):
    """`sscard user list|disable|enable|reset-password|unlock` (session 28): the one-time password is printed
    once and is in no row of the database, its account must change it; a user of nobody is exit 1."""
    import re

    db = tmp_path / "cli.db"
    env = {"SSCARD_DATABASE_URL": f"sqlite:///{db}", "SSCARD_VAR_DIR": str(tmp_path),
           "SSCARD_CONFIG": "", "LANG": "en_US.UTF-8", "COLUMNS": "200"}
    runner = CliRunner()
    assert runner.invoke(cli_app, ["init"], env=env).exit_code == 0
    added = runner.invoke(cli_app, ["user", "add", "op1", "--role", "operator", "--token"], env=env,
                          input=f"{PASSWORD}\n{PASSWORD}\n")
    assert added.exit_code == 0, added.output
    result = runner.invoke(cli_app, ["user", "disable", "op1"], env=env)  # the only operator: the city's last
    assert result.exit_code == 1 and "last_operator" in result.output, result.output
    added = runner.invoke(cli_app, ["user", "add", "op2", "--role", "operator"], env=env,
                          input=f"{PASSWORD}\n{PASSWORD}\n")
    assert added.exit_code == 0, added.output

    result = runner.invoke(cli_app, ["user", "disable", "op1"], env=env)
    assert result.exit_code == 0 and "disabled op1: sessions ended 0, API tokens revoked 1" in result.output
    assert "disabled" in runner.invoke(cli_app, ["user", "list"], env=env).output
    assert runner.invoke(cli_app, ["user", "enable", "op1"], env=env).exit_code == 0
    result = runner.invoke(cli_app, ["user", "reset-password", "op1"], env=env)
    assert result.exit_code == 0, result.output
    one_time = re.search(r"one-time password \(shown once\): (\S+)", result.output).group(1)
    assert len(one_time) == 12
    listed = runner.invoke(cli_app, ["user", "list", "--json"], env=env)
    assert '"must_change_password": true' in listed.output and one_time not in listed.output
    result = runner.invoke(cli_app, ["user", "unlock", "op1"], env=env)
    assert result.exit_code == 0 and "was not locked" in result.output
    result = runner.invoke(cli_app, ["user", "disable", "nobody"], env=env)
    assert result.exit_code == 1 and "not_found" in result.output
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
        operations = [r[0] for r in conn.execute("select operation from audit_records order by id")]
    assert one_time not in dump and PASSWORD not in dump
    assert operations[-4:] == ["staff.disable", "staff.enable", "staff.reset_password", "staff.unlock"]
