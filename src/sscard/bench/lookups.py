"""`sscard bench lookups`: find a cardholder by citizen ID, by card number and by PAN through the HTTP API,
over a demo city that is already there (the million of docs/SCALE.md), at N clients.

Unlike the other workloads it does not build a scratch city (a million cardholders take minutes): it
runs a server over `--database-url`, a database `sscard demo --json FILE` filled, with the staff tokens
that report holds. The reads are what a window and a bank outlet do, as the staff they are:
- citizen ID: `GET /api/v1/persons?citizen_id=...` (a clerk);
- card number: `GET /api/v1/cards/{card_number}` (a clerk);
- PAN: `GET /api/v1/bank-accounts/{pan}/statement?limit=5` (a teller of the account's bank: the account and
  its five newest ledger transfers, across the monthly partitions).
Staff reads of a person's data are audited (one `viewed` audit record each, group-committed with the other
reads' records by the writer, as in production), so the bench writes to that database's audit log: run it
on a demo database only.
Identifiers are sampled at random from the whole city (not a hot few), each kind in turn.

The clients: `wrk` (Debian's package, a C load generator) when it is installed, as the ledger bench's
baseline is the native pgbench: 8 keep-alive connections on 2 threads, each sending its next request when
the last is answered, from a file of the sampled requests (`lookups.lua`). A Python load generator on
these 2 cores takes a third of the CPU from the server it measures, and its threads wait for the
interpreter lock (up to its 5 ms switch interval), which alone puts its p99 near 5 ms against a server
that does nothing (docs/SCALE.md). Without wrk, or with `--client python`, the Python client runs,
labelled as such, and also gives each kind's own figures.

The baseline, measured in the same run at the same clients before the server starts: what the database does
for a lookup's own work alone, from a C client (`baseline.LOOKUP`: an indexed point read of one row among a
million and one row inserted and committed durably, the `viewed` record; the native `pgbench` on the same
PostgreSQL server, or the stdlib `sqlite3` loop at sscard's synchronous level). A lookup cannot answer
faster than its own SELECT and its record's commit: the report gives each figure's ratio to it."""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from pathlib import Path

from .common import HttpClient, Server, calibrate, drive, figures, wrk

KINDS = ("citizen_id", "card_number", "pan")
SAMPLE = 20_000


