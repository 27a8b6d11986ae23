"""A setting with a value sscard cannot use stops the command at once, in one line that names the variable,
exit status 2: not a traceback (which is what `sscard serve` printed for SSCARD_LOG_FORMAT=bogus)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import TEST_KEY

CASES = {
    "SSCARD_LOG_FORMAT": "bogus",
    "SSCARD_AUDIT_SEALER": "sometimes",
    "SSCARD_COOKIE_SECURE": "maybe",
    "SSCARD_TRUSTED_PROXIES": "10.0.0.0/33",
    "SSCARD_SECRET_KEY": "not-hex-at-all",
    # session 27: a traceback ending "No module named 'MySQLdb'" (or "Could not parse SQLAlchemy URL")
    "SSCARD_DATABASE_URL": "mysql://admin:hunter2@db/sscard",
    # session 27: the server started, and every login and authenticated API request answered 500
    "SSCARD_RATE_LIMIT_STORAGE": "reddis://:hunter2@127.0.0.1:6379/0",
}
BAD_DATABASE_URLS = ("sscard.db", "postgres//localhost/sscard")  # not URLs at all (session 27, as above)


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["serve", "--port", "1", "--workers", "2"], ["init"]])
@pytest.mark.parametrize("variable", sorted(CASES))
def test_a_bad_setting_stops_the_command_in_one_line_naming_it(tmp_path, variable, command):
    env = {**os.environ, "SSCARD_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}", "SSCARD_SECRET_KEY": TEST_KEY.hex(),
           "SSCARD_VAR_DIR": str(tmp_path), "SSCARD_CONFIG": "",
           variable: CASES[variable]}
    out = subprocess.run([sys.executable, "-c", "from sscard.cli import main; main()", *command], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert variable in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) <= 2
    if variable == "SSCARD_SECRET_KEY":
        assert CASES[variable] not in out.stderr  # a secret's value is never repeated
    assert "hunter2" not in out.stderr


@pytest.mark.parametrize("url", BAD_DATABASE_URLS)
def test_a_database_url_that_is_no_url_stops_every_command_in_one_line(tmp_path, url):
    env = {**os.environ, "SSCARD_DATABASE_URL": url, "SSCARD_SECRET_KEY": TEST_KEY.hex(),
           "SSCARD_VAR_DIR": str(tmp_path), "SSCARD_CONFIG": ""}
    for command in (["doctor"], ["serve", "--port", "1"], ["restore", str(tmp_path / "x.db"), "--database-url", url]):
        out = subprocess.run([sys.executable, "-c", "from sscard.cli import main; main()", *command], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, (command, out.stderr[-2000:])
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) <= 2, (command, out.stderr)
        assert "is not a database URL" in out.stderr, (command, out.stderr)


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["init"]])
def test_a_policy_file_that_does_not_exist_stops_the_command_in_one_line_naming_its_path(tmp_path, command):
    """Session 29: SSCARD_CONFIG with a typo started the city on the defaults, silently."""
    missing = tmp_path / "sscrad.toml"
    env = {**os.environ, "SSCARD_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}", "SSCARD_SECRET_KEY": TEST_KEY.hex(),
           "SSCARD_VAR_DIR": str(tmp_path), "SSCARD_CONFIG": str(missing)}
    out = subprocess.run([sys.executable, "-c", "from sscard.cli import main; main()", *command], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) <= 2, out.stderr
    assert "SSCARD_CONFIG" in out.stderr and "sscrad.toml" in out.stderr, out.stderr
