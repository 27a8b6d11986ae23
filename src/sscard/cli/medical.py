"""`sscard medical ...` (institutions, terminals, the monthly contribution credit) and `sscard bench medical`.

The benchmark builds a scratch database (a temporary SQLite file, or a new PostgreSQL database that it
drops afterwards), a small city with insured cardholders, designated institutions and terminals, starts
`uvicorn sscard.api.asgi:application` on a free 127.0.0.1 port, and drives it with N concurrent clients,
each doing pre-settlement + settlement through /api/v1/terminal/medical for S seconds.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import typer

from ..core.errors import SscardError

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def register(app: typer.Typer) -> None:
    from . import _app, console, err_console, fail

    medical_app = typer.Typer(no_args_is_help=True, help="Medical settlement: institutions and contributions.")
    app.add_typer(medical_app, name="medical")

    @medical_app.command("credit")
    def credit(
        month: str = typer.Option(..., help="YYYY-MM: the month whose contributions are credited"),
        amount: str = typer.Option("", help="yuan per person (default: policy medical.monthly_credit_fen)"),
        citizen_id: list[str] = typer.Option(None, "--citizen-id", help="only these people (repeatable)"),
        chunk: int = typer.Option(1000, min=1, help="people per transaction"),
    ) -> None:
        """Credit a month's contributions to personal accounts (all registered people, or those named).

        A person already credited for that month is skipped, so the job can be run again safely."""
        from sqlalchemy import select

        from ..core.money import yuan_to_fen
        from ..core.roles import CLI_OPERATOR
        from ..models.foundation import Person
        from ..services import medical

        sscard = _app()
        try:
            fen = yuan_to_fen(amount) if amount else sscard.policy.medical.monthly_credit_fen
            if citizen_id:
                items = [{"citizen_id": c, "amount_fen": fen} for c in citizen_id]
            else:
                with sscard.db.session() as s:
                    items = [{"person_id": pid, "amount_fen": fen} for pid in s.scalars(select(Person.id))]
            totals = {"credited": 0, "skipped": 0, "total_fen": 0}
            for start in range(0, len(items), chunk):
                out = medical.credit_month(sscard, CLI_OPERATOR, month, items[start:start + chunk])
                for k in totals:
                    totals[k] += out[k]
        except SscardError as exc:
            fail(exc)
        finally:
            sscard.close()
        console.print(f"month {month}: credited {totals['credited']}, already credited {totals['skipped']}, "
                      f"total {totals['total_fen'] / 100:.2f} yuan")

    @medical_app.command("add-institution")
    def add_institution(
        code: str, name: str,
        kind: str = typer.Option(..., help="hospital | pharmacy"),
        level: int | None = typer.Option(None, help="hospitals: 1, 2 or 3"),
        designated: bool = typer.Option(True, "--designated/--not-designated"),
        bank: str | None = typer.Option(None, help="bank code of the settlement account"),
        account_no: str = typer.Option("", help="settlement account number"),
    ) -> None:
        """Add a medical institution (designated for settlement unless --not-designated)."""
        from ..core.roles import CLI_OPERATOR
        from ..services import medical

        try:
            out = medical.add_institution(_app(), CLI_OPERATOR, code, name, kind, level, designated,
                                          settlement_bank_code=bank, settlement_account_no=account_no)
        except SscardError as exc:
            fail(exc)
        console.print(out)

    @medical_app.command("add-terminal")
    def add_terminal(institution: str, code: str, name: str = "") -> None:
        """Add a hospital/pharmacy terminal to an institution (then: sscard user token --terminal CODE)."""
        from ..core.roles import CLI_OPERATOR
        from ..services import medical

        try:
            console.print(medical.add_terminal(_app(), CLI_OPERATOR, institution, code, name))
        except SscardError as exc:
            fail(exc)

    @medical_app.command("institutions")
    def institutions() -> None:
        """List medical institutions."""
        from ..core.roles import CLI_OPERATOR
        from ..services import medical

        for inst in medical.list_institutions(_app(), CLI_OPERATOR)["institutions"]:
            console.print(f"{inst['code']:<10} {inst['kind']:<9} L{inst['level'] or '-'} "
                          f"{'designated' if inst['designated'] else 'NOT designated':<15} {inst['name']}")

    bench_app = _bench_group(app)

    @bench_app.command("medical")
    def bench_medical(
        db: str = typer.Option("sqlite", help="sqlite | postgres"),
        clients: int = typer.Option(8, min=1, max=64),
        seconds: float = typer.Option(10.0, min=1.0),
        workers: int = typer.Option(1, min=1, max=8, help="uvicorn worker processes"),
        people: int = typer.Option(5000, min=100, help="demo cardholders in the scratch database"),
        pg_url: str = typer.Option("", help="PostgreSQL server (default SSCARD_BENCH_POSTGRES_URL or "
                                            "SSCARD_TEST_POSTGRES_URL or local postgres)"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Settlements per second through the terminal API at N concurrent clients (scratch database)."""
        if db not in ("sqlite", "postgres"):
            err_console.print("--db is sqlite or postgres")
            raise typer.Exit(2)
        url = pg_url or os.environ.get("SSCARD_BENCH_POSTGRES_URL") or os.environ.get("SSCARD_TEST_POSTGRES_URL") \
            or DEFAULT_PG
        result = run_bench(db, clients, seconds, workers=workers, people=people, pg_url=url,
                           say=lambda m: err_console.print(m))
        if as_json:
            console.print_json(json.dumps(result))
        else:
            console.print(
                f"{result['db']}: {result['settlements']} settlements in {result['seconds']:.1f} s with "
                f"{result['clients']} clients = [bold]{result['per_second']:.1f} settlements/s[/bold] "
                f"(pre-settlement + settlement each; latency p50 {result['p50_ms']:.0f} ms, "
                f"p99 {result['p99_ms']:.0f} ms; errors {result['errors']}; checked {result['check']})"
            )


