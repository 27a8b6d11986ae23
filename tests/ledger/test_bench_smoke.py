"""`sscard bench` end to end on small scratch databases: every workload runs and what it leaves behind
balances; the baseline is native pgbench when it is installed and says so when it is not; `--json`
prints nothing but the JSON on stdout."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from typer.testing import CliRunner

from sscard.bench import baseline
from sscard.bench.runner import run

PG_URL = os.environ.get("SSCARD_TEST_POSTGRES_URL")


@pytest.mark.slow
def test_bench_runs_every_workload_and_reports_each_ratio_to_the_baseline_on_sqlite():
    report = run("sqlite", 2, 0.5, accounts=3, people=100, scale=1)  # (wrk as the client: the tests below)
    assert report["sqlite_synchronous"] == "full"
    assert "synchronous=FULL" in report["workloads"]["a"]["baseline"]
    for w in "abcdef":
        r = report["workloads"][w]
        assert r["ok"] > 0 and r["errors"] == 0, (w, r)
        assert r["p99_ms"] >= r["p50_ms"] > 0, (w, r)
        if w != "a":
            assert report["ratios"][f"{w}/a"] > 0
    assert report["ledger_check"]["ok"]
    assert report["workloads"]["e"]["check"].startswith("ok")
    assert report["workloads"]["b"]["batching"]["requests"] >= report["workloads"]["b"]["ok"]
    assert set(report["workloads"]["f"]["by_kind"]) == {"deposit", "withdrawal", "replacement_fee"}
    assert all(k["ok"] > 0 for k in report["workloads"]["f"]["by_kind"].values())
    assert len(report["calibration_ms"]) == 2 and min(report["calibration_ms"]) > 0


@pytest.mark.slow
def test_bench_json_prints_only_the_json_on_stdout(monkeypatch, tmp_path):
    from sscard.cli import _register_area_commands, app

    monkeypatch.setenv("SSCARD_CONFIG", "")
    if not any(g.name == "bench" for g in app.registered_groups):
        _register_area_commands()
    result = CliRunner().invoke(app, ["bench", "--db", "sqlite", "--clients", "1", "--seconds", "1",
                                      "--only", "a", "--scale", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # progress went to stderr
    assert report["workloads"]["a"]["ok"] > 0 and "(a)" in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(not PG_URL or not baseline.pgbench_path(), reason="PostgreSQL and pgbench")
def test_the_postgres_baseline_is_native_pgbench_with_its_own_latencies():
    out = baseline.run_baseline("postgres", 2, 1.0, pg_url=PG_URL, scale=1, sqlite_synchronous="full",
                                progress=lambda m: None)
    assert out["source"] == "pgbench" and out["baseline"].startswith("native pgbench")
    assert out["tps"] > 0 and out["ok"] > 0 and out["p99_ms"] >= out["p50_ms"] > 0


@pytest.mark.slow
@pytest.mark.skipif(not PG_URL, reason="PostgreSQL")
def test_without_pgbench_the_baseline_is_the_python_loop_and_says_so(monkeypatch):
    said = []
    monkeypatch.setattr(baseline, "pgbench_path", lambda: None)
    out = baseline.run_baseline("postgres", 2, 1.0, pg_url=PG_URL, scale=1, sqlite_synchronous="full",
                                progress=said.append)
    assert out["source"] == "python" and "pgbench not installed" in out["baseline"]
    assert any("pgbench is not installed" in m for m in said)
    assert out["ok"] > 0 and out["errors"] == 0


def test_a_ratio_target_without_the_baseline_in_the_run_is_not_judged_met():
    """`--only f` runs no baseline: f's p99 can be judged, its ratio cannot, and the report must not
    say "target met" (it did)."""
    from sscard.bench.runner import _targets, text

    f = {"label": "counter mix", "tps": 200.0, "p50_ms": 30.0, "p99_ms": 80.0, "ok": 10, "errors": 0}
    alone = _targets({"f": f}, {})
    assert alone["f"]["met"] is None
    assert _targets({"f": {**f, "p99_ms": 150.0}}, {})["f"]["met"] is False
    assert _targets({"f": f, "a": {**f, "tps": 1000.0}}, {"f/a": 0.2})["f"]["met"] is False
    assert _targets({"f": f, "a": {**f, "tps": 700.0}}, {"f/a": 0.29})["f"]["met"] is True
    lines = text({"db": "sqlite", "clients": 8, "seconds": 10, "sqlite_synchronous": "full",
                  "workloads": {"f": f}, "ratios": {}, "targets": alone, "calibration_ms": [50, 50]})
    assert not any("target met" in line for line in lines)
    assert any("ratio not judged" in line for line in lines)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is Debian's package (make wrk)")
def test_the_wrk_driven_payments_carry_a_key_each_so_every_answer_counted_is_a_new_transfer():
    """(c) through wrk: each request has an Idempotency-Key of its own (across its threads and its warm-up
    run), so no 200 counted is a stored answer replayed for free: every payment it counts is a transfer
    in the ledger."""
    from sscard.bench.ledger import LedgerRig

    rig = LedgerRig("sqlite", "", 3, 2, "full", lambda m: None, http=True)
    try:
        before = rig.check()["transfers"]
        out = rig.http_payments(2, 1, client="wrk")
        check = rig.check()
    finally:
        rig.close()
    assert out["client"].startswith("wrk") and out["errors"] == 0 and out["ok"] > 0
    # (wrk counts the answers it read before its time was up: each run may leave one request per
    # connection that the server still completed)
    new = check["transfers"] - before
    assert check["ok"] and 0 <= new - (out["ok"] + out["warm_up_ok"]) <= 2 * 2, (new, out)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is Debian's package (make wrk)")
def test_the_wrk_driven_counter_mix_sends_each_replacement_once_and_is_refused_nothing():
    """(f) through wrk: every request answered 200 or 201 (a replacement sent twice, a withdrawal from an
    empty account, a key used twice would be refused), none of the listed requests sent again."""
    from sqlalchemy import func, select

    from sscard.bench.city import CityRig
    from sscard.bench.counter import counter_mix
    from sscard.models.counter import ReplacementApplication

    rig = CityRig("sqlite", "", 100, 2, "full", lambda m: None)
    try:
        out = counter_mix(rig, 2, 1, client="wrk")
        with rig.app.db.session() as s:
            applications = s.scalar(select(func.count()).select_from(ReplacementApplication))
    finally:
        rig.close()
    assert out["client"].startswith("wrk") and out["ok"] > 0, out
    assert out["errors"] == 0 and out["wrapped"] == 0 and out["refused"] == "", out
    assert applications >= 2  # the warm-up's and the run's (each card once: a second would be refused)


@pytest.mark.slow
def test_the_iso8583_payments_run_through_the_gateway_only_when_named():
    report = run("sqlite", 2, 0.5, only="ag", accounts=3, scale=1)
    g = report["workloads"]["g"]
    assert g["ok"] > 0 and g["errors"] == 0 and report["ratios"]["g/a"] > 0
    assert report["ledger_check"]["ok"]
    assert "g" not in run("sqlite", 2, 0.2, only="abcdef"[:1], scale=1)["workloads"]
