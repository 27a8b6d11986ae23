"""`sscard bench lookups` end to end on a small demo city in a scratch PostgreSQL database: the three kinds
are answered through HTTP with no error and each reported, by wrk when it is installed (labelled) and by
the Python client otherwise, beside the same run's baseline (the lookup's database work from the native
pgbench) and the ratios to it."""

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
        out = run(scratch.url, None, clients=2, seconds=2, key=key, progress=lambda m: None, client=client,
                  baseline_scale=1, think_ms=25 if client == "wrk" else 0)
    finally:
        scratch.drop()
    assert out["errors"] == 0 and out["ok"] > 0, out
    assert out["client"].startswith(client)
    assert out["p99_ms"] >= out["p50_ms"] > 0
    assert set(out["by_kind"]) == {"citizen_id", "card_number", "pan"}
    assert all(k["ok"] > 0 for k in out["by_kind"].values()), out["by_kind"]
    floor = out["baseline"]
    assert floor["source"] == "pgbench" and "lookup" in floor["baseline"] and "-c 2" in floor["baseline"], floor
    assert floor["errors"] == 0 and floor["tps"] > 0 and floor["p99_ms"] >= floor["p50_ms"] > 0, floor
    assert out["tps_ratio"] == round(out["tps"] / floor["tps"], 3)
    assert out["p99_ratio"] == round(out["p99_ms"] / floor["p99_ms"], 2)
    assert 0 <= out["unsealed_at_start"] < 10_000  # the demo's few hundred records, if the server has not sealed them
    if client == "wrk":  # the paced run: 2 clients pausing ~25 ms each send at most ~80 a second together
        paced = out["paced"]  # (full speed is several hundred a second on a calm host, ~100 under CI's load)
        assert paced["errors"] == 0 and paced["ok"] > 0 and paced["think_ms"] == 25, paced
        assert paced["tps"] < 2 * 1000 / 25 * 1.5, paced
    else:
        assert "paced" not in out


def test_the_lookup_baseline_reads_one_row_and_commits_one_new_row_a_transaction(monkeypatch):
    """The floor the lookups are compared with does a lookup's own database work: on SQLite, the stdlib loop of
    the LOOKUP script leaves one history row per measured transaction, moves no balance, and syncs each commit
    as sscard does (FULL)."""
    from sscard.bench import baseline

    seen = {}
    loop = baseline._loop

    def counting(connect, clients, seconds, scale, script, begin):
        out = loop(connect, clients, seconds, scale, script, begin)
        conn = connect()
        seen["rows"] = conn.execute("SELECT count(*) FROM pgbench_history").fetchone()[0]
        seen["moved"] = conn.execute("SELECT count(*) FROM pgbench_accounts WHERE abalance <> 0").fetchone()[0]
        seen["sync"] = conn.execute("PRAGMA synchronous").fetchone()[0]
        conn.close()
        return out

    monkeypatch.setattr(baseline, "_loop", counting)
    out = baseline.run_baseline("sqlite", 2, 0.5, pg_url="", scale=1, sqlite_synchronous="full", progress=print,
                                script=baseline.LOOKUP)
    assert out["errors"] == 0 and out["ok"] > 0
    assert seen["rows"] >= out["ok"] and seen["moved"] == 0
    assert seen["sync"] == 2  # FULL
    assert out["baseline"].startswith("stdlib sqlite3 lookup") and "synchronous=FULL" in out["baseline"]


def test_the_lookup_script_for_pgbench_draws_its_rows_as_pgbench_does_and_is_one_transaction():
    from sscard.bench.baseline import LOOKUP, _pgbench_script

    text = _pgbench_script(LOOKUP, 10)
    assert text.startswith("\\set aid random(1, 1000000)\n")
    lines = [x for x in text.splitlines() if not x.startswith("\\")]
    assert lines[0] == "BEGIN;" and lines[-1] == "END;"
    assert lines[1] == "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;"
    assert lines[2].startswith("INSERT INTO pgbench_history") and ":aid" in lines[2] and "{" not in text


def test_the_lookups_bench_counts_the_records_waiting_for_the_sealer(app, monkeypatch):
    """A bulk load's year leaves millions of records to seal, and the server's sealer would work through them
    during the run (session 30): the bench counts them first (up to ten times its warning's threshold)."""
    from sscard.bench import lookups
    from tests.audit.test_sealer_process import _backlog

    url = app.settings.database_url
    before = lookups.unsealed(url)
    _backlog(app, 30)
    assert lookups.unsealed(url) == before + 30
    monkeypatch.setattr(lookups, "BACKLOG_WARNING", 2)
    assert lookups.unsealed(url) == 21  # counted up to 10 x the threshold, + 1
