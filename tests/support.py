"""A small city for tests, built through the services (never around them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sscard.core.identifiers import make_citizen_id
from sscard.core.roles import CLI_OPERATOR, SYSTEM_ACTOR, Actor, Channel, Role
from sscard.services import cards, enrolment, production, staff
from sscard.services import city as city_svc
from sscard.services.app import App
from sscard.services.passwords import cardholder_actor

STAFF_PASSWORD = "Staff-pass-2026"
QUERY_PASSWORD = "80468213"  # a cardholder's own query password after the forced first change
# where each role works (services.access.AUDIENCE): the operator with an API token
_CONSOLE = {"clerk": Channel.WINDOW, "center_supervisor": Channel.WINDOW, "teller": Channel.BANK_OUTLET,
            "bank_supervisor": Channel.BANK_OUTLET, "operator": Channel.API}


@dataclass
class IssuedCard:
    person_id: int
    citizen_id: str
    name: str
    card_number: str
    pan: str
    birth: date
    phone: str = ""


class City:
    """Two banks (ICBC-like and CCB-like), an outlet each (two for the first), two centers, staff, terminals."""

    def __init__(self, app: App):
        self.app = app
        op = CLI_OPERATOR
        city_svc.add_bank(app, op, "GSB", "工商银行", "622202", "95588", name_en="ICBC")
        city_svc.add_bank(app, op, "JSB", "建设银行", "621700", "95533", name_en="CCB")
        city_svc.add_outlet(app, op, "GSB", "GSB-001", "工商银行西湖支行", name_en="ICBC Xihu Sub-branch")
        city_svc.add_outlet(app, op, "GSB", "GSB-002", "工商银行湖滨支行", name_en="ICBC Hubin Sub-branch")
        city_svc.add_outlet(app, op, "JSB", "JSB-001", "建设银行城东支行", name_en="CCB Chengdong Sub-branch")
        city_svc.add_center(app, op, "C01", "西湖区社保卡服务中心", "330106")
        city_svc.add_center(app, op, "C02", "上城区社保卡服务中心", "330102")
        for code, kind, extra in (
            ("ATM-GSB-1", "atm", {"outlet_code": "GSB-001"}),
            ("POS-1", "pos", {"bank_code": "GSB", "merchant_name": "西湖超市"}),
            ("KIOSK-1", "kiosk", {"center_code": "C01"}),
        ):
            city_svc.add_terminal(app, op, code, kind, code, **extra)
        self.users = {
            "clerk": ("clerk", {"center_code": "C01"}),
            "clerk2": ("clerk", {"center_code": "C02"}),
            "csup": ("center_supervisor", {"center_code": "C01"}),
            "teller": ("teller", {"outlet_code": "GSB-001"}),
            "teller_jsb": ("teller", {"outlet_code": "JSB-001"}),
            "bsup": ("bank_supervisor", {"outlet_code": "GSB-001"}),
            "operator": ("operator", {}),
        }
        for username, (role, where) in self.users.items():
            staff.add_user(app, op, username, STAFF_PASSWORD, role, username, **where)
        self.actors: dict[str, Actor] = {
            u: staff.authenticate_staff(app, u, STAFF_PASSWORD, _CONSOLE[r[0]]) for u, r in self.users.items()
        }
        self._seq = 0

    def actor(self, username: str, channel: Channel | None = None) -> Actor:
        a = self.actors[username]
        return a.via(channel) if channel else a

    def token(self, username: str | None = None, terminal: str | None = None) -> str:
        return staff.issue_token(self.app, CLI_OPERATOR, username=username, terminal_code=terminal)["token"]

    def new_person(self, name: str = "张三", birth: date = date(1980, 5, 17), male: bool = True,
                   phone: str = "") -> tuple[int, str]:
        self._seq += 1
        cid = make_citizen_id("330106", birth, (self._seq * 2 + (1 if male else 0)) % 1000)
        out = enrolment.register_person(self.app, self.actor("clerk"), cid, name, phone=phone)
        return out["id"], cid

    def issued_card(self, name: str = "张三", bank: str = "GSB", birth: date = date(1980, 5, 17),
                    phone: str = "") -> IssuedCard:
        """A person with a collected (normal, not yet activated) card, through the whole first-issue path."""
        pid, cid = self.new_person(name, birth, phone=phone)
        clerk = self.actor("clerk")
        applied = enrolment.apply_first_card(self.app, clerk, pid, bank, "C01")
        batch = production.start_batch(self.app, clerk, "C01")
        production.complete_batch(self.app, clerk, batch["batch"])
        cards.collect_card(self.app, clerk, applied["card_number"], cid)
        pan = self.pan_of(applied["card_number"])
        return IssuedCard(pid, cid, name, applied["card_number"], pan, birth, phone)

    def pan_of(self, card_number: str) -> str:
        from sqlalchemy import select

        from sscard.models.foundation import BankAccount, Card

        with self.app.db.session() as s:
            return s.scalar(select(BankAccount.pan).join(Card, Card.id == BankAccount.card_id)
                            .where(Card.card_number == card_number))

    def cardholder(self, card: IssuedCard, channel: Channel = Channel.PORTAL) -> Actor:
        return cardholder_actor(card.person_id, card.name, channel)

    def own_query_password(self, card: IssuedCard, password: str = QUERY_PASSWORD) -> str:
        """The cardholder changes the initial query password to `password` (RULES §4: a cardholder signed in
        with the initial one may do nothing else first, services.access.BEFORE_FIRST_CHANGE); returns it."""
        return own_query_password(self.app, card.person_id, password)


def own_query_password(app: App, person_id: int, password: str = QUERY_PASSWORD) -> str:
    """The person changes their initial query password to `password`, as the portal forces at the first
    login (RULES §4); returns it. A test then signs in with it, or issues a token that may act."""
    from sqlalchemy import select

    from sscard.core.passwords import initial_query_password
    from sscard.models.foundation import Person
    from sscard.services import passwords

    with app.db.session() as s:
        person = s.scalar(select(Person).where(Person.id == person_id))
        initial = initial_query_password(app.policy, person.first_card_number, person.citizen_id)
        name = person.name
    passwords.change_query_password(app, cardholder_actor(person_id, name, Channel.PORTAL), initial, password,
                                    password)
    return password


SYSTEM = SYSTEM_ACTOR
ROLE = Role


def bearer(token: str, key: str | None = None, **headers: str) -> dict:
    """API request headers: the bearer token and, for a write, its Idempotency-Key."""
    out = {"Authorization": f"Bearer {token}", **headers}
    if key:
        out["Idempotency-Key"] = key
    return out


def in_fresh_loop(coroutine_fn):
    """Run a coroutine on an event loop of its own, in a thread: a browser test's Playwright keeps its loop
    marked running in the main thread of the test worker, and asyncio.run refuses to nest."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coroutine_fn())).result(timeout=30)


