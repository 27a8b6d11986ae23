"""`sscard account statement PAN`, `sscard account check` and `sscard bench ledger`.

The benchmark, in one run, on a scratch database (a temporary SQLite file, or a PostgreSQL database
`sscard_bench` it creates and drops), with N client threads for S seconds each:
  (a) baseline: the pgbench TPC-B transaction (update account, select it, update teller, update branch,
      insert history), one per transaction, same driver (SQLAlchemy + psycopg / sqlite3), same database,
      its own scratch tables, scale 1 (1 branch, 10 tellers, 100,000 accounts). Like pgbench it runs at
      the server's default isolation (READ COMMITTED on PostgreSQL; SQLite: BEGIN IMMEDIATE);
  (b) sscard transfers through the service layer, group-committed (services/batching), each with its
      PIN check, limits, audit record and idempotency record, at SERIALIZABLE;
  (c) sscard payments through the HTTP terminal API (uvicorn in a subprocess on 127.0.0.1), driven by
      keep-alive HTTP/1.1 connections, one per client thread (a minimal client: see _HttpClient);
  (d) the transfers of (b) one per transaction through the ordinary operation frame: what group commit
      is measured against on the same work.
It prints tps, p50 and p99 of each and the ratios b/a, c/a and b/d, and checks the ledger afterwards.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import typer

from ..core.errors import SscardError

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"
BENCH_PIN = "147258"


def register(app: typer.Typer) -> None:
    from . import _app, console, fail

    account_app = typer.Typer(no_args_is_help=True, help="Bank accounts: statements and the ledger check.")
    app.add_typer(account_app, name="account")
    bench = _bench_group(app)

    @account_app.command("statement")
    def statement(pan: str, limit: int = typer.Option(20, min=1, max=200), before_id: int | None = None,
                  as_json: bool = typer.Option(False, "--json")) -> None:
        """Balance and history of the account behind a PAN, newest first (page with --before-id)."""
        from rich.table import Table

        from ..core.roles import CLI_OPERATOR
        from ..services import banking

        try:
            out = banking.statement(_app(), CLI_OPERATOR, pan, limit=limit, before_id=before_id)
        except SscardError as exc:
            fail(exc)
            return
        if as_json:
            console.print_json(json.dumps(out, default=str, ensure_ascii=False))
            return
        console.print(f"{out['pan']}  status {out['status']}  balance {out['balance']}  available {out['available']}")
        table = Table()
        for col in ("id", "at", "code", "kind", "in/out", "amount", "counterparty", "ref"):
            table.add_column(col)
        for e in out["entries"]:
            table.add_row(str(e["id"]), str(e["at"])[:19], e["code"], e["kind"],
                          "out" if e["direction"] == "debit" else "in", e["amount"], e["counterparty"], e["ref"])
        console.print(table)
        if out["next_before_id"]:
            console.print(f"more: --before-id {out['next_before_id']}")

    @account_app.command("check")
    def check() -> None:
        """Recompute every ledger account from its transfers; exit 1 if anything does not add up."""
        from ..core.roles import CLI_OPERATOR
        from ..services import banking

        out = banking.ledger_check(_app(), CLI_OPERATOR)
        console.print_json(json.dumps(out))
        if not out["ok"]:
            raise typer.Exit(1)

    @bench.command("ledger")
    def bench_ledger(
        db: str = typer.Option("sqlite", help="sqlite | postgres"),
        clients: int = typer.Option(8, min=1, max=64),
        seconds: float = typer.Option(10.0, min=1.0),
        pg_url: str = typer.Option(DEFAULT_PG, help="PostgreSQL server (a scratch database is created on it)"),
        accounts: int = typer.Option(20, min=2, help="cardholders created through the services"),
        workers: int = typer.Option(1, min=1, max=16, help="uvicorn worker processes for (c)"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Baseline TPC-B vs sscard transfers (service layer, batched) vs payments over HTTP."""
        if db not in ("sqlite", "postgres"):
            raise typer.BadParameter("--db is sqlite or postgres")
        report = run_bench(db, clients, seconds, pg_url, accounts, workers=workers, progress=lambda m: console.print(f"[dim]{m}[/dim]"))
        if as_json:
            console.print_json(json.dumps(report))
            return
        for name in ("a_baseline_tpcb", "b_service_transfers", "c_http_payments", "d_unbatched_transfers"):
            r = report[name]
            console.print(f"{name:22} tps {r['tps']:9.1f}   p50 {r['p50_ms']:7.2f} ms   p99 {r['p99_ms']:7.2f} ms"
                          f"   ok {r['ok']}  errors {r['errors']}")
        console.print(f"ratios: b/a {report['ratio_b_a']:.2f}   c/a {report['ratio_c_a']:.2f}   "
                      f"b/d {report['ratio_b_d']:.2f} (group commit against one transaction per transfer)   "
                      f"(targets b/a >= 1.0, c/a >= 0.5 with p99 < 20 ms at 8 clients)")
        console.print(f"batching: {report['batching']}   ledger check ok: {report['ledger_ok']}")
        console.print(f"machine: a fixed Python loop took {report['calibration_ms'][0]:.0f} ms before the run and "
                      f"{report['calibration_ms'][1]:.0f} ms after (on a shared host the same loop can take twice "
                      "as long from one minute to the next; compare runs whose loops agree)")


