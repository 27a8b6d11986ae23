"""PostgreSQL's JIT is off on sscard's connections: over monthly partitions it compiled a bank supervisor's
audit read for 7.6 s before running it for 0.29 s (docs/SCALE.md, session 15)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from sscard.db import without_jit


def test_the_connection_options_turn_jit_off_and_keep_the_urls_own():
    assert without_jit("postgresql+psycopg://u@h/db") == "-c jit=off"
    assert without_jit("postgresql+psycopg://u@h/db?options=-c%20search_path%3Dx") == "-c search_path=x -c jit=off"
    multi = "postgresql+psycopg://postgres@/sscard?host=127.0.0.1:1&host=127.0.0.1:2&target_session_attrs=read-write"
    assert without_jit(multi) == "-c jit=off"


def test_an_operator_who_asks_for_jit_in_the_url_gets_it():
    assert without_jit("postgresql+psycopg://u@h/db?options=-c%20jit%3Don") == "-c jit=on"
    assert without_jit("postgresql+psycopg://u@h/db?options=-cjit=on") == "-cjit=on"


def test_every_connection_of_the_app_runs_without_jit(app):
    if app.db.dialect != "postgresql":
        pytest.skip("PostgreSQL's setting")
    with app.db.engine.connect() as conn:
        assert conn.execute(text("SHOW jit")).scalar() == "off"
    with app.db.read_committed() as s:  # another path to a pooled connection, the same options
        assert s.execute(text("SHOW jit")).scalar() == "off"