def on_the_wire(work, *, writer=None, engine=None) -> tuple[Any, list[tuple[str, str]]]:
    """Run `work()` while libpq traces PostgreSQL connections: the group-commit `writer`'s batch connection
    (open: a batch ran before), and every connection `engine`'s pool hands out meanwhile. Its result and the
    wire's messages as (direction, message): "F" from the client, "B" from the server, which answers every
    sync with one ReadyForQuery, each one a wait of the client (`waits`)."""
    import ctypes
    import tempfile

    from sqlalchemy import event

    traced = []
    with tempfile.TemporaryFile("w+") as out:
        def trace(pgconn) -> None:
            pgconn.trace(out.fileno())
            traced.append(pgconn)

        def on_checkout(dbapi_conn, _record, _proxy) -> None:
            trace(dbapi_conn.pgconn)

        if writer is not None:
            trace(writer._conn.connection.driver_connection.pgconn)
        if engine is not None:
            event.listen(engine, "checkout", on_checkout)
        try:
            result = work()
        finally:
            if engine is not None:
                event.remove(engine, "checkout", on_checkout)
            for pgconn in traced:
                pgconn.untrace()
            ctypes.CDLL(None).fflush(None)  # libpq writes its trace through a C stream of its own
        out.seek(0)
        wire = [(f[1], "\t".join(f[3:])) for line in out.read().splitlines() if len(f := line.split("\t")) > 3]
    return result, wire


def waits(wire: list[tuple[str, str]]) -> int:
    """How many times the client waited for the server on `on_the_wire`'s wire (ReadyForQuery messages)."""
    return sum(direction == "B" and message.startswith("ReadyForQuery") for direction, message in wire)


def sent(wire: list[tuple[str, str]]) -> list[str]:
    """The statements (Parse, Query) and syncs the client sent on `on_the_wire`'s wire."""
    return [message for direction, message in wire if direction == "F" and message.startswith(("Parse", "Query", "Sync"))]


def generic_plan(app: App, stmt, params: dict[str, Any]) -> list[str]:
    """PostgreSQL's plan for `stmt` as it keeps it for every run (psycopg prepares a statement after five
    runs; PostgreSQL then plans once for all parameters), with the partitions pruned at each run's start
    shown as "Subplans Removed". EXPLAIN only: nothing runs."""
    from sqlalchemy.dialects import postgresql

    compiled = stmt.compile(dialect=postgresql.psycopg.dialect(paramstyle="numeric_dollar"))
    values = [params[name] for name in compiled.positiontup]
    with app.db.engine.connect() as conn:
        driver = conn.connection.driver_connection
        driver.execute("SET plan_cache_mode = force_generic_plan")
        driver.execute(f"PREPARE planned AS {compiled}")
        try:
            from psycopg import sql

            literals = sql.SQL(", ").join(sql.Literal(v) for v in values)  # EXECUTE's arguments are not typed
            return [row[0] for row in driver.execute(sql.SQL("EXPLAIN EXECUTE planned({})").format(literals))]
        finally:
            driver.execute("DEALLOCATE planned")
            driver.execute("RESET plan_cache_mode")
            conn.rollback()


def pdf_text(pdf: bytes, mode: str = "-layout") -> str:
    """A PDF's text as poppler's pdftotext reads it (-layout; -raw: in the order it is drawn, so a value wrapped
    within its table cell reads on as one), or the test skipped where it is not installed."""
    import shutil
    import subprocess

    import pytest

    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext (poppler-utils) is not installed")
    return subprocess.run(["pdftotext", mode, "-", "-"], input=pdf, capture_output=True,
                          check=True).stdout.decode()
