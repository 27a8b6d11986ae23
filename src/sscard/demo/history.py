"""A year (or N months) of a city's traffic, in bulk: `sscard demo --history-months 12` (docs/SCALE.md).

What a city's cards do in a month, at rates the caller gives (defaults: `RATES`):
- card payments: each active account pays `payments` times a month at one of the city's merchants
  (ledger transfer customer -> merchant, and the audit record `bank.purchase` the POS terminal writes);
- pensions: every cardholder of 60 or more gets a monthly credit from the pension payer (`bank.credit_pension`);
- contributions: `insured_share` of the people of working age have the five insurances recorded every
  month at one employer (insurance_contributions, and one `insurance.record_month` audit record each).

The ledger stays balanced and every customer account within its balance: a year's payments are taken
from what the account holds (half of its opening balance and pensions at most), and the accounts' running
sums are raised by exactly the transfers written, in the same transaction (checked before commit).
Months are the N whole Shanghai months before today's; their partitions are made first (PostgreSQL).
Medical settlements are not generated (their personal accounts, yearly usage and fund transfers are the
medical service's to keep consistent): docs/SCALE.md measures them per row instead.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ..core.clock import SHANGHAI
from ..core.states import BankStatus as B
from ..models.foundation import AuditRecord, BankAccount, Person, Terminal
from ..models.insurance import Contribution, Employer
from ..services import insurance, ledger, partitions
from .bulk import bulk_insert
from .ledger import log_uniform_fen

ACCOUNTS = ledger.ACCOUNTS
TRANSFERS = ledger.TRANSFERS
AUDITS = AuditRecord.__table__
CONTRIBUTIONS = Contribution.__table__
RATES = {"payments": 2, "insured_share": 0.5}  # per active account a month (to a tenth); share of working age insured


def payments_per_ten_months(rate: object) -> int:
    """A payments rate (card payments an active account makes a month, to a tenth: 2, "2.5", Decimal("0.3"))
    as whole payments per ten months, so that the code that writes transfers counts in integers as it
    handles money in integer fen. A float is refused: the rate is typed as text at the edge."""
    if isinstance(rate, bool) or not isinstance(rate, int | str | Decimal):
        raise TypeError(f"payments rate {rate!r}: an int, a decimal string or a Decimal")
    try:
        tenths = Decimal(rate) * 10
    except InvalidOperation:
        raise ValueError(f"payments rate {rate!r}: not a number") from None
    if not tenths.is_finite() or tenths < 0 or tenths != tenths.to_integral_value() or tenths > 1_000:
        raise ValueError(f"payments rate {rate!r}: 0 to 100 a month, to a tenth")
    return int(tenths)
MERCHANTS = 500
FLUSH = 50_000  # rows per COPY


def _months(today: date, count: int) -> list[date]:
    first = partitions.month_start(today)
    return [partitions.add_months(first, -n) for n in range(count, 0, -1)]


def _moment(rng: random.Random, month: date) -> datetime:
    """A time of day in business hours on a day of `month`, Shanghai, as UTC."""
    days = (partitions.add_months(month, 1) - month).days
    local = datetime.combine(month + timedelta(days=rng.randrange(days)), time(8, 0), tzinfo=SHANGHAI)
    return (local + timedelta(seconds=rng.randrange(13 * 3600))).astimezone(UTC)


def _age(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


class _Writer:
    """Rows buffered per table and written by COPY in chunks, inside the caller's transaction."""

    def __init__(self, conn):
        self.conn, self.rows, self.counts = conn, defaultdict(list), defaultdict(int)
        self.postgres = conn.dialect.name == "postgresql"

    def add(self, table, row: dict) -> None:
        if table is AUDITS and self.postgres:
            row["detail"] = json.dumps(row["detail"], ensure_ascii=False)  # COPY takes the JSON text
        buffer = self.rows[table]
        buffer.append(row)
        if len(buffer) >= FLUSH:
            self.flush(table)

    def flush(self, table=None) -> None:
        for t in [table] if table is not None else list(self.rows):
            self.counts[t.name] += bulk_insert(self.conn, t, self.rows[t])
            self.rows[t] = []


def _audit(at: datetime, actor: tuple[str, str, str, str], operation: str, object_type: str, object_id: str,
           person_id: int | None, detail: dict) -> dict:
    kind, actor_id, role, channel = actor
    return dict(at=at, actor_kind=kind, actor_id=actor_id, actor_role=role, on_behalf_of=None, attorney_id=None,
                channel=channel, place=actor_id if kind == "terminal" else "", operation=operation,
                object_type=object_type, object_id=object_id, person_id=person_id, before="", after="",
                result="ok", idempotency_key=None, detail=detail)


