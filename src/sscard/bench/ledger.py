"""(b) service transfers group-committed, (c) HTTP terminal payments, (d) transfers one per
transaction: on a city of their own (one bank, an outlet, an ATM, a POS, N activated cardholders with
money, built through the services), at SERIALIZABLE with every PIN check, limit, audit and
idempotency record.

(c) is driven through a uvicorn subprocess over the same database by keep-alive HTTP/1.1 connections, one
per client thread (common.HttpClient), or wrk's (`--client wrk`)."""

from __future__ import annotations

import random
import secrets
import shutil
import tempfile
import uuid
from pathlib import Path

from .common import HttpClient, Rig, Scratch, Server, drive, drive_http, wrk

BENCH_PIN = "147258"
HIGH_LIMITS = {"atm_withdrawal_per_day_fen": 10**12, "transfer_per_day_fen": 10**12, "payment_per_day_fen": 10**12}


def setup_city(app, n: int) -> tuple[list[tuple[str, str]], dict]:
    """A bank with an outlet, an ATM and a POS; n activated cardholders with money, through the services."""
    from datetime import date

    from sqlalchemy import select

    from ..core.identifiers import make_citizen_id
    from ..core.roles import CLI_OPERATOR, SYSTEM_ACTOR, Channel
    from ..models.foundation import BankAccount, Card
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