def sample(url: str, bank_code: str, size: int, seed: int) -> list[tuple[str, str, str]]:
    """(citizen ID, card number, PAN) of `size` cardholders drawn at random from the whole city, whose
    current card and account are at `bank_code` (the teller's bank)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT setseed(:s)"), {"s": (seed % 1000) / 1000})
            rows = conn.execute(text(
                "SELECT p.citizen_id, c.card_number, a.pan FROM persons p "
                "JOIN cards c ON c.person_id = p.id AND c.ss_status = 'normal' "
                "JOIN bank_accounts a ON a.card_id = c.id JOIN banks b ON b.id = a.bank_id AND b.code = :bank "
                "WHERE p.id IN (SELECT (1 + floor(random() * (SELECT max(id) FROM persons)))::int "
                "FROM generate_series(1, :n * 3)) LIMIT :n"), {"bank": bank_code, "n": size}).all()
    finally:
        engine.dispose()
    return [tuple(r) for r in rows]


def _tokens(database_url: str, key: bytes) -> tuple[str, dict]:
    """Without the demo's report: new API tokens for the demo's first clerk and first teller, issued as the
    CLI operator (audited like any token issue)."""
    from ..config import Settings
    from ..core.roles import CLI_OPERATOR
    from ..demo.city import STAFF
    from ..services import staff
    from ..services.app import build_app

    settings = Settings.from_env()
    app = build_app(Settings(**{**settings.__dict__, "database_url": database_url, "secret_key": key}))
    try:
        clerk = next(u for u in STAFF if u.role == "clerk")
        teller = next(u for u in STAFF if u.role == "teller")
        issue = staff.issue_token
        return (issue(app, CLI_OPERATOR, username=clerk.username, label="bench lookups")["token"],
                {"api_token": issue(app, CLI_OPERATOR, username=teller.username, label="bench lookups")["token"],
                 "where": teller.outlet})
    finally:
        app.close()


def _requests(people: list[tuple[str, str, str]], clerk: str, teller_token: str) -> list[tuple[str, str, str]]:
    """(kind, path, token) of one request per sampled cardholder, the kinds in turn."""
    out = []
    for i, (citizen_id, card_number, pan) in enumerate(people):
        kind = KINDS[i % len(KINDS)]
        out.append({
            "citizen_id": (kind, f"/api/v1/persons?citizen_id={citizen_id}", clerk),
            "card_number": (kind, f"/api/v1/cards/{card_number}", clerk),
            "pan": (kind, f"/api/v1/bank-accounts/{pan}/statement?limit=5", teller_token),
        }[kind])
    return out


def _wrk(port: int, requests: list[tuple[str, str, str]], workdir: Path, clients: int, seconds: float,
         think_ms: float = 0) -> dict:
    """A warm-up second, then `seconds` of wrk at `clients` connections over the requests (`lookups.lua`;
    with `think_ms`, `lookups_paced.lua`: each connection pauses ~think_ms between its requests)."""
    listing = workdir / "requests.tsv"
    listing.write_text("".join(f"{path}\t{token}\n" for _kind, path, token in requests), encoding="utf-8")
    wrk(port, "lookups.lua", [str(listing)], clients, 1)  # the connections, each route's and the pool's first use
    if think_ms:
        return wrk(port, "lookups_paced.lua", [str(listing), f"{think_ms:g}"], clients, seconds)
    return wrk(port, "lookups.lua", [str(listing)], clients, seconds)


def baseline(database_url: str, clients: int, seconds: float, scale: int, progress) -> dict:
    """The lookup's database floor (`baseline.LOOKUP`) at `clients`, on the same server (PostgreSQL: a
    scratch database beside the demo's) or at the same synchronous level (SQLite)."""
    from ..core.policy import load_policy
    from .baseline import LOOKUP, run_baseline

    db = "sqlite" if database_url.startswith("sqlite") else "postgres"
    progress(f"baseline: {clients} clients, {seconds:g} s")
    out = run_baseline(db, clients, seconds, pg_url=database_url, scale=scale, progress=progress, script=LOOKUP,
                       sqlite_synchronous=load_policy().storage.sqlite_synchronous)
    return {f: out[f] for f in ("tps", "p50_ms", "p99_ms", "errors", "baseline", "source")}