def _bench_group(app: typer.Typer) -> typer.Typer:
    """The shared `sscard bench` group: reuse it when another area made it first."""
    for group in app.registered_groups:
        if group.name == "bench" and group.typer_instance is not None:
            return group.typer_instance
    bench = typer.Typer(no_args_is_help=True, help="Benchmarks on a scratch database.")
    app.add_typer(bench, name="bench")
    return bench


# ---------------------------------------------------------------- the benchmark


def _calibrate() -> float:
    """Milliseconds of a fixed pure-Python loop: how fast this machine is right now."""
    start = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i
    return (time.perf_counter() - start) * 1000


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _drive(clients: int, seconds: float, work: Callable[[int, random.Random], bool]) -> dict:
    """N threads calling work() for S seconds; latencies of the successful calls."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()

    def loop(c: int) -> None:
        rng = random.Random(c)
        first = True  # each client's first call (its connection, the server's threads) is not measured
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                ok = work(c, rng)
            except Exception:  # noqa: BLE001  counted, not fatal: the run goes on
                ok = False
            if ok and first:
                first = False
            elif ok:
                latencies[c].append(time.perf_counter() - t0)
            else:
                errors[c] += 1

    threads = [threading.Thread(target=loop, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    flat = [x for lat in latencies for x in lat]
    return {"tps": len(flat) / elapsed, "p50_ms": _percentile(flat, 0.50) * 1000,
            "p99_ms": _percentile(flat, 0.99) * 1000, "ok": len(flat), "errors": sum(errors),
            "seconds": round(elapsed, 2)}


def _scratch(db: str, pg_url: str) -> tuple[str, Callable[[], None]]:
    if db == "sqlite":
        tmp = tempfile.mkdtemp(prefix="sscard-bench-")
        return f"sqlite:///{tmp}/bench.db", lambda: shutil.rmtree(tmp, ignore_errors=True)
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(pg_url)
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = "sscard_bench"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


def _tpcb(url: str, clients: int, seconds: float) -> dict:
    """pgbench's TPC-B-like script at scale 1, in scratch tables, one transaction per iteration."""
    from sqlalchemy import create_engine, text

    from ..db import make_engine

    if url.startswith("sqlite"):
        engine = make_engine(url, pool_size=clients)
    else:  # pgbench runs at the default READ COMMITTED
        engine = create_engine(url, pool_size=clients, max_overflow=clients, isolation_level="READ COMMITTED")
    n_accounts, n_tellers = 100_000, 10
    with engine.begin() as conn:
        for stmt in (
            "CREATE TABLE bench_branches (bid INTEGER PRIMARY KEY, bbalance INTEGER NOT NULL, filler CHAR(88))",
            "CREATE TABLE bench_tellers (tid INTEGER PRIMARY KEY, bid INTEGER, tbalance INTEGER NOT NULL, filler CHAR(84))",
            "CREATE TABLE bench_accounts (aid INTEGER PRIMARY KEY, bid INTEGER, abalance INTEGER NOT NULL, filler CHAR(84))",
            "CREATE TABLE bench_history (tid INTEGER, bid INTEGER, aid INTEGER, delta INTEGER, mtime TIMESTAMP, "
            "filler CHAR(22))",
        ):
            conn.execute(text(stmt))
        conn.execute(text("INSERT INTO bench_branches VALUES (1, 0, '')"))
        conn.execute(text("INSERT INTO bench_tellers VALUES (:t, 1, 0, '')"), [{"t": t} for t in range(1, n_tellers + 1)])
        conn.execute(text("INSERT INTO bench_accounts VALUES (:a, 1, 0, '')"),
                     [{"a": a} for a in range(1, n_accounts + 1)])

    def work(c: int, rng: random.Random) -> bool:
        aid, tid, delta = rng.randint(1, n_accounts), rng.randint(1, n_tellers), rng.randint(-5000, 5000)
        with engine.begin() as conn:
            conn.execute(text("UPDATE bench_accounts SET abalance = abalance + :d WHERE aid = :a"), {"d": delta, "a": aid})
            conn.execute(text("SELECT abalance FROM bench_accounts WHERE aid = :a"), {"a": aid}).scalar()
            conn.execute(text("UPDATE bench_tellers SET tbalance = tbalance + :d WHERE tid = :t"), {"d": delta, "t": tid})
            conn.execute(text("UPDATE bench_branches SET bbalance = bbalance + :d WHERE bid = 1"), {"d": delta})
            conn.execute(text("INSERT INTO bench_history (tid, bid, aid, delta, mtime) "
                              "VALUES (:t, 1, :a, :d, CURRENT_TIMESTAMP)"),
                         {"t": tid, "a": aid, "d": delta})
        return True

    try:
        return _drive(clients, seconds, work)
    finally:
        engine.dispose()