def _bench_group(app: typer.Typer) -> typer.Typer:
    """The shared `sscard bench` group: reuse it when another area made it first."""
    for group in app.registered_groups:
        if group.name == "bench" and group.typer_instance is not None:
            return group.typer_instance
    bench = typer.Typer(no_args_is_help=True, help="Benchmarks on a scratch database.")
    app.add_typer(bench, name="bench")
    return bench


# ---------------------------------------------------------------- the benchmark


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Scratch:
    """A scratch database: a temporary SQLite file or a new PostgreSQL database, removed afterwards."""

    def __init__(self, kind: str, pg_url: str, tmp: Path):
        self.kind = kind
        if kind == "sqlite":
            self.url = f"sqlite:///{tmp / 'bench.db'}"
            return
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        base = make_url(pg_url)
        self.name = f"sscard_bench_{uuid.uuid4().hex[:8]}"
        self.admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = base.set(database=self.name).render_as_string(hide_password=False)

    def drop(self) -> None:
        if self.kind == "postgres":
            from sqlalchemy import text

            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            self.admin.dispose()


def _build_city(app, people: int, clients: int) -> dict:
    """The demo city (banks, centers, staff, `people` cardholders in bulk, every area's demo data, this
    area's institutions and insured personal accounts), plus one terminal and token per client.

    A realistically sized database matters on PostgreSQL: with a few rows per table the planner scans
    whole tables, and SERIALIZABLE then sees every concurrent settlement as a conflict."""
    from sqlalchemy import select, text

    from ..core.roles import CLI_OPERATOR
    from ..demo.run import run_demo
    from ..models.foundation import Card
    from ..models.medical import PersonalAccount
    from ..services import medical, staff

    run_demo(app, people, seed=1)
    _seed_idempotency_history(app, clients, 50_000)
    if app.db.dialect == "postgresql":  # statistics of the loaded tables (the empty ones would say "tiny")
        with app.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in ("persons", "cards", "bank_accounts", "medical_personal_accounts", "idempotency_records",
                          "medical_contribution_credits", "medical_annual_usage", "medical_account_movements"):
                conn.execute(text(f"ANALYZE {table}"))
    tokens = []
    for i in range(clients):
        inst = "BJ-XH" if i % 2 == 0 else "BJ-TRT"
        code = f"BENCH-{inst}-{i + 1}"
        medical.add_terminal(app, CLI_OPERATOR, inst, code)
        tokens.append(staff.issue_token(app, CLI_OPERATOR, terminal_code=code)["token"])
    with app.db.session() as s:
        rows = s.execute(
            select(Card.card_number, Card.ident_code, Card.person_id)
            .join(PersonalAccount, PersonalAccount.person_id == Card.person_id)
            .where(Card.ss_status == "normal", Card.ss_pw_digest.is_(None), Card.ss_pw_locked.is_(False))
            .order_by(Card.person_id)
        ).all()
    return {"tokens": tokens, "cards": [(r.card_number, r.ident_code) for r in rows],
            "person_ids": [r.person_id for r in rows]}


