"""Demo data of the medical area: designated institutions and their terminals, insured people's personal
accounts with plausible balances.

`populate(engine, rng, today)`:
- institutions: Beijing hospitals of levels 1-3 and pharmacies, one not designated; the demo city's
  hospital/pharmacy terminals (HOSP-001, HOSP-002, PHARM-001) are linked to theirs by name, and each
  other institution gets a terminal MED-<code>-1 (issue it a token: `sscard user token --terminal CODE`);
- personal accounts for a BOUNDED share of the people (the first `always_first` by id, the ones a demo
  logs in as, and a random sample, at most `max_people`): a balance carried from earlier years and the
  contribution credits of the two months before `today`'s month, so they are insured now (policy
  medical.insured_grace_months = 1). The others have no credit: a demo of `not_insured`.

Bulk inserts in one transaction (COPY on PostgreSQL, executemany on SQLite).
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

from sqlalchemy import Engine, insert, select, update

from ..core.medical import months_back
from ..models.foundation import Bank, Person, Terminal
from ..models.medical import (
    AnnualUsage,
    ContributionCredit,
    MedicalInstitution,
    PersonalAccount,
    PersonalAccountMovement,
)
from .bulk import bulk_insert

# code, name, kind, level, designated, demo terminal it takes over (by the demo city's merchant name)
INSTITUTIONS = (
    ("BJ-XH", "北京协和医院", "hospital", 3, True),
    ("BJ-CY", "北京朝阳医院", "hospital", 3, True),
    ("BJ-BD1", "北京大学第一医院", "hospital", 3, True),
    ("BJ-DC1", "北京市东城区第一人民医院", "hospital", 2, True),
    ("BJ-HPL", "东城区和平里社区卫生服务中心", "hospital", 1, True),
    ("BJ-SJ", "朝阳区双井社区卫生服务中心", "hospital", 1, True),
    ("BJ-MR", "京华医疗美容医院", "hospital", 2, False),
    ("BJ-TRT", "同仁堂药店", "pharmacy", None, True),
    ("BJ-JX", "金象大药房（和平里店）", "pharmacy", None, True),
    ("BJ-YF", "永安堂便民药店", "pharmacy", None, False),
)
CHUNK = 5_000


def _write(conn, table, rows: list[dict]) -> None:
    bulk_insert(conn, table, rows)


def populate(engine: Engine, rng: random.Random, today: date, *, max_people: int = 20_000,
             always_first: int = 200) -> dict:
    now = datetime(today.year, today.month, 1, 1, 0, tzinfo=UTC)
    months = sorted(months_back(today.year, today.month, 2)[1:])  # the two months before this one
    with engine.begin() as conn:
        bank_id = conn.scalar(select(Bank.id).order_by(Bank.id).limit(1))
        known = set(conn.scalars(select(MedicalInstitution.code)))
        created = 0
        for code, name, kind, level, designated in INSTITUTIONS:
            if code in known:
                continue
            conn.execute(insert(MedicalInstitution.__table__).values(
                code=code, name=name, kind=kind, level=level, designated=designated, area_code="110101",
                settlement_bank_id=bank_id, settlement_account_no=f"0200{rng.randrange(10**11, 10**12)}",
                created_at=now))
            created += 1
        institutions = {name: (iid, kind) for iid, name, kind in
                        conn.execute(select(MedicalInstitution.id, MedicalInstitution.name, MedicalInstitution.kind))}
        linked = 0
        for tid, merchant, tkind in conn.execute(
                select(Terminal.id, Terminal.merchant_name, Terminal.kind)
                .where(Terminal.kind.in_(("hospital", "pharmacy")), Terminal.institution_id.is_(None))).all():
            match = institutions.get(merchant)
            if match and match[1] == tkind:
                conn.execute(update(Terminal).where(Terminal.id == tid).values(institution_id=match[0]))
                linked += 1
        with_terminal = set(conn.scalars(select(Terminal.institution_id).where(Terminal.institution_id.isnot(None))))
        terminals = 0
        for code, name, kind, _level, _designated in INSTITUTIONS:
            iid = institutions[name][0]
            tcode = f"MED-{code}-1"
            if iid in with_terminal or conn.scalar(select(Terminal.id).where(Terminal.code == tcode)):
                continue
            conn.execute(insert(Terminal.__table__).values(code=tcode, kind=kind, name=f"{name}收费处", merchant_name=name,
                                                           institution_id=iid, active=True))
            terminals += 1

        already = set(conn.scalars(select(PersonalAccount.person_id)))
        people = [pid for pid in conn.scalars(select(Person.id).order_by(Person.id)) if pid not in already]
        first, rest = people[:always_first], people[always_first:]
        chosen = sorted(first + rng.sample(rest, min(len(rest), max(0, max_people - len(first)))))
        accounts, credits, movements, usage = [], [], [], []
        total = 0
        for pid in chosen:
            # carried over from earlier years (0 .. 8,000 yuan): a credit with no month
            balance = rng.randrange(0, 800_000, 10)
            movements.append(dict(person_id=pid, kind="credit", amount_fen=balance, balance_after_fen=balance,
                                  month=None, settlement_id=None, at=now))
            monthly = rng.randrange(8_000, 36_000, 10)  # about 2 % of a 4,000 .. 18,000 yuan wage base
            for month in months:
                balance += monthly
                credits.append(dict(person_id=pid, month=month, amount_fen=monthly, credited_at=now))
                movements.append(dict(person_id=pid, kind="credit", amount_fen=monthly, balance_after_fen=balance,
                                      month=month, settlement_id=None, at=now))
            accounts.append(dict(person_id=pid, balance_fen=balance, opened_at=now, version=1))
            for year in sorted({int(m[:4]) for m in months} | {today.year}):
                usage.append(dict(person_id=pid, year=year, deductible_used_fen=0, fund_used_fen=0))
            total += balance
        for table, rows in ((PersonalAccount, accounts), (ContributionCredit, credits),
                            (PersonalAccountMovement, movements), (AnnualUsage, usage)):
            _write(conn, table.__table__, rows)
    return {"institutions": created, "terminals_linked": linked, "terminals_added": terminals,
            "personal_accounts": len(accounts), "insured_months": months, "balances_fen": total}
