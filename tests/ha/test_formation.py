"""The formation's side of sscard that needs no running formation: the URL sscard connects with, and
`sscard ha status` when nothing answers."""

from __future__ import annotations

from sqlalchemy import make_url
from typer.testing import CliRunner

from sscard.ha import Formation


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