def _seed_idempotency_history(app, clients: int, rows: int) -> None:
    """Yesterday's answers, as a running system keeps them for retries. An empty idempotency index makes
    PostgreSQL lock the whole index for every keyed request (SERIALIZABLE), which no real system sees."""
    from datetime import timedelta

    from sqlalchemy import insert

    from ..models.foundation import IdempotencyRecord

    at = app.clock.now() - timedelta(days=1)
    scopes = [f"terminal:BENCH-{'BJ-XH' if i % 2 == 0 else 'BJ-TRT'}-{i + 1}" for i in range(clients)]
    with app.db.session() as s:
        for start in range(0, rows, 10_000):
            s.execute(insert(IdempotencyRecord), [
                {"scope": scopes[i % len(scopes)], "key": uuid.uuid4().hex, "request_hash": "0" * 64,
                 "status": 200, "response": "{}", "created_at": at}
                for i in range(start, min(rows, start + 10_000))
            ])


def _code(response) -> str:
    try:
        return str(response.json().get("code", response.status_code))
    except ValueError:
        return f"http_{response.status_code}"


def _client_loop(base: str, token: str, cards: list, deadline: float, out: dict, lock: threading.Lock) -> None:
    import httpx

    done, errors, latencies = 0, {}, []
    headers = {"Authorization": f"Bearer {token}"}
    bill = [{"category": "drug", "name": "阿莫西林胶囊", "amount_fen": 3_456, "covered": True},
            {"category": "treatment", "name": "门诊诊查费", "amount_fen": 2_500, "covered": True},
            {"category": "material", "name": "自费敷料", "amount_fen": 800, "covered": False}]
    i = 0
    with httpx.Client(base_url=base, timeout=30.0) as http:
        while time.perf_counter() < deadline:
            number, ident = cards[i % len(cards)]
            i += 1
            started = time.perf_counter()
            q = http.post("/api/v1/terminal/medical/pre-settlements", headers=headers,
                          json={"card_number": number, "ident_code": ident, "lines": bill})
            if q.status_code != 200:
                errors[_code(q)] = errors.get(_code(q), 0) + 1
                continue
            r = http.post("/api/v1/terminal/medical/settlements",
                          headers=headers | {"Idempotency-Key": uuid.uuid4().hex},
                          json={"quote": q.json()["quote"], "card_number": number, "ident_code": ident,
                                "ss_password": "123456", "pay_with": "cash"})
            if r.status_code == 201:
                done += 1
                latencies.append(time.perf_counter() - started)
            else:
                errors[_code(r)] = errors.get(_code(r), 0) + 1
    with lock:
        out["done"] += done
        out["latencies"].extend(latencies)
        for k, v in errors.items():
            out["errors"][k] = out["errors"].get(k, 0) + v