def run(database_url: str, demo_json: Path | None, clients: int = 8, seconds: float = 20, key: bytes | None = None,
        seed: int = 1, progress=print, client: str = "auto", workers: int = 1, baseline_scale: int = 10,
        think_ms: float = 0) -> dict:
    """`client`: "wrk", "python" or "auto" (wrk when installed); `workers`: the server's processes;
    `baseline_scale`: the baseline's table of 100,000 x scale rows (10: a million, the million's size);
    `think_ms` (wrk only): after the run at full speed, one more where each client pauses ~think_ms between
    its requests (`paced`: the latency of a lookup when the server is not saturated; the target is judged
    on the run at full speed)."""
    client = load_generator(client, think_ms)
    if key is None:
        from ..config import Settings

        key = Settings.from_env().secret_key
    if demo_json is not None:
        report = json.loads(demo_json.read_text(encoding="utf-8"))
        clerk = next(u["api_token"] for u in report["staff"] if u["role"] == "clerk")
        teller = next(u for u in report["staff"] if u["role"] == "teller")
    else:
        clerk, teller = _tokens(database_url, key)
    bank = teller["where"].split("-")[0]  # the teller's outlet code starts with its bank's code
    progress(f"sampling {SAMPLE} cardholders of {bank}")
    people = sample(database_url, bank, SAMPLE, seed)
    if not people:
        raise RuntimeError("no cardholders found: is this a demo database?")
    backlog = unsealed(database_url)
    if backlog >= BACKLOG_WARNING:
        progress(f"warning: {backlog:,}{'+' if backlog > BACKLOG_WARNING * 10 else ''} audit records wait to be "
                 "sealed; the server's sealer works through them during the run (2,000-7,000 a second on a 2-core "
                 "host) and the figures are not those of a steady city: `sscard audit seal` first")
    floor = baseline(database_url, clients, seconds, baseline_scale, progress)
    workdir = Path(tempfile.mkdtemp(prefix="sscard-bench-lookups-"))
    server = Server(database_url, key, workdir, workers=workers)
    try:
        server.ready()
        if client == "wrk":
            loop_before = calibrate()
            requests = _requests(people, clerk, teller["api_token"])
            out = _wrk(server.port, requests, workdir, clients, seconds)
            out["by_kind"] = {  # each kind alone, a shorter run each
                kind: {f: round(v, 2) for f, v in _wrk(server.port, [r for r in requests if r[0] == kind], workdir,
                                                      clients, max(2.0, seconds / 4)).items()
                       if f in ("tps", "p50_ms", "p99_ms", "ok")} for kind in KINDS}
            if think_ms:
                progress(f"paced: {clients} clients, ~{think_ms:g} ms between each one's requests")
                paced = _wrk(server.port, requests, workdir, clients, seconds, think_ms)
                out["paced"] = {"think_ms": think_ms, **{f: round(v, 2) for f, v in paced.items() if f in (
                    "tps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "ok", "errors")}}
            loop_after = calibrate()
            return _finish(out, clients, people, {}, loop_before, loop_after, "wrk (C, 2 threads)", workers, floor,
                           backlog)
        http = HttpClient(server.port)
        step = [0] * clients
        latencies: dict[str, list[float]] = {k: [] for k in KINDS}
        refused: dict[str, int] = {}

        def one(c: int, rng: random.Random) -> bool:
            kind = KINDS[step[c] % len(KINDS)]
            step[c] += 1
            citizen_id, card_number, pan = people[rng.randrange(len(people))]
            path, token = {
                "citizen_id": (f"/api/v1/persons?citizen_id={citizen_id}", clerk),
                "card_number": (f"/api/v1/cards/{card_number}", clerk),
                "pan": (f"/api/v1/bank-accounts/{pan}/statement?limit=5", teller["api_token"]),
            }[kind]
            t0 = time.perf_counter()
            status, body = http.get(c, path, token)
            if status != 200:
                label = f"{kind}:{status}:{body[:60].decode(errors='replace')}"
                refused[label] = refused.get(label, 0) + 1
                return False
            if step[c] > len(KINDS):  # each kind's first answer on a connection is not measured (drive's rule)
                latencies[kind].append(time.perf_counter() - t0)
            return True

        loop_before = calibrate()
        out = drive(clients, seconds, one)
        loop_after = calibrate()
        http.close()
    finally:
        server.close()
        shutil.rmtree(workdir, ignore_errors=True)
    out["by_kind"] = {k: {f: round(v, 2) for f, v in figures(lat, out["seconds"], 0).items()
                          if f in ("tps", "p50_ms", "p99_ms", "ok")} for k, lat in latencies.items()}
    return _finish(out, clients, people, refused, loop_before, loop_after, "python (threads)", workers, floor, backlog)


def load_generator(client: str, think_ms: float = 0) -> str:
    """The client that drives the run: `client`, or for "auto" wrk when installed, else Python; a paced run
    (think_ms) needs wrk (ValueError), which the CLI asks before any work is done."""
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    if think_ms and client != "wrk":
        raise ValueError("a paced run (--think-ms) needs wrk (make wrk)")
    return client


BACKLOG_WARNING = 10_000


def unsealed(url: str) -> int:
    """How many audit records wait for the sealer (counted up to 10 x BACKLOG_WARNING: a bulk load's
    year leaves millions, session 30)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM (SELECT 1 FROM audit_unsealed LIMIT :n) AS u"),
                                    {"n": BACKLOG_WARNING * 10 + 1}).scalar() or 0)
    finally:
        engine.dispose()


def _finish(out: dict, clients: int, people: list, refused: dict, loop_before: float, loop_after: float,
            client: str, workers: int, floor: dict, backlog: int) -> dict:
    """The run's figures, with the baseline's and the ratios to it: `tps_ratio` (lookups a second against the
    floor's), `p99_ratio` (the p99 against the floor's p99: how many times the database's own wait)."""
    ratios = {"tps_ratio": round(out["tps"] / floor["tps"], 3) if floor["tps"] else None,
              "p99_ratio": round(out["p99_ms"] / floor["p99_ms"], 2) if floor["p99_ms"] else None}
    return out | {"clients": clients, "client": client, "server_workers": workers, "sampled_people": len(people),
                  "refused": refused, "calibration_ms": [round(loop_before), round(loop_after)],
                  "baseline": floor, **ratios, "unsealed_at_start": backlog,
                  "target_p99_ms": 5.0, "met": out["p99_ms"] < 5.0 and not out["errors"]}
