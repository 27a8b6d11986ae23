"""The failover drill: payments and transfers over HTTP while the primary's postmaster is killed.

The formation (pg_auto_failover) promotes the standby; sscard's connections find the new primary
(multi-host URL with target_session_attrs=read-write); every client retries its request with the same
Idempotency-Key until it is answered. Afterwards the ledger is read back: every acknowledged payment or
transfer must be there exactly once, no refused one, and the ledger must balance.
"""

from __future__ import annotations

import contextlib
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
from dataclasses import dataclass, field
from pathlib import Path

from . import DATABASE, NODES, Formation, HaError

DRILL_DATABASE = "sscard_drill"  # a database of its own: the operator's `sscard` data is not touched


@dataclass
class Request:
    kind: str  # payment | transfer
    key: str
    body: dict
    sent_at: float = 0.0
    status: int | None = None  # the final answer's status; None: never answered
    answer: dict | None = None
    answered_at: float = 0.0
    tries: int = 0


@dataclass
class Outcome:
    requests: list[Request] = field(default_factory=list)
    killed: str | None = None
    killed_at: float | None = None
    promoted: str | None = None
    promoted_at: float | None = None
    rejoined_after: float | None = None
    acknowledged: int = 0
    refused: int = 0
    unanswered: int = 0
    lost: int = 0
    duplicated: int = 0
    refused_in_ledger: int = 0
    ledger_ok: bool = False
    account_check_rc: int | None = None
    longest_unavailability: float = 0.0
    refusals: dict = field(default_factory=dict)  # refusal code -> count

    @property
    def ok(self) -> bool:
        return (self.lost == 0 and self.duplicated == 0 and self.refused_in_ledger == 0 and self.unanswered == 0
                and self.ledger_ok and self.account_check_rc == 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sscard_cmd(*args: str) -> list[str]:
    """The `sscard` command of this installation (what an operator types)."""
    return [sys.executable, "-c", "from sscard.cli import main; main()", *args]


def _sscard(*args: str, env: dict, cwd: Path, log: Path, timeout: float = 600) -> None:
    with open(log, "ab") as out:
        proc = subprocess.run(_sscard_cmd(*args), env=env, cwd=cwd, stdout=out,
                              stderr=subprocess.STDOUT, timeout=timeout)
    if proc.returncode != 0:
        raise HaError(f"sscard {' '.join(args)} failed ({proc.returncode}): see {log}")


def _recreate_database(formation: Formation, name: str, *, drop_only: bool = False) -> None:
    import psycopg

    hosts = ",".join("127.0.0.1" for _ in NODES)
    ports = ",".join(str(formation.port(n)) for n in NODES)
    dsn = f"host={hosts} port={ports} dbname=postgres user=postgres target_session_attrs=read-write"
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def _accounts(url: str) -> list[tuple[str, str, str]]:
    """Active accounts with money: (pan, bank code, demo PIN)."""
    from sqlalchemy import create_engine, select

    from ..demo.people import demo_pin
    from ..models.foundation import Bank, BankAccount, Person

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(BankAccount.pan, Bank.code, Person.citizen_id)
                                .join(Bank, Bank.id == BankAccount.bank_id)
                                .join(Person, Person.id == BankAccount.person_id)
                                .where(BankAccount.status == "active", BankAccount.pin_locked.is_(False))).all()
    finally:
        engine.dispose()
    return [(pan, bank, demo_pin(cid)) for pan, bank, cid in rows]