def run_bench(db: str, clients: int, seconds: float, *, workers: int = 1, people: int = 5000,
              pg_url: str = DEFAULT_PG, say=print) -> dict:
    import httpx

    from ..config import Settings
    from ..services.app import build_app

    with tempfile.TemporaryDirectory(prefix="sscard-bench-") as tmpdir:
        tmp = Path(tmpdir)
        scratch = _Scratch(db, pg_url, tmp)
        server = None
        try:
            key = secrets.token_bytes(32)
            settings = Settings(database_url=scratch.url, secret_key=key, var_dir=tmp, fast_hashing=True)
            app = build_app(settings)
            app.db.migrate()
            say(f"building the demo city: {people} cardholders, {clients} medical terminals ...")
            city = _build_city(app, people, clients)
            say(f"{len(city['cards'])} insured cardholders with a normal card")
            app.close()
            port = _free_port()
            env = os.environ | {"SSCARD_DATABASE_URL": scratch.url, "SSCARD_SECRET_KEY": key.hex(),
                                "SSCARD_VAR_DIR": str(tmp)}
            server = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "sscard.api.asgi:application", "--host", "127.0.0.1",
                 "--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(base + "/openapi.json", timeout=1.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None:
                    raise RuntimeError("uvicorn exited: " + server.stderr.read().decode()[-2000:])
                time.sleep(0.1)
            per_client = [city["cards"][i::clients] for i in range(clients)]
            # a short warm-up (connections, first-use caches), not counted
            _client_loop(base, city["tokens"][0], per_client[0], time.perf_counter() + 1.0,
                         {"done": 0, "latencies": [], "errors": {}}, threading.Lock())
            say(f"running {clients} clients for {seconds:.0f} s against {base} ({db}, {workers} worker(s)) ...")
            out = {"done": 0, "latencies": [], "errors": {}}
            lock = threading.Lock()
            started = time.perf_counter()
            deadline = started + seconds
            threads = [threading.Thread(target=_client_loop,
                                        args=(base, city["tokens"][i], per_client[i], deadline, out, lock))
                       for i in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - started
            check = _check(scratch.url, key, tmp, city["person_ids"])
            lat = sorted(out["latencies"]) or [0.0]
            return {
                "db": db, "clients": clients, "workers": workers, "seconds": elapsed, "settlements": out["done"],
                "per_second": out["done"] / elapsed, "p50_ms": statistics.median(lat) * 1000,
                "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, "errors": out["errors"],
                "check": check,
            }
        finally:
            if server is not None:
                server.terminate()
                try:
                    server.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    server.kill()
            scratch.drop()


def _check(url: str, key: bytes, tmp: Path, person_ids: list[int]) -> str:
    """After the run: every personal account is the sum of its movements, and the settlements' personal
    shares are exactly the settlement movements."""
    from sqlalchemy import func, select

    from ..config import Settings
    from ..models.medical import MedicalSettlement, PersonalAccount, PersonalAccountMovement
    from ..services.app import build_app

    app = build_app(Settings(database_url=url, secret_key=key, var_dir=tmp, fast_hashing=True))
    mv = PersonalAccountMovement
    try:
        with app.db.session() as s:
            balances = s.scalar(select(func.coalesce(func.sum(PersonalAccount.balance_fen), 0)))
            moved = s.scalar(select(func.coalesce(func.sum(mv.amount_fen), 0)))
            spent = s.scalar(select(func.coalesce(func.sum(MedicalSettlement.personal_fen), 0)))
            spent_moves = s.scalar(select(func.coalesce(func.sum(mv.amount_fen), 0))
                                   .where(mv.kind.in_(("settlement", "refund"))))
            settled = s.scalar(select(func.count()).select_from(MedicalSettlement))
        ok = balances == moved and spent == -spent_moves
        return f"{'ok' if ok else 'MISMATCH'}: {settled} settlement rows; personal accounts = their movements"
    finally:
        app.close()
