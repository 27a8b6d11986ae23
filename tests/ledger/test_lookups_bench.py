"""`sscard bench lookups` end to end on a small demo city in a scratch PostgreSQL database: the three kinds
are answered through HTTP with no error and each reported, by wrk when it is installed (labelled) and by
the Python client otherwise."""

from __future__ import annotations

import os
import shutil

import pytest

PG_URL = os.environ.get("SSCARD_TEST_POSTGRES_URL")


@pytest.mark.slow
@pytest.mark.skipif(not PG_URL, reason="the lookups bench samples with PostgreSQL's random()")
@pytest.mark.parametrize("client", ["wrk", "python"])
def test_bench_lookups_answers_every_kind_through_http(client, tmp_path):
    if client == "wrk" and not shutil.which("wrk"):
        pytest.skip("wrk is not installed (make wrk)")
    from sscard.bench.common import Scratch
    from sscard.bench.lookups import run
    from sscard.config import Settings
    from sscard.demo.run import run_demo
    from sscard.services.app import build_app

    scratch = Scratch("postgres", PG_URL, "lookups")
    key = os.urandom(32)
    try:
        settings = Settings.from_env()
        app = build_app(Settings(**{**settings.__dict__, "database_url": scratch.url, "secret_key": key,
                                    "var_dir": tmp_path}))
        try:
            app.db.migrate()
            run_demo(app, 120, 7)
        finally:
            app.close()
        out = run(scratch.url, None, clients=2, seconds=2, key=key, progress=lambda m: None, client=client)
    finally:
        scratch.drop()
    assert out["errors"] == 0 and out["ok"] > 0, out
    assert out["client"].startswith(client)
    assert out["p99_ms"] >= out["p50_ms"] > 0
    assert set(out["by_kind"]) == {"citizen_id", "card_number", "pan"}
    assert all(k["ok"] > 0 for k in out["by_kind"].values()), out["by_kind"]
