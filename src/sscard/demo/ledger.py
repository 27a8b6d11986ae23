"""Demo money: every activated demo account gets its ledger account and an opening balance, in bulk.

`populate(engine, rng, today)` reads the bank accounts the people loader left activated (active, oral or
written loss, frozen) and, when the loader activated too few (fewer than `activate_share` of the
collected cards), activates more of the collected, still-in-window cards with a demo PIN. Then, in one
transaction of Core executemany inserts:
- a customer ledger account per activated bank account (bank_accounts.ledger_account_id set),
- an opening cash deposit from the activation outlet's cash drawer (most people), and for people of
  pension age three monthly credits from the pension payer,
- the accounts' running sums, computed from those very transfers,
so the ledger stays balanced (checked before commit: the sum of all balances must be 0). One summary
audit record names what was loaded. Deterministic for a given rng.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ..core.clock import SHANGHAI
from ..core.states import BankStatus as B
from ..models.foundation import AuditRecord, Bank, BankAccount, Card, Outlet, Person
from ..services import ledger
from .bulk import bulk_insert

ACTIVATED = (B.ACTIVE, B.ORAL_LOSS, B.WRITTEN_LOSS, B.FROZEN)
ACCOUNTS = ledger.ACCOUNTS
TRANSFERS = ledger.TRANSFERS


def log_uniform_fen(rng: random.Random, low: int, high: int) -> int:
    """An amount of fen from `low` to `high`, most small and a few large: a decade of the range at random
    (the last one weighted by its width), then a value uniform within it. Integers only: no float ever
    makes an amount, not even a demo's."""
    decades = []
    lo = low
    while lo < high:
        decades.append((lo, min(high, lo * 10)))
        lo *= 10
    weights = [10 * (hi - lo) // (9 * lo) or 1 for lo, hi in decades]  # a whole decade weighs 10
    lo, hi = rng.choices(decades, weights)[0]
    return rng.randrange(lo, hi + 1)


def _amount(rng: random.Random) -> int:
    """An opening balance in fen: most small, a few large (50 to 200,000 yuan)."""
    return log_uniform_fen(rng, 5_000, 20_000_000)


def populate(engine: Engine, rng: random.Random, today: date, *, activate_share: float = 0.7,
             secret_key: bytes | None = None) -> dict:
    now = datetime.combine(today, time(9, 0), tzinfo=SHANGHAI).astimezone(UTC)
    with engine.begin() as conn:
        session = Session(bind=conn)
        activated_more = _activate_more(conn, rng, today, now, activate_share, secret_key)
        rows = conn.execute(
            select(BankAccount.id, BankAccount.bank_id, BankAccount.activated_outlet_id, BankAccount.activated_at,
                   Person.birth_date)
            .join(Person, Person.id == BankAccount.person_id)
            .where(BankAccount.status.in_([str(s) for s in ACTIVATED]), BankAccount.ledger_account_id.is_(None))
            .order_by(BankAccount.id)
        ).all()
        if not rows:
            return {"ledger_accounts": 0, "transfers": 0, "activated": activated_more}
        outlets = dict(conn.execute(select(Outlet.id, Outlet.code)).all())
        first_outlet = {b: o for o, b in reversed(conn.execute(select(Outlet.id, Outlet.bank_id)
                                                              .order_by(Outlet.id)).all())}
        banks = dict(conn.execute(select(Bank.id, Bank.code)).all())
        payer = ledger.system_account(session, "pension_payer", kind="pension_payer", now=now)
        drawers: dict[int, int] = {}

        def drawer(outlet_id: int) -> int:
            if outlet_id not in drawers:
                drawers[outlet_id] = ledger.system_account(session, f"cash:{outlets[outlet_id]}", kind="cash_drawer",
                                                           now=now)
            return drawers[outlet_id]

        for r in rows:  # every system account first: the customer ids below come after them all
            outlet = r.activated_outlet_id or first_outlet.get(r.bank_id)
            if outlet is not None:
                drawer(outlet)
        session.flush()
        # Ids given here, so transfers can name their accounts before the rows exist and each customer
        # account is written once, with its sums: one COPY instead of an insert plus an update per row.
        first_id = conn.scalar(select(func.coalesce(func.max(ACCOUNTS.c.id), 0))) + 1
        ledger_of = {r.id: first_id + i for i, r in enumerate(rows)}
        transfers: list[dict] = []
        sums: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # id -> [debits, credits]

        def move(debit: int, credit: int, amount: int, code: str, ref: str, at: datetime) -> None:
            transfers.append(dict(
                transfer_id=f"{rng.getrandbits(128):032x}", kind="posted", debit_account_id=debit,
                credit_account_id=credit, amount=amount, pending_id=None, timeout_at=None, code=code, ref=ref,
                chain="", limit_kind=None, day=at.astimezone(SHANGHAI).date(), created_at=at,
            ))
            sums[debit][0] += amount
            sums[credit][1] += amount

        pensioners = 0
        for r in rows:
            lid = ledger_of[r.id]
            opened = r.activated_at or now
            outlet = r.activated_outlet_id or first_outlet.get(r.bank_id)
            if outlet is not None and rng.random() < 0.85:
                move(drawer(outlet), lid, _amount(rng), "deposit", outlets[outlet], opened)
            age = today.year - r.birth_date.year - ((today.month, today.day) < (r.birth_date.month, r.birth_date.day))
            if age >= 60:
                pensioners += 1
                monthly = rng.randrange(200_000, 600_000, 100)
                for back in (3, 2, 1):
                    at = max(opened, now - timedelta(days=30 * back))
                    month = (today.replace(day=1) - timedelta(days=28 * back)).strftime("%Y-%m")
                    move(payer, lid, monthly, "pension", month, at)
        bulk_insert(conn, ACCOUNTS, [
            dict(id=ledger_of[r.id], kind="customer", name=None, bank_id=r.bank_id, bank_account_id=r.id,
                 no_overdraft=True, closed=False, debits_posted=sums[ledger_of[r.id]][0],
                 credits_posted=sums[ledger_of[r.id]][1], debits_pending=0, credits_pending=0,
                 created_at=r.activated_at or now)
            for r in rows
        ])
        if conn.dialect.name == "postgresql":  # ids were given explicitly: move the sequence past them
            conn.execute(text("SELECT setval(pg_get_serial_sequence('ledger_accounts', 'id'), "
                              "(SELECT max(id) FROM ledger_accounts))"))
        bank_accounts = BankAccount.__table__
        conn.execute(
            update(bank_accounts)
            .where(bank_accounts.c.ledger_account_id.is_(None),
                   bank_accounts.c.id.in_(select(ACCOUNTS.c.bank_account_id)
                                          .where(ACCOUNTS.c.id >= first_id)))
            .values(ledger_account_id=select(ACCOUNTS.c.id).where(ACCOUNTS.c.bank_account_id == bank_accounts.c.id)
                    .scalar_subquery(), version=bank_accounts.c.version + 1)
        )
        # in the order of their times, as the book writes them (ids grow with days, per account and overall),
        # each with its sides' prev days
        transfers.sort(key=lambda t: t["created_at"])
        chain = ledger.BulkChain(conn)
        bulk_insert(conn, TRANSFERS, [chain.link(t) for t in transfers])
        chain.mark_out_of_order(conn)  # (none: a new city's first transfers)
        system = [{"aid": aid, "d": d, "c": c} for aid, (d, c) in sums.items() if aid < first_id]
        if system:  # the pension payer and the outlets' cash drawers
            conn.execute(
                update(ACCOUNTS).where(ACCOUNTS.c.id == bindparam("aid")).values(
                    debits_posted=ACCOUNTS.c.debits_posted + bindparam("d"),
                    credits_posted=ACCOUNTS.c.credits_posted + bindparam("c")),
                system,
            )
        ledger.refresh_last_transfer_days(conn)  # (the book keeps it; these transfers were COPYed around it)
        total = conn.scalar(select(func.coalesce(func.sum(ACCOUNTS.c.credits_posted - ACCOUNTS.c.debits_posted), 0)))
        if total != 0:
            raise RuntimeError(f"demo ledger does not balance: {total}")
        conn.execute(insert(AuditRecord.__table__).values(
            at=now, actor_kind="operator", actor_id="demo", actor_role="operator", channel="cli", place="",
            operation="demo.ledger", object_type="ledger", object_id="opening_balances", before="", after="loaded",
            result="ok", idempotency_key=None,
            detail={"ledger_accounts": len(rows), "transfers": len(transfers), "banks": sorted(banks.values())},
        ))
    return {"ledger_accounts": len(rows), "transfers": len(transfers), "pensioners": pensioners,
            "activated": activated_more}


def _activate_more(conn, rng: random.Random, today: date, now: datetime, share: float,
                   secret_key: bytes | None) -> int:
    """Top the activated share of collected cards up to `share`, within their windows, with the demo PIN."""
    collected = conn.scalar(select(func.count()).select_from(BankAccount)
                            .where(BankAccount.activation_deadline.is_not(None))) or 0
    done = conn.scalar(select(func.count()).select_from(BankAccount)
                       .where(BankAccount.status != str(B.NOT_ACTIVATED),
                              BankAccount.activation_deadline.is_not(None))) or 0
    want = int(collected * share) - done
    if want <= 0:
        return 0
    candidates = conn.execute(
        select(BankAccount.id, BankAccount.pan, BankAccount.bank_id, Person.citizen_id, Card.collected_at)
        .join(Card, Card.id == BankAccount.card_id).join(Person, Person.id == BankAccount.person_id)
        .where(BankAccount.status == str(B.NOT_ACTIVATED), BankAccount.activation_deadline >= today,
               Card.ss_status == "normal")
        .order_by(BankAccount.id)
    ).all()
    if not candidates:
        return 0
    from ..config import Settings
    from ..core.passwords import Secrets
    from .people import BANK_PIN_PURPOSE, demo_pin

    secrets = Secrets(secret_key or Settings.from_env().secret_key)  # the server key the PINs are kept under
    outlets: dict[int, list[int]] = defaultdict(list)
    for oid, bid in conn.execute(select(Outlet.id, Outlet.bank_id)).all():
        outlets[bid].append(oid)
    chosen = rng.sample(candidates, min(want, len(candidates)))
    params = []
    for c in chosen:
        collected_at = c.collected_at if c.collected_at.tzinfo else c.collected_at.replace(tzinfo=UTC)
        when = collected_at + (now - collected_at) * rng.random() if now > collected_at else now
        params.append({"ba_id": c.id, "at": when, "outlet": rng.choice(outlets[c.bank_id]) if outlets[c.bank_id]
                       else None, "digest": secrets.pin_digest(BANK_PIN_PURPOSE, c.pan, demo_pin(c.citizen_id))})
    t = BankAccount.__table__
    conn.execute(
        update(t).where(t.c.id == bindparam("ba_id")).values(
            status=str(B.ACTIVE), activated_at=bindparam("at"), status_changed_at=bindparam("at"),
            activated_outlet_id=bindparam("outlet"), pin_digest=bindparam("digest"), version=t.c.version + 1),
        params,
    )
    return len(params)