def populate(engine: Engine, rng: random.Random, today: date, *, months: int = 12, rates: dict | None = None) -> dict:
    rates = RATES | (rates or {})
    span = _months(today, months)
    if not span:
        return {}
    partitions.ensure(engine, today, months_back=months + 1)
    out = {"months": [m.strftime("%Y-%m") for m in (span[0], span[-1])]}
    out |= _payments_and_pensions(engine, rng, today, span, payments_per_ten_months(rates["payments"]))
    out |= _contributions(engine, rng, today, span, rates["insured_share"])
    return out


def _payments_and_pensions(engine: Engine, rng: random.Random, today: date, span: list[date],
                           per_ten_months: int) -> dict:
    """Payments and pensions: transfers, their audit records, and the accounts' sums raised to match.
    `per_ten_months`: how many payments an active account makes in ten months (25: twice or three times a
    month); every amount here is integer fen (rng.randrange), never derived from it."""
    now = datetime.combine(today, time(9, 0), tzinfo=SHANGHAI).astimezone(UTC)
    with engine.begin() as conn:
        session = Session(bind=conn)
        pos = conn.scalars(select(Terminal.code).where(Terminal.kind == "pos").order_by(Terminal.code)).all() or ["POS"]
        merchants = [ledger.system_account(session, f"merchant:demo-{i:04d}", kind="merchant", now=now)
                     for i in range(MERCHANTS)]
        payer = ledger.system_account(session, "pension_payer", kind="pension_payer", now=now)
        session.flush()
        accounts = conn.execute(
            select(ACCOUNTS.c.id, ACCOUNTS.c.credits_posted - ACCOUNTS.c.debits_posted - ACCOUNTS.c.debits_pending,
                   ACCOUNTS.c.created_at, BankAccount.id, BankAccount.status, Person.id, Person.birth_date)
            .join(BankAccount, BankAccount.id == ACCOUNTS.c.bank_account_id)
            .join(Person, Person.id == BankAccount.person_id)
            .where(ACCOUNTS.c.kind == "customer", ACCOUNTS.c.closed.is_(False))
            .order_by(ACCOUNTS.c.id)
        ).all()
        w = _Writer(conn)
        chain = ledger.BulkChain(conn)
        sums: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        whole, tenths = divmod(per_ten_months, 10)  # payments a month, and the tenths of one more
        transfers = pensions = 0
        recent = partitions.add_months(partitions.month_start(today), -3)
        moves: list[tuple[dict, dict]] = []  # one account's transfers and their audit records

        def move(debit: int, credit: int, amount: int, code: str, ref: str, at: datetime) -> tuple[str, dict]:
            tid = f"{rng.getrandbits(128):032x}"
            row = dict(transfer_id=tid, kind="posted", debit_account_id=debit, credit_account_id=credit,
                       amount=amount, pending_id=None, timeout_at=None, code=code, ref=ref, chain="",
                       limit_kind=None, day=at.astimezone(SHANGHAI).date(), created_at=at)
            sums[debit][0] += amount
            sums[credit][1] += amount
            return tid, row

        for lid, available, created_at, ba_id, status, person_id, birth in accounts:
            opened = partitions.month_start((created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC))
                                            .astimezone(SHANGHAI).date())
            months = [m for m in span if m >= opened]
            pension = rng.randrange(200_000, 600_000, 100) if _age(birth, today) >= 60 else 0
            budget = (available + pension * len(months)) // 2
            wanted = [m for m in months for _ in range(whole + (rng.randrange(10) < tenths))] if status == str(B.ACTIVE) else []
            for month in months:
                if pension and month < recent:  # the last three months' pensions are the ledger demo's
                    at = datetime.combine(month + timedelta(days=14), time(1, 0), tzinfo=UTC)
                    tid, row = move(payer, lid, pension, "pension", month.strftime("%Y-%m"), at)
                    moves.append((row, _audit(at, ("system", "system", "system", "batch"), "bank.credit_pension",
                                              "bank_account", str(ba_id), person_id,
                                              {"amount_fen": pension, "transfer_id": tid})))
                    pensions += 1
            for i, month in enumerate(wanted):
                share = budget // (len(wanted) - i)
                amount = min(log_uniform_fen(rng, 500, 50_000), share)  # 5 to 500 yuan, within what is left
                if amount <= 0:
                    continue
                budget -= amount
                at, terminal = _moment(rng, month), rng.choice(pos)
                tid, row = move(lid, rng.choice(merchants), amount, "payment", terminal, at)
                moves.append((row, _audit(at, ("terminal", terminal, "terminal", "terminal"), "bank.purchase",
                                          "bank_account", str(ba_id), person_id,
                                          {"amount_fen": amount, "transfer_id": tid})))
                transfers += 1
            # the account's transfers in the order of their times (as the book writes them), each with its
            # sides' prev days; its older months still come after the newer transfers already there (the
            # ledger demo's last three pensions): such an account is marked out of order below
            moves.sort(key=lambda m: m[0]["created_at"])
            for row, audit in moves:
                w.add(TRANSFERS, chain.link(row))
                w.add(AUDITS, audit)
            moves.clear()
        w.flush()
        out_of_order = chain.mark_out_of_order(conn)
        _raise_sums(conn, sums)
        ledger.refresh_last_transfer_days(conn)  # (the book keeps it; these transfers were COPYed around it)
        total = conn.scalar(select(func.coalesce(func.sum(ACCOUNTS.c.credits_posted - ACCOUNTS.c.debits_posted), 0)))
        if total != 0:
            raise RuntimeError(f"demo history: the ledger does not balance ({total})")
    return {"payments": transfers, "pensions": pensions, "audit_records": w.counts[AUDITS.name],
            "out_of_order_accounts": out_of_order}


