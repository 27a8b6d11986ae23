"""The demo city on a scratch database, for (e) medical settlements and (f) the counter mix: banks,
centers, staff with API tokens, N cardholders in bulk, every area's demo data (ledger balances,
medical personal accounts), one medical terminal per client, and a uvicorn subprocess over it.

A realistically sized database matters on PostgreSQL: with a few rows per table the planner scans
whole tables, and SERIALIZABLE then sees every concurrent write as a conflict."""

from __future__ import annotations

import secrets
import tempfile
import uuid
from pathlib import Path

from .common import HttpClient, Rig, Scratch, Server


class CityRig(Rig):
    def __init__(self, db: str, pg_url: str, people: int, clients: int, sqlite_synchronous: str, progress):
        from ..config import Settings
        from ..core.policy import load_policy
        from ..services.app import build_app

        self.scratch = Scratch(db, pg_url, "city")
        self.key = secrets.token_bytes(32)
        self.workdir = Path(tempfile.mkdtemp(prefix="sscard-bench-city-"))
        self.sqlite_synchronous = sqlite_synchronous
        self.server: Server | None = None
        settings = Settings(database_url=self.scratch.url, secret_key=self.key, var_dir=self.workdir,
                            fast_hashing=True)
        self.app = build_app(settings, policy=load_policy(storage={"sqlite_synchronous": sqlite_synchronous}))
        try:
            self.app.db.migrate()
            self.server = Server(self.scratch.url, self.key, self.workdir,  # starts while the city is built
                                 env={"SSCARD_STORAGE__SQLITE_SYNCHRONOUS": sqlite_synchronous})
            progress(f"demo city: {people} cardholders, {clients} medical terminals ({db})")
            self._build(people, clients)
        except BaseException:
            self.close()
            raise

    def _build(self, people: int, clients: int) -> None:
        from sqlalchemy import func, select

        from ..core.roles import CLI_OPERATOR
        from ..demo.people import demo_pin
        from ..demo.run import run_demo
        from ..models.foundation import Bank, BankAccount, Card, Person
        from ..models.medical import PersonalAccount
        from ..services import medical, staff

        app = self.app
        report = run_demo(app, people, seed=1)
        self.staff_tokens = {s["username"]: s["api_token"] for s in report["staff"]}
        _seed_idempotency_history(app, clients, 50_000)
        app.db.analyze_filled()  # statistics of the loaded tables; the empty ones stay unanalyzed (db.py)
        self.terminal_tokens = []
        for i in range(clients):
            inst = "BJ-XH" if i % 2 == 0 else "BJ-TRT"
            code = f"BENCH-{inst}-{i + 1}"
            medical.add_terminal(app, CLI_OPERATOR, inst, code)
            self.terminal_tokens.append(staff.issue_token(app, CLI_OPERATOR, terminal_code=code)["token"])
        with app.db.session() as s:
            normal = s.execute(
                select(Card.card_number, Card.ident_code, Card.person_id, Person.citizen_id,
                       PersonalAccount.person_id.label("insured"))
                .join(Person, Person.id == Card.person_id)
                .outerjoin(PersonalAccount, PersonalAccount.person_id == Card.person_id)
                .where(Card.ss_status == "normal", Card.ss_pw_digest.is_(None), Card.ss_pw_locked.is_(False))
                .order_by(Card.person_id)
            ).all()
            # people with one card only: a second card means a replacement under way (replacement_pending)
            single = set(s.scalars(select(Card.person_id).group_by(Card.person_id).having(func.count() == 1)))
            active = s.execute(
                select(BankAccount.pan, Person.citizen_id)
                .join(Person, Person.id == BankAccount.person_id).join(Bank, Bank.id == BankAccount.bank_id)
                .where(BankAccount.status == "active", Bank.code == "GSB", BankAccount.pin_locked.is_(False))
                .order_by(BankAccount.id)
            ).all()
        insured = [r for r in normal if r.insured is not None]
        # (e) settles the first half of the insured cards; (f) applies for replacements of the others
        self.medical_cards = [(r.card_number, r.ident_code) for r in insured[: len(insured) // 2]]
        self.medical_people = [r.person_id for r in insured]
        taken = {r.card_number for r in insured[: len(insured) // 2]}
        self.replaceable = [(r.card_number, r.citizen_id) for r in normal
                            if r.card_number not in taken and r.person_id in single]
        self.gsb_accounts = [(r.pan, demo_pin(r.citizen_id)) for r in active]

    def http(self) -> HttpClient:
        return HttpClient(self.server.ready().port)



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
