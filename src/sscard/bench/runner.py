"""Runs the chosen workloads in one go and builds the report: tps, p50, p99 of each, each ratio to
the baseline (a), the host calibration before and after, and the checks of what the run left behind."""

from __future__ import annotations

from collections.abc import Callable

from . import CITY_PEOPLE
from .common import DEFAULT_PG, calibrate

WORKLOADS = {
    "a": "baseline TPC-B",
    "b": "service transfers, group-committed",
    "c": "HTTP terminal payments",
    "d": "transfers, one per transaction",
    "e": "medical settlements over HTTP (quote + settle)",
    "f": "counter mix, staff API (deposit, withdrawal, replacement fee)",
    "g": "ISO 8583 terminal payments (the TCP gateway; only when asked: --only a,g)",
}
# issue 14's targets, at 8 clients: (ratio to the baseline at least, p99 below ms)
TARGETS = {"b": (1.0, 100.0), "c": (0.5, 20.0), "d": (None, 100.0), "e": (0.25, 50.0), "f": (0.25, 100.0)}


def run(db: str, clients: int, seconds: float, *, only: str = "abcdef", pg_url: str = DEFAULT_PG,
        accounts: int = 20, people: int = CITY_PEOPLE, scale: int = 10, workers: int = 1,
        sqlite_synchronous: str | None = None, client: str = "python",
        progress: Callable[[str], None] = lambda m: None) -> dict:
    """`client`: what drives (c) and (f): "python" (the figures of every earlier run), "wrk" or "auto"
    (wrk when installed). docs/PERFORMANCE.md, session 14: the same server answers wrk's 8 connections
    with a p99 two to three times the Python clients'."""
    from ..core.policy import load_policy
    from .baseline import run_baseline
    from .city import CityRig
    from .counter import counter_mix
    from .ledger import LedgerRig
    from .medical import settlements

    if db not in ("sqlite", "postgres"):
        raise ValueError("db is sqlite or postgres")
    chosen = [w for w in WORKLOADS if w in only]
    sync = sqlite_synchronous or load_policy().storage.sqlite_synchronous
    report: dict = {"db": db, "clients": clients, "seconds": seconds, "server_workers": workers,
                    "sqlite_synchronous": sync if db == "sqlite" else None, "workloads": {}}
    before = calibrate()
    results = report["workloads"]

    def record(name: str, figures: dict) -> None:
        figures["label"] = WORKLOADS[name]
        results[name] = figures
        progress(f"    ({name}) {_line(figures)}")

    if "a" in chosen:
        progress(f"(a) {WORKLOADS['a']}, {clients} clients, {seconds:.0f} s")
        record("a", run_baseline(db, clients, seconds, pg_url=pg_url, scale=scale, sqlite_synchronous=sync,
                                 progress=progress))
    if {"b", "c", "d", "g"} & set(chosen):
        rig = LedgerRig(db, pg_url, accounts, clients, sync, progress, http="c" in chosen, workers=workers)
        try:
            if "b" in chosen:
                progress(f"(b) {WORKLOADS['b']}, {clients} clients, {seconds:.0f} s")
                record("b", rig.service_transfers(clients, seconds))
            if "c" in chosen:
                progress(f"(c) {WORKLOADS['c']}, {clients} clients, {seconds:.0f} s")
                record("c", rig.http_payments(clients, seconds, client))
            if "d" in chosen:
                progress(f"(d) {WORKLOADS['d']}, {clients} clients, {seconds:.0f} s")
                record("d", rig.unbatched_transfers(clients, seconds))
            if "g" in chosen:
                progress(f"(g) {WORKLOADS['g']}, {clients} clients, {seconds:.0f} s")
                record("g", rig.iso_payments(clients, seconds))
            report["ledger_check"] = rig.check()
        finally:
            rig.close()
    if {"e", "f"} & set(chosen):
        rig = CityRig(db, pg_url, people, clients, sync, progress)
        try:
            if "e" in chosen:
                progress(f"(e) {WORKLOADS['e']}, {clients} clients, {seconds:.0f} s")
                record("e", settlements(rig, clients, seconds))
            if "f" in chosen:
                progress(f"(f) {WORKLOADS['f']}, {clients} clients, {seconds:.0f} s")
                record("f", counter_mix(rig, clients, seconds, client))
        finally:
            rig.close()
    base = results.get("a", {}).get("tps")
    report["ratios"] = {f"{w}/a": round(r["tps"] / base, 3) for w, r in results.items() if w != "a" and base}
    if "b" in results and "d" in results and results["d"]["tps"]:
        report["ratios"]["b/d"] = round(results["b"]["tps"] / results["d"]["tps"], 2)
    report["targets"] = _targets(results, report["ratios"])
    report["calibration_ms"] = [round(before, 1), round(calibrate(), 1)]
    return report