def _setup_city(app, n: int) -> tuple[list[str], dict]:
    """A bank with an outlet, an ATM and a POS; n activated cardholders with money, through the services."""
    from datetime import date

    from ..core.identifiers import make_citizen_id
    from ..core.roles import CLI_OPERATOR, SYSTEM_ACTOR, Channel
    from ..services import banking, cards, enrolment, production, staff
    from ..services import city as city_svc

    op = CLI_OPERATOR
    city_svc.add_bank(app, op, "GSB", "工商银行", "622202", "95588", name_en="ICBC")
    city_svc.add_outlet(app, op, "GSB", "GSB-001", "工商银行西湖支行")
    city_svc.add_center(app, op, "C01", "西湖区社保卡服务中心", "330106")
    city_svc.add_terminal(app, op, "ATM-1", "atm", "ATM-1", outlet_code="GSB-001")
    city_svc.add_terminal(app, op, "POS-1", "pos", "POS-1", bank_code="GSB", merchant_name="西湖超市")
    staff.add_user(app, op, "clerk", "bench-pass-1", "clerk", center_code="C01")
    staff.add_user(app, op, "teller", "bench-pass-1", "teller", outlet_code="GSB-001")
    clerk = staff.authenticate_staff(app, "clerk", "bench-pass-1", Channel.WINDOW)
    teller = staff.authenticate_staff(app, "teller", "bench-pass-1", Channel.BANK_OUTLET)
    applied = []
    for i in range(n):
        cid = make_citizen_id("330106", date(1950 + i % 40, 1 + i % 12, 1 + i % 28), 300 + 2 * i)
        pid = enrolment.register_person(app, clerk, cid, f"持卡人{i}")["id"]
        applied.append((enrolment.apply_first_card(app, clerk, pid, "GSB", "C01")["card_number"], cid))
    batch = production.start_batch(app, clerk, "C01")
    production.complete_batch(app, clerk, batch["batch"])
    pans = []
    from sqlalchemy import select

    from ..models.foundation import BankAccount, Card

    for number, cid in applied:
        cards.collect_card(app, clerk, number, cid)
        with app.db.session() as s:
            pan = s.scalar(select(BankAccount.pan).join(Card, Card.id == BankAccount.card_id)
                           .where(Card.card_number == number))
        pin = BENCH_PIN if BENCH_PIN not in cid else "258369"
        banking.activate(app, teller, pan, cid, pin, pin, cardholder_in_person=True)
        banking.credit_pension(app, SYSTEM_ACTOR, pan, 100_000_000, "bench")
        pans.append((pan, pin))
    tokens = {code: staff.issue_token(app, op, terminal_code=code)["token"] for code in ("ATM-1", "POS-1")}
    return pans, tokens