def _raise_sums(conn, sums: dict[int, list[int]]) -> None:
    """Add each account's new debits and credits to its running sums: on PostgreSQL through a temporary
    table (one UPDATE ... FROM for a million accounts), elsewhere per account."""
    rows = [{"aid": aid, "d": d, "c": c} for aid, (d, c) in sums.items()]
    if conn.dialect.name != "postgresql":
        conn.execute(update(ACCOUNTS).where(ACCOUNTS.c.id == bindparam("aid")).values(
            debits_posted=ACCOUNTS.c.debits_posted + bindparam("d"),
            credits_posted=ACCOUNTS.c.credits_posted + bindparam("c")), rows)
        return
    conn.execute(text("CREATE TEMPORARY TABLE demo_sums (aid bigint PRIMARY KEY, d bigint, c bigint) ON COMMIT DROP"))
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy("COPY demo_sums (aid, d, c) FROM STDIN") as copy:
        for r in rows:
            copy.write_row((r["aid"], r["d"], r["c"]))
    conn.execute(text("UPDATE ledger_accounts a SET debits_posted = a.debits_posted + s.d, "
                      "credits_posted = a.credits_posted + s.c FROM demo_sums s WHERE a.id = s.aid"))


def _contributions(engine: Engine, rng: random.Random, today: date, span: list[date], share: float) -> dict:
    """Every month of the span, the five insurances of `share` of the working-age people not yet on record."""
    with engine.begin() as conn:
        employers = conn.scalars(select(Employer.id).order_by(Employer.id)).all()
        if not employers:
            session = Session(bind=conn)
            employers = [insurance.employer_for(session, f"91330106MA2H{i:06d}", f"示例单位{i}").id for i in range(50)]
            session.flush()
        on_record = set(conn.scalars(select(CONTRIBUTIONS.c.person_id).distinct()).all())
        people = conn.execute(select(Person.id, Person.birth_date).order_by(Person.id)).all()
        w = _Writer(conn)
        insured = 0
        actor = ("system", "system", "system", "batch")
        for person_id, birth in people:
            if person_id in on_record or not 18 <= _age(birth, today) < 60 or rng.random() >= share:
                continue
            insured += 1
            employer = rng.choice(employers)
            base = rng.randrange(450_000, 2_500_000, 100)
            for month in span:
                label = month.strftime("%Y-%m")
                at = datetime.combine(month + timedelta(days=rng.randrange(1, 28)), time(2, 0), tzinfo=UTC)
                for kind in insurance.INSURANCE_TYPES:
                    employer_fen, personal_fen = insurance.amounts_for(kind, base)
                    w.add(CONTRIBUTIONS, dict(person_id=person_id, insurance_type=kind, month=label, year=month.year,
                                              employer_id=employer, base_fen=base, employer_fen=employer_fen,
                                              personal_fen=personal_fen, recorded_at=at))
                w.add(AUDITS, _audit(at, actor, "insurance.record_month", "person", str(person_id), person_id,
                                     {"month": label, "base_fen": base}))
        w.flush()
    return {"insured": insured, "contributions": w.counts[CONTRIBUTIONS.name],
            "contribution_audit_records": w.counts[AUDITS.name]}