class _Clients:
    """N client threads, each making payments (POS) and same-bank transfers (ATM) over HTTP; a request
    is sent again with the same key and body until it gets an answer (2xx or 4xx), or `give_up` passes."""

    def __init__(self, base: str, tokens: dict[str, str], accounts: list, clients: int, seconds: float,
                 give_up: float):
        self.base, self.tokens, self.accounts = base, tokens, accounts
        self.by_bank: dict[str, list] = {}
        for acc in accounts:
            self.by_bank.setdefault(acc[1], []).append(acc)
        self.clients, self.seconds, self.give_up = clients, seconds, give_up
        self.requests: list[Request] = []
        self.oks: list[float] = []  # when each 2xx answer came
        self._lock = threading.Lock()
        self.start = 0.0

    def run(self) -> None:
        self.start = time.monotonic()
        threads = [threading.Thread(target=self._client, args=(c,), daemon=True) for c in range(self.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.seconds + self.give_up + 30)

    def _next(self, rng: random.Random) -> tuple[Request, str]:
        """A payment at a POS of the card's bank (another bank's POS refuses: wrong_bank) or a transfer
        between two accounts of one bank at that bank's ATM; and the terminal that sends it."""
        pan, bank, pin = self.accounts[rng.randrange(len(self.accounts))]
        same = self.by_bank[bank]
        if rng.random() < 0.3 and len(same) >= 2:
            dst = same[rng.randrange(len(same))][0]
            if dst != pan:
                body = {"from_pan": pan, "to_pan": dst, "amount_fen": rng.randint(1, 300), "pin": pin}
                return Request("transfer", uuid.uuid4().hex, body), f"ATM-{bank}-001"
        body = {"pan": pan, "amount_fen": rng.randint(1, 300), "pin": pin}
        return Request("payment", uuid.uuid4().hex, body), f"POS-{bank}-001"

    def _client(self, c: int) -> None:
        import httpx

        rng = random.Random(c)
        paths = {"payment": "/api/v1/terminal/payments", "transfer": "/api/v1/terminal/transfers"}
        http = httpx.Client(base_url=self.base, timeout=10)
        end = self.start + self.seconds
        try:
            while time.monotonic() < end:
                req, terminal = self._next(rng)
                with self._lock:
                    self.requests.append(req)
                path = paths[req.kind]
                headers = {"Authorization": f"Bearer {self.tokens[terminal]}", "Idempotency-Key": req.key}
                req.sent_at = time.monotonic()
                deadline = end + self.give_up
                while time.monotonic() < deadline:
                    req.tries += 1
                    try:
                        resp = http.post(path, json=req.body, headers=headers)
                    except httpx.HTTPError:
                        http.close()
                        http = httpx.Client(base_url=self.base, timeout=10)
                        time.sleep(0.1)
                        continue
                    if resp.status_code >= 500:  # the server could not reach a primary: same key again
                        time.sleep(0.1)
                        continue
                    req.status, req.answered_at = resp.status_code, time.monotonic()
                    try:
                        req.answer = resp.json()
                    except ValueError:
                        req.answer = None
                    if resp.status_code < 300:
                        with self._lock:
                            self.oks.append(req.answered_at)
                    break
        finally:
            http.close()


def _verify(url: str, outcome: Outcome, first_transfer: int) -> None:
    """Read the ledger back: lost, duplicated, refused-but-present; and its invariants."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from ..models.foundation import AuditRecord
    from ..models.ledger import LedgerTransfer
    from ..services import ledger

    engine = create_engine(url)
    try:
        with Session(engine) as s:
            rows = s.execute(select(LedgerTransfer.transfer_id).where(
                LedgerTransfer.id > first_transfer, LedgerTransfer.code.in_(("payment", "transfer")))).scalars().all()
            keys = {r.key: r for r in outcome.requests}
            audits = s.execute(select(AuditRecord.idempotency_key, AuditRecord.object_id).where(
                AuditRecord.operation.in_(("bank.purchase", "bank.transfer")), AuditRecord.result == "ok",
                AuditRecord.idempotency_key.is_not(None))).all()
            outcome.ledger_ok = bool(ledger.check_invariants(s)["ok"])
    finally:
        engine.dispose()
    in_ledger: dict[str, int] = {}
    for tid in rows:
        in_ledger[tid] = in_ledger.get(tid, 0) + 1
    answered = [r for r in outcome.requests if r.status is not None and r.status < 300]
    acked = {r.answer["transfer_id"]: r for r in answered if r.answer and r.answer.get("transfer_id")}
    outcome.acknowledged = len(answered)
    outcome.refused = sum(1 for r in outcome.requests if r.status is not None and r.status >= 300)
    outcome.refusals = {}
    for r in outcome.requests:
        if r.status is not None and r.status >= 300:
            code = (r.answer or {}).get("code", str(r.status))
            outcome.refusals[code] = outcome.refusals.get(code, 0) + 1
    outcome.unanswered = sum(1 for r in outcome.requests if r.status is None)
    # each acknowledged request must be its own transfer in the ledger (two answers naming one transfer,
    # or an answer naming none, count as lost too)
    outcome.lost = sum(1 for tid in acked if tid not in in_ledger) + len(answered) - len(acked)
    # every transfer in the ledger that no client was told about, and any told twice
    extra = sum(n for tid, n in in_ledger.items() if tid not in acked) + sum(
        n - 1 for tid, n in in_ledger.items() if tid in acked and n > 1)
    committed_per_key: dict[str, int] = {}
    for key, _object in audits:
        if key in keys:
            committed_per_key[key] = committed_per_key.get(key, 0) + 1
    outcome.refused_in_ledger = sum(1 for key, r in keys.items()
                                    if r.status is not None and r.status >= 300 and committed_per_key.get(key))
    twice = sum(n - 1 for n in committed_per_key.values() if n > 1)
    outcome.duplicated = max(twice, extra - outcome.refused_in_ledger)


def _longest_gap(oks: list[float], start: float, end: float) -> float:
    marks = sorted([start, *oks, end])
    return max((b - a for a, b in zip(marks, marks[1:], strict=False)), default=0.0)


def run_drill(seconds: float = 60, clients: int = 8, people: int = 200, *, keep: bool = False,
              say: Callable[[str], None] = print) -> Outcome:
    """The whole drill; always tears down what it started (the formation, if it was not running)."""
    formation = Formation.default()
    formation.check_installed()
    created = not formation.exists()
    started = formation.primary() is None
    outcome = Outcome()
    finished = False
    workdir = Path(tempfile.mkdtemp(prefix="sscard-drill-"))
    server = None
    try:
        if started:
            formation = _bring_up(formation, created, say)
        else:
            say(f"using the running formation under {formation.root}")
        primary = formation.primary()
        say(f"primary {primary}, standby {next(n for n in NODES if n != primary)}")
        _recreate_database(formation, DRILL_DATABASE)
        url = formation.url(DRILL_DATABASE)
        env = {**os.environ, "SSCARD_DATABASE_URL": url, "SSCARD_SECRET_KEY": secrets.token_hex(32),
               "SSCARD_VAR_DIR": str(workdir), "SSCARD_CONFIG": "",
               # its clients pay as fast as the server answers through two POS tokens: a load, not a caller
               # the per-caller limits are for (policy api.*_requests_per_window, as bench.common.UNTHROTTLED)
               "SSCARD_API__TERMINAL_REQUESTS_PER_WINDOW": str(10**8)}
        log = workdir / "sscard.log"
        say(f"sscard init; sscard demo --people {people} (database {DRILL_DATABASE})")
        _sscard("init", env=env, cwd=workdir, log=log)
        demo_json = workdir / "demo.json"
        _sscard("demo", "--people", str(people), "--seed", "1", "--json", str(demo_json), env=env, cwd=workdir,
                log=log)
        import json

        demo = json.loads(demo_json.read_text())
        tokens = {t["code"]: t["token"] for t in demo["terminals"]}
        accounts = _accounts(url)
        if not accounts:
            raise HaError("the demo city has no active accounts")
        port = _free_port()
        server_log = open(workdir / "serve.log", "ab")  # noqa: SIM115  the server's output
        server = subprocess.Popen(_sscard_cmd("serve", "--port", str(port)), env=env,
                                  cwd=workdir, stdout=server_log, stderr=subprocess.STDOUT)
        server_log.close()
        base = f"http://127.0.0.1:{port}"
        _wait_http(base)
        first_transfer = _max_transfer_id(url)
        say(f"sscard serve on {base}; {clients} clients for {seconds:.0f} s on {len(accounts)} accounts")
        load = _Clients(base, tokens, accounts, clients, seconds, give_up=max(60.0, seconds))
        kill_at = random.uniform(0.25, 0.6) * seconds

        def killer() -> None:
            time.sleep(kill_at)
            victim = formation.primary()
            if victim is None:
                return
            pid = formation.kill_node(victim)
            outcome.killed, outcome.killed_at = victim, time.monotonic()
            say(f"  {outcome.killed_at - load.start:5.1f} s: SIGKILL to {victim}'s pg_autoctl and postmaster "
                f"(pid {pid})")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                now_primary = formation.primary()
                if now_primary and now_primary != victim:
                    outcome.promoted, outcome.promoted_at = now_primary, time.monotonic()
                    say(f"  {outcome.promoted_at - load.start:5.1f} s: {now_primary} is primary "
                        f"({outcome.promoted_at - outcome.killed_at:.1f} s after the kill)")
                    return
                time.sleep(0.2)

        kt = threading.Thread(target=killer, daemon=True)
        kt.start()
        load.run()
        kt.join(150)
        outcome.requests = load.requests
        end = max([load.start + seconds, *load.oks])
        outcome.longest_unavailability = _longest_gap(load.oks, load.start, end)
        _verify(url, outcome, first_transfer)
        check = subprocess.run(_sscard_cmd("account", "check"), env=env, cwd=workdir,
                               capture_output=True, text=True, timeout=300)
        outcome.account_check_rc = check.returncode
        if outcome.killed:
            say(f"restarting {outcome.killed}'s pg_autoctl; waiting for it to re-join as standby")
            formation.start(outcome.killed)
            t0 = time.monotonic()
            with contextlib.suppress(HaError):
                formation.wait_healthy(180)
            if formation.healthy():
                outcome.rejoined_after = time.monotonic() - t0
                say(f"{outcome.killed} re-joined as standby ({outcome.rejoined_after:.1f} s); "
                    f"primary {formation.primary()}")
            else:
                say(f"{outcome.killed} did not re-join within 180 s (see {formation.root}/{outcome.killed}.log)")
        finished = outcome.ok and outcome.rejoined_after is not None
        return outcome
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        if started:
            say("stopping the formation the drill started")
            remove = created and finished and not keep  # on a failure its logs stay in var/ha/*.log
            formation.down(remove=remove, say=lambda m: say(f"  {m}"))
        else:
            try:
                _recreate_database(formation, DRILL_DATABASE, drop_only=True)
            except Exception:  # noqa: BLE001  the drill's own database; the operator's is untouched
                say(f"could not drop {DRILL_DATABASE}")
        if keep:
            say(f"drill files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _bring_up(formation: Formation, created: bool, say: Callable[[str], None]) -> Formation:
    """Bring up the drill's formation; one that the drill creates goes on free ports (unless
    SSCARD_HA_BASE_PORT names them), and gets a second try from scratch when the first does not come up,
    after printing why (the monitor's view, the logs' tails): the drill tests failover, not bring-up."""
    pinned = "SSCARD_HA_BASE_PORT" in os.environ
    if created and not pinned and formation.busy_ports():
        formation = type(formation)(formation.root, Formation.free_base_port())
        say(f"the default ports answer already (another formation?): this one uses "
            f"{', '.join(map(str, formation.ports))}")
    say(f"bringing up the formation under {formation.root} (monitor and two nodes)")
    try:
        formation.up(say=lambda m: say(f"  {m}"))
        return formation
    except HaError as e:
        if not created:
            raise
        say(f"the formation did not come up: {e}")
    say("removing it; a second try from scratch" + ("" if pinned else " on other free ports"))
    formation.down(remove=True, say=lambda m: say(f"  {m}"))
    if not pinned:
        formation = type(formation)(formation.root, Formation.free_base_port(formation.base_port + 10))
    formation.up(say=lambda m: say(f"  {m}"))
    return formation


def _wait_http(base: str, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/openapi.json", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise HaError("sscard serve did not answer within 120 s")


def _max_transfer_id(url: str) -> int:
    from sqlalchemy import create_engine, func, select

    from ..models.ledger import LedgerTransfer

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.coalesce(func.max(LedgerTransfer.id), 0)))
    finally:
        engine.dispose()


__all__ = ["DATABASE", "DRILL_DATABASE", "Outcome", "run_drill"]
