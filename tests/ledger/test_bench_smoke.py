"""`sscard bench ledger` end to end on a small SQLite scratch database: all three phases run and the
ledger it leaves behind balances."""

from __future__ import annotations

import pytest

from sscard.cli.ledger import run_bench


@pytest.mark.slow
def test_bench_ledger_runs_all_three_phases_on_sqlite():
    report = run_bench("sqlite", 2, 1.0, accounts=3)
    for phase in ("a_baseline_tpcb", "b_service_transfers", "c_http_payments"):
        assert report[phase]["ok"] > 0 and report[phase]["errors"] == 0, (phase, report[phase])
        assert report[phase]["p99_ms"] >= report[phase]["p50_ms"] > 0
    assert report["ledger_ok"] and report["ratio_b_a"] > 0 and report["ratio_c_a"] > 0
    assert report["batching"]["requests"] >= report["b_service_transfers"]["ok"]
    assert len(report["calibration_ms"]) == 2 and min(report["calibration_ms"]) > 0
