"""City policies: RULES.md defaults, sscard.toml and SSCARD_* overrides, bad values named, `sscard policy show`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sscard.cli import app as cli_app
from sscard.core.policy import Policy, PolicyError, load_policy

# Every named setting of RULES.md with the default it gives.
RULES_DEFAULTS = {
    "production.working_days": 15,
    "card.validity_years": 10,
    "card.uncollected_seal_days": 365,
    "card.spec_version": "3.00",
    "activation.window_days": 60,
    "activation.max_extension_days": 60,
    "query_password.initial_source": "card_number",
    "query_password.max_failures": 5,
    "query_password.lock_minutes": 30,
    "ss_password.max_failures": 3,
    "ss_password.require_change_before_use": False,
    "bank_pin.max_failures": 3,
    "bank_pin.lock": "next_day",
    "ss_loss.temporary_days": 7,
    "bank_loss.oral_days": 5,
    "loss.linked": False,
    "renewal.window_days": 60,
    "fee.replacement_fen": 2000,
    "bank.keep_pan_on_replacement": False,
    "bank.terminal_reversal_hours": 24,
    "limits.atm_withdrawal_per_txn_fen": 250_000,
    "limits.atm_withdrawal_per_day_fen": 2_000_000,
    "limits.transfer_per_day_fen": 5_000_000,
    "limits.payment_per_day_fen": 5_000_000,
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No stray SSCARD_* policy variable or ./sscard.toml from the machine may leak into these tests."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("SSCARD_") and "__" in name:
            monkeypatch.delenv(name)
    monkeypatch.setenv("SSCARD_CONFIG", "")  # no file


def test_defaults_are_the_rules(clean_env):
    flat = load_policy().flat()
    for name, value in RULES_DEFAULTS.items():
        assert flat[name] == value, name
    assert isinstance(flat["fee.replacement_fen"], int)


def test_the_toml_file_overrides_defaults(monkeypatch, tmp_path):
    path = tmp_path / "sscard.toml"
    path.write_text('[activation]\nwindow_days = 90\n\n[bank_pin]\nlock = "until_reset"\n', encoding="utf-8")
    monkeypatch.setenv("SSCARD_CONFIG", str(path))
    policy = load_policy()
    assert policy.activation.window_days == 90
    assert policy.bank_pin.lock == "until_reset"
    assert policy.query_password.max_failures == 5  # untouched settings keep their defaults


def test_the_environment_overrides_the_file(monkeypatch, tmp_path):
    path = tmp_path / "sscard.toml"
    path.write_text("[activation]\nwindow_days = 90\n", encoding="utf-8")
    monkeypatch.setenv("SSCARD_CONFIG", str(path))
    monkeypatch.setenv("SSCARD_ACTIVATION__WINDOW_DAYS", "120")
    monkeypatch.setenv("SSCARD_LOSS__LINKED", "true")
    policy = load_policy()
    assert policy.activation.window_days == 120
    assert policy.loss.linked is True


def test_explicit_overrides_win_over_everything(monkeypatch):
    monkeypatch.setenv("SSCARD_SS_PASSWORD__MAX_FAILURES", "4")
    assert load_policy(ss_password={"max_failures": 5}).ss_password.max_failures == 5


@pytest.mark.parametrize(
    ("env", "value", "setting"),
    [
        ("SSCARD_ACTIVATION__WINDOW_DAYS", "soon", "activation.window_days"),
        ("SSCARD_ACTIVATION__WINDOW_DAYS", "0", "activation.window_days"),
        ("SSCARD_BANK_PIN__LOCK", "forever", "bank_pin.lock"),
        ("SSCARD_QUERY_PASSWORD__INITIAL_SOURCE", "birthday", "query_password.initial_source"),
        ("SSCARD_FEE__REPLACEMENT_FEN", "-1", "fee.replacement_fen"),
        ("SSCARD_FEE__REPLACEMENT_FEN", "20.00", "fee.replacement_fen"),  # money is integer fen
        ("SSCARD_ACTIVATION__WINDOW_DAYZ", "60", "activation.window_dayz"),  # a typo is not ignored
    ],
)
def test_a_bad_value_raises_policy_error_naming_the_setting(monkeypatch, env, value, setting):
    monkeypatch.setenv(env, value)
    with pytest.raises(PolicyError) as info:
        load_policy()
    assert setting in str(info.value)


def test_a_bad_value_in_the_toml_file_names_the_setting(monkeypatch, tmp_path):
    path = tmp_path / "sscard.toml"
    path.write_text("[ss_loss]\ntemporary_days = 0\n", encoding="utf-8")
    monkeypatch.setenv("SSCARD_CONFIG", str(path))
    with pytest.raises(PolicyError, match=r"ss_loss\.temporary_days"):
        load_policy()


def test_a_bad_override_names_the_setting():
    with pytest.raises(PolicyError, match=r"ss_password\.max_failures"):
        load_policy(ss_password={"max_failures": 0})


def test_policy_is_frozen():
    policy = load_policy()
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        policy.activation.window_days = 1  # type: ignore[misc]
    assert isinstance(policy, Policy)


# ---------------------------------------------------------------- sscard policy show

runner = CliRunner()


def test_policy_show_lists_every_setting_with_its_value(monkeypatch):
    monkeypatch.setenv("SSCARD_ACTIVATION__WINDOW_DAYS", "90")
    result = runner.invoke(cli_app, ["policy", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert set(shown) == set(load_policy().flat())  # every setting, areas' groups included
    assert set(RULES_DEFAULTS) <= set(shown)
    assert shown["activation.window_days"] == 90
    assert all(shown[k] == v for k, v in RULES_DEFAULTS.items() if k != "activation.window_days")


def test_policy_show_table_names_every_setting(monkeypatch):
    result = runner.invoke(cli_app, ["policy", "show"], env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    for name in load_policy().flat():
        assert name in result.stdout, name


def test_policy_show_exits_2_naming_a_bad_setting(monkeypatch):
    monkeypatch.setenv("SSCARD_BANK_PIN__MAX_FAILURES", "many")
    result = runner.invoke(cli_app, ["policy", "show"], env={"COLUMNS": "240"})
    assert result.exit_code == 2
    assert "bank_pin.max_failures" in result.output


@pytest.mark.parametrize(
    ("toml", "setting"),
    [
        ("[activation]\nwindow_days = true\n", "activation.window_days"),  # was read as 1 day
        ("[fee]\nreplacement_fen = true\n", "fee.replacement_fen"),
        ("[loss]\nlinked = 1\n", "loss.linked"),  # was read as yes
        ("[ss_password]\nrequire_change_before_use = 0.0\n", "ss_password.require_change_before_use"),
    ],
)
def test_a_toml_value_of_another_type_is_refused_naming_the_setting_not_read_as_a_number(monkeypatch, tmp_path,
                                                                                         toml, setting):
    """Session 27's operator: `window_days = true` in sscard.toml started the city with a 1-day activation
    window (pydantic's lax mode), with no word said."""
    path = tmp_path / "sscard.toml"
    path.write_text(toml, encoding="utf-8")
    monkeypatch.setenv("SSCARD_CONFIG", str(path))
    with pytest.raises(PolicyError, match=setting.replace(".", r"\.")):
        load_policy()


def test_environment_text_for_numbers_and_yes_no_is_still_read(monkeypatch):
    monkeypatch.setenv("SSCARD_ACTIVATION__WINDOW_DAYS", "90")
    monkeypatch.setenv("SSCARD_LOSS__LINKED", "false")
    policy = load_policy()
    assert policy.activation.window_days == 90 and policy.loss.linked is False


@pytest.mark.parametrize("content", [b"not toml [\n", b"[activation]\nwindow_days = 90 # \xff\xfe\n"])
def test_a_policy_file_that_is_not_utf8_toml_stops_the_command_in_one_line_naming_the_file(monkeypatch, tmp_path,
                                                                                           content):
    """Session 27: a TOML syntax error (or a file in GBK) in sscard.toml ended `sscard policy show`, `serve`
    and every command in a 150-line traceback, exit 1."""
    path = tmp_path / "sscard.toml"
    path.write_bytes(content)
    _stops_start_up_naming(path, monkeypatch)


def _stops_start_up_naming(path, monkeypatch) -> None:
    """The policy named by SSCARD_CONFIG is refused by load_policy and by a command, in one or two lines
    naming the path, exit 2, no traceback."""
    monkeypatch.setenv("SSCARD_CONFIG", str(path))
    with pytest.raises(PolicyError, match=path.name):
        load_policy()
    result = CliRunner().invoke(cli_app, ["policy", "show"], env={"SSCARD_CONFIG": str(path), "COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) <= 2, result.output


def test_a_policy_file_named_in_sscard_config_that_does_not_exist_stops_start_up_naming_the_path(monkeypatch,
                                                                                              tmp_path):
    """Session 29: an operator's typo in SSCARD_CONFIG started the city silently on the defaults."""
    _stops_start_up_naming(tmp_path / "sscrad.toml", monkeypatch)


def test_a_directory_named_in_sscard_config_stops_start_up_too(monkeypatch, tmp_path):
    monkeypatch.setenv("SSCARD_CONFIG", str(tmp_path))
    with pytest.raises(PolicyError, match="is not a file"):
        load_policy()


def test_an_empty_sscard_config_means_no_file_and_the_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sscard.toml").write_text("[activation]\nwindow_days = 90\n", encoding="utf-8")  # not read
    monkeypatch.setenv("SSCARD_CONFIG", "")
    assert load_policy().activation.window_days == 60


def test_without_sscard_config_the_default_sscard_toml_is_read_when_there_and_optional_when_not(monkeypatch,
                                                                                             tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SSCARD_CONFIG")
    assert load_policy().activation.window_days == 60  # no ./sscard.toml: the defaults
    (tmp_path / "sscard.toml").write_text("[activation]\nwindow_days = 90\n", encoding="utf-8")
    assert load_policy().activation.window_days == 90