class _HttpClient:
    """The load generator of (c): one keep-alive HTTP/1.1 connection per client thread, each request
    written as bytes and its answer read by Content-Length.

    pgbench is a C program that costs the database server almost nothing; a Python load generator on
    the same 2 cores takes CPU from the server it measures (httpx ~1 ms per request, http.client
    ~0.3 ms), so this one does the least it can. A request that fails is retried by nobody: counted."""

    def __init__(self, port: int, token: str):
        self.port = port
        self.head = (f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
                     "Content-Type: application/json\r\n").encode()
        self.socks: dict[int, tuple[socket.socket, object]] = {}

    def post(self, client: int, path: str, body: dict) -> int:
        """POST with a fresh Idempotency-Key; the answer's status (its body is read and dropped)."""
        conn = self.socks.get(client)
        if conn is None:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = self.socks[client] = (sock, sock.makefile("rb"))
        sock, reader = conn
        data = json.dumps(body).encode()
        try:
            sock.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\n" + self.head + b"Idempotency-Key: "
                         + uuid.uuid4().hex.encode() + b"\r\nContent-Length: " + str(len(data)).encode()
                         + b"\r\n\r\n" + data)
            status_line = reader.readline()
            status = int(status_line.split(b" ", 2)[1])
            length = None
            while True:
                line = reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length is None:
                raise OSError("answer without Content-Length")
            reader.read(length)
        except (OSError, ValueError, IndexError):
            self.close(client)
            raise
        return status

    def close(self, client: int | None = None) -> None:
        for c in [client] if client is not None else list(self.socks):
            found = self.socks.pop(c, None)
            if found is not None:
                found[1].close()
                found[0].close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_bench(db: str, clients: int, seconds: float, pg_url: str = DEFAULT_PG, accounts: int = 20, *,
              workers: int = 1, progress: Callable[[str], None] = lambda m: None) -> dict:
    import httpx
    from sqlalchemy import select

    from ..config import Settings
    from ..core.policy import load_policy
    from ..models.foundation import Terminal
    from ..services import banking, batching, ledger
    from ..services.app import build_app
    from ..services.staff import terminal_actor

    before = _calibrate()
    url, drop = _scratch(db, pg_url)
    key = secrets.token_bytes(32)
    workdir = Path(tempfile.mkdtemp(prefix="sscard-bench-var-"))
    settings = Settings(database_url=url, secret_key=key, var_dir=workdir)
    high = {"atm_withdrawal_per_day_fen": 10**12, "transfer_per_day_fen": 10**12, "payment_per_day_fen": 10**12}
    app = build_app(settings, policy=load_policy(limits=high), pool_size=clients + 2)
    server = None
    try:
        app.db.migrate()
        progress(f"scratch database ready: {db}; creating {accounts} cardholders through the services")
        pans, tokens = _setup_city(app, accounts)

        progress(f"(a) baseline TPC-B, {clients} clients, {seconds:.0f} s")
        a = _tpcb(url, clients, seconds)

        progress(f"(b) service-layer transfers, batched, {clients} clients, {seconds:.0f} s")
        with app.db.session() as s:
            atm = terminal_actor(s, s.scalar(select(Terminal).where(Terminal.code == "ATM-1")))

        def transfer(c: int, rng: random.Random) -> bool:
            (src, pin), (dst, _p) = rng.sample(pans, 2)
            batching.call(app, banking.transfer, atm, src, dst, rng.randint(1, 500), pin,
                          idempotency_key=uuid.uuid4().hex)
            return True

        b = _drive(clients, seconds, transfer)
        writer = batching.batcher(app)
        batch_stats = {"requests": writer.requests, "batches": writer.batches,
                       "mean_batch": round(writer.requests / max(1, writer.batches), 2),
                       "writer_cpu_us_per_request": round(1e6 * writer.cpu_time() / max(1, writer.requests))}

        progress(f"(d) the same transfers one per transaction (no group commit), {clients} clients, {seconds:.0f} s")

        def transfer_alone(c: int, rng: random.Random) -> bool:
            (src, pin), (dst, _p) = rng.sample(pans, 2)
            banking.transfer(app, atm, src, dst, rng.randint(1, 500), pin, idempotency_key=uuid.uuid4().hex)
            return True

        d = _drive(clients, seconds, transfer_alone)

        progress(f"(c) payments over HTTP, uvicorn subprocess, {clients} clients, {seconds:.0f} s")
        port = _free_port()
        env = {**os.environ, "SSCARD_DATABASE_URL": url, "SSCARD_SECRET_KEY": key.hex(),
               "SSCARD_VAR_DIR": str(workdir), "SSCARD_CONFIG": str(workdir / "none.toml"),
               "SSCARD_LIMITS__PAYMENT_PER_DAY_FEN": str(10**12)}
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "sscard.api.asgi:application", "--host", "127.0.0.1", "--port",
             str(port), "--log-level", "warning", "--no-access-log", "--workers", str(workers)],
            cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(base + "/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the server did not start")
        client = _HttpClient(port, tokens["POS-1"])

        def pay(c: int, rng: random.Random) -> bool:
            pan, pin = pans[rng.randrange(len(pans))]
            return client.post(c, "/api/v1/terminal/payments",
                               {"pan": pan, "amount_fen": rng.randint(1, 500), "pin": pin}) == 200

        pay(0, random.Random(0))  # warm up the server's first request
        c = _drive(clients, seconds, pay)
        client.close()
        with app.db.session() as s:
            check = ledger.check_invariants(s)
        return {
            "db": db, "clients": clients, "seconds": seconds, "server_workers": workers,
            "a_baseline_tpcb": a, "b_service_transfers": b, "c_http_payments": c, "d_unbatched_transfers": d,
            "ratio_b_a": b["tps"] / a["tps"] if a["tps"] else 0.0,
            "ratio_b_d": b["tps"] / d["tps"] if d["tps"] else 0.0,
            "ratio_c_a": c["tps"] / a["tps"] if a["tps"] else 0.0,
            "batching": batch_stats, "ledger_ok": check["ok"], "ledger_transfers": check["transfers"],
            "calibration_ms": [round(before, 1), round(_calibrate(), 1)],
        }
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        app.close()
        drop()
        shutil.rmtree(workdir, ignore_errors=True)