class LedgerRig(Rig):
    """The scratch database, the in-process App (for b and d) and, when (c) runs, the HTTP server."""

    def __init__(self, db: str, pg_url: str, accounts: int, clients: int, sqlite_synchronous: str, progress, *,
                 http: bool = True, workers: int = 1):
        from sqlalchemy import select

        from ..config import Settings
        from ..core.policy import load_policy
        from ..models.foundation import Terminal
        from ..services.app import build_app
        from ..services.staff import terminal_actor

        self.scratch = Scratch(db, pg_url, "ledger")
        self.key = secrets.token_bytes(32)
        self.workdir = Path(tempfile.mkdtemp(prefix="sscard-bench-var-"))
        self.sqlite_synchronous = sqlite_synchronous
        settings = Settings(database_url=self.scratch.url, secret_key=self.key, var_dir=self.workdir,
                            fast_hashing=True)  # staff passwords at set-up only: PINs and tokens are HMACs
        policy = load_policy(limits=HIGH_LIMITS, storage={"sqlite_synchronous": sqlite_synchronous})
        self.app = build_app(settings, policy=policy, pool_size=clients + 2)
        self.server: Server | None = None
        try:
            self.app.db.migrate()
            if http:  # its start-up overlaps the city's set-up
                self.server = Server(self.scratch.url, self.key, self.workdir, workers=workers,
                                     env={"SSCARD_LIMITS__PAYMENT_PER_DAY_FEN": str(10**12),
                                          "SSCARD_STORAGE__SQLITE_SYNCHRONOUS": sqlite_synchronous})
            progress(f"ledger city: {accounts} cardholders through the services ({db})")
            self.pans, self.tokens = setup_city(self.app, accounts)
            with self.app.db.session() as s:
                self.atm = terminal_actor(s, s.scalar(select(Terminal).where(Terminal.code == "ATM-1")))
        except BaseException:
            self.close()
            raise

    def service_transfers(self, clients: int, seconds: float) -> dict:
        """(b) transfers through the service layer, group-committed (services/batching)."""
        from ..services import banking, batching

        def transfer(c: int, rng: random.Random) -> bool:
            (src, pin), (dst, _p) = rng.sample(self.pans, 2)
            batching.call(self.app, banking.transfer, self.atm, src, dst, rng.randint(1, 500), pin,
                          idempotency_key=uuid.uuid4().hex)
            return True

        writer = batching.batcher(self.app)
        requests, batches, cpu = writer.requests, writer.batches, writer.cpu_time()
        out = drive(clients, seconds, transfer)
        done, runs = writer.requests - requests, writer.batches - batches
        out["batching"] = {"requests": done, "batches": runs, "mean_batch": round(done / max(1, runs), 2),
                           "writer_cpu_us_per_request": round(1e6 * (writer.cpu_time() - cpu) / max(1, done))}
        return out

    def unbatched_transfers(self, clients: int, seconds: float) -> dict:
        """(d) the transfers of (b), one per transaction through the ordinary operation frame."""
        from ..services import banking
        from ..services.operation import one_by_one

        def transfer_alone(c: int, rng: random.Random) -> bool:
            (src, pin), (dst, _p) = rng.sample(self.pans, 2)
            one_by_one(self.app, banking.transfer, self.atm, src, dst, rng.randint(1, 500), pin,
                       idempotency_key=uuid.uuid4().hex)  # not group-committed, though declared batched
            return True

        return drive(clients, seconds, transfer_alone)

    def http_payments(self, clients: int, seconds: float, client: str = "python") -> dict:
        """(c) one-step payments at the POS over HTTP (the terminal API), each with a key of its own.

        `client`: "python" (threads of common.HttpClient: on these 2 cores they take a share of the CPU
        and wait for the interpreter lock), "wrk" (Debian's C load generator, as the baseline is the native
        pgbench: next to no CPU, and all 8 requests truly in flight; with it the same server answered with
        a p99 two to three times the Python clients', docs/PERFORMANCE.md, session 14) or "auto" (wrk
        when installed)."""
        port = self.server.ready().port
        token = self.tokens["POS-1"]
        if client == "auto":
            client = "wrk" if shutil.which("wrk") else "python"
        if client == "wrk":
            listing = Path(self.workdir) / "payers.tsv"
            listing.write_text("".join(f"{pan}\t{pin}\n" for pan, pin in self.pans), encoding="utf-8")
            warm = wrk(port, "payments.lua", [str(listing), token, f"warm-{uuid.uuid4().hex[:8]}"], clients, 1)
            return wrk(port, "payments.lua", [str(listing), token, uuid.uuid4().hex[:12]], clients, seconds) | {
                "client": "wrk (C, 2 threads)", "warm_up_ok": warm["ok"]}
        http = HttpClient(port)

        def pay(c: int, rng: random.Random) -> bool:
            pan, pin = self.pans[rng.randrange(len(self.pans))]
            status, _body = http.post(c, "/api/v1/terminal/payments",
                                      {"pan": pan, "amount_fen": rng.randint(1, 500), "pin": pin}, token)
            return status == 200

        pay(0, random.Random(0))  # the server's first request
        return drive_http(http, clients, seconds, pay) | {"client": "python (threads)"}

    def iso_payments(self, clients: int, seconds: float) -> dict:
        """(g) the payments of (c) through the ISO 8583 gateway (a subprocess, one TCP connection per client
        thread): PIN blocks under the POS's PIN key, MACs both ways, the same operation and frame."""
        from ..core.terminal_keys import derive
        from ..iso8583.client import Terminal
        from .common import Gateway

        gateway = Gateway(self.scratch.url, self.key, self.workdir).ready()
        terminals = [Terminal("POS-1", derive(self.key, "POS-1", "tpk"), derive(self.key, "POS-1", "tak"),
                              port=gateway.port, stan=c * 100_000) for c in range(clients)]

        def pay(c: int, rng: random.Random) -> bool:
            pan, pin = self.pans[rng.randrange(len(self.pans))]
            term = terminals[c]
            return term.send(term.message("purchase", pan, rng.randint(1, 500), pin))["39"] == "00"

        try:
            return drive(clients, seconds, pay) | {"client": "python (threads), one TCP connection each"}
        finally:
            for term in terminals:
                term.close()
            gateway.close()

    def check(self) -> dict:
        from ..services import ledger

        with self.app.db.session() as s:
            found = ledger.check_invariants(s)
        return {"ok": found["ok"], "transfers": found["transfers"]}

