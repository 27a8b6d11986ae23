"""The formation's side of sscard that needs no running formation: the URL sscard connects with, and
`sscard ha status` when nothing answers."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy import make_url
from typer.testing import CliRunner

from sscard.ha import Formation, HaError


def test_the_formation_url_names_both_nodes_and_asks_libpq_for_the_one_that_takes_writes(tmp_path):
    url = make_url(Formation(tmp_path, base_port=56000).url())
    assert url.drivername == "postgresql+psycopg" and url.database == "sscard"
    assert url.query["host"] == ("127.0.0.1:56001", "127.0.0.1:56002")
    assert url.query["target_session_attrs"] == "read-write"


def test_ha_status_without_a_formation_says_so_and_exits_1(tmp_path, monkeypatch):
    from sscard.cli import _register_area_commands, app

    monkeypatch.setenv("SSCARD_HA_DIR", str(tmp_path / "ha"))
    monkeypatch.setenv("SSCARD_HA_BASE_PORT", "56100")
    if not any(g.name == "ha" for g in app.registered_groups):
        _register_area_commands()
    result = CliRunner().invoke(app, ["ha", "status"])
    assert result.exit_code == 1
    assert "no formation answers" in result.output


def _listening() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_a_new_formation_refuses_ports_where_something_else_answers_and_names_them(tmp_path):
    """CI once started a formation whose ports were taken: its nodes talked to a stranger's monitor and
    it never came up; now it says so at once."""
    formation = Formation(tmp_path / "ha", base_port=56300)
    try:
        formation.check_installed()
    except HaError:
        pytest.skip("pg_autoctl not installed (make ha-packages)")
    with _listening() as stranger:
        port = stranger.getsockname()[1]
        formation = Formation(tmp_path / "ha", base_port=port - 1)  # the stranger sits on node1's port
        with pytest.raises(HaError, match=f"port {port} already answers"):
            formation.up(timeout=5, say=lambda m: None)
    assert not (tmp_path / "ha" / "monitor").exists()  # nothing was started


def test_a_free_base_port_skips_a_range_where_one_port_answers():
    with _listening() as stranger:
        port = stranger.getsockname()[1]
        base = Formation.free_base_port(start=port - 2, stop=port + 100)
    assert base > port - 2 and not (base <= port <= base + 2)


def test_the_diagnosis_of_a_formation_that_never_started_says_what_is_missing_without_raising(tmp_path):
    text = Formation(tmp_path / "ha", base_port=56400).diagnosis()
    assert "the monitor's view" in text and "(no log)" in text


class _FlakyFormation(Formation):
    """A formation whose first bring-up fails, as the one CI saw once (never primary and standby)."""

    tries: list = []  # noqa: RUF012  shared across the instances the drill makes

    def busy_ports(self) -> list[int]:
        return []

    def up(self, *, timeout: float = 180, say=print) -> None:
        self.tries.append(self.base_port)
        if len(self.tries) == 1:
            raise HaError("timed out after 180 s waiting for a primary and a synchronous standby\n-- the logs")

    def down(self, *, remove: bool = False, say=print) -> None:
        self.tries.append(("down", remove))


def test_the_drill_says_why_its_new_formation_did_not_come_up_and_tries_once_more_from_scratch(tmp_path,
                                                                                               monkeypatch):
    from sscard.ha.drill import _bring_up

    monkeypatch.delenv("SSCARD_HA_BASE_PORT", raising=False)
    _FlakyFormation.tries = []
    said: list[str] = []
    formation = _bring_up(_FlakyFormation(tmp_path / "ha", base_port=56500), True, said.append)
    first, down, second = _FlakyFormation.tries
    assert first == 56500 and down == ("down", True) and second == formation.base_port != 56500
    assert any("did not come up" in s and "-- the logs" in s for s in said)


def test_the_drill_does_not_retry_a_formation_it_did_not_create(tmp_path):
    from sscard.ha.drill import _bring_up

    _FlakyFormation.tries = []
    with pytest.raises(HaError):
        _bring_up(_FlakyFormation(tmp_path / "ha", base_port=56500), False, lambda m: None)
    assert _FlakyFormation.tries == [56500]