def _targets(results: dict, ratios: dict) -> dict:
    out = {}
    for w, (ratio, p99) in TARGETS.items():
        if w not in results:
            continue
        met: bool | None = results[w]["p99_ms"] < p99
        if ratio is not None and f"{w}/a" in ratios:
            met = met and ratios[f"{w}/a"] >= ratio
        elif ratio is not None and met:
            met = None  # a ratio target with no baseline in this run (--only without a): not judged
        out[w] = {"ratio_at_least": ratio, "p99_below_ms": p99, "met": met}
    return out


def _line(r: dict) -> str:
    return (f"tps {r['tps']:9.1f}   p50 {r['p50_ms']:8.2f} ms   p99 {r['p99_ms']:8.2f} ms   "
            f"ok {r['ok']}  errors {r['errors']}")


def text(report: dict) -> list[str]:
    """The report as lines for a terminal."""
    lines = [f"sscard bench: {report['db']}, {report['clients']} clients, {report['seconds']:.0f} s each"
             + (f", SQLite synchronous={report['sqlite_synchronous'].upper()}" if report["sqlite_synchronous"] else "")]
    results, ratios, targets = report["workloads"], report["ratios"], report["targets"]
    for w, r in results.items():
        ratio = "" if w == "a" or f"{w}/a" not in ratios else f"   {w}/a {ratios[f'{w}/a']:.3f}"
        target = targets.get(w)
        mark = ("" if target is None else "   target met" if target["met"]
                else "   p99 met, ratio not judged (no baseline (a) in this run)" if target["met"] is None
                else "   TARGET MISSED")
        lines.append(f"({w}) {r['label']}")
        lines.append(f"    {_line(r)}{ratio}{mark}")
        if w == "a":
            lines.append(f"    {r.get('baseline', '')}")
        if "client" in r:
            lines.append(f"    client: {r['client']}")
        if "batching" in r:
            lines.append(f"    batching {r['batching']}")
        if r.get("refused"):
            lines.append(f"    refused {r['refused']}")
        if r.get("exceptions"):
            lines.append(f"    client exceptions {r['exceptions']}")
        if r.get("reconnects"):
            lines.append(f"    reconnects {r['reconnects']} (the server had closed a kept-alive connection)")
        if "by_kind" in r:
            lines.append(f"    by kind {r['by_kind']}")
        if "check" in r:
            lines.append(f"    check {r['check']}")
    if "b/d" in ratios:
        lines.append(f"b/d {ratios['b/d']:.1f} (group commit against one transaction per transfer)")
    if "ledger_check" in report:
        lines.append(f"ledger check {report['ledger_check']}")
    lines.append("targets at 8 clients: b/a >= 1.0; c/a >= 0.5 with p99 < 20 ms; e/a >= 0.25 with p99 < 50 ms; "
                 "f/a >= 0.25; every p99 < 100 ms")
    lines.append(f"host: a fixed Python loop took {report['calibration_ms'][0]:.0f} ms before the run and "
                 f"{report['calibration_ms'][1]:.0f} ms after (the same loop can take twice as long from one "
                 "minute to the next on a shared host: compare runs whose loops agree)")
    return lines
