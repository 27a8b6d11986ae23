"""Demo data of the insurance area: plausible contribution histories for the demo's people.

`populate(engine, rng, today)` reads the people already in the database and inserts, in bulk (COPY on
PostgreSQL, Core executemany elsewhere; in chunks, one transaction), the monthly records of the five insurances for a BOUNDED
share of them so that a 100k-person demo stays within its time budget:

- the first `always_first` people by id (the ones a demo is likely to log in as) and a random sample
  of the others, at most `max_people` in all, aged 18..60 on `today`;
- each gets up to `months` months (default 36) ending with the month before `today`: one or two
  employers (a job change in about a third of careers), a contribution base that rises about 5% each
  January, and an occasional gap between jobs.

Amounts come from the base with services.insurance's rates (integer fen), like recorded months.
Measured with 100k people in the database: the default 1000 people x 36 months (~166k records) take about
2 s on SQLite and about 5 s on PostgreSQL (COPY) on an idle 2-core machine (several times that when the
machine is busy); raise max_people for a richer demo at that rate.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

from sqlalchemy import Engine, insert, select

from ..models.foundation import Person
from ..models.insurance import Contribution, Employer
from ..services.insurance import INSURANCE_TYPES, amounts_for
from .bulk import bulk_insert

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_PLACES = ("西湖", "上城", "拱墅", "滨江", "萧山", "余杭", "钱塘", "临平", "富阳", "临安")
_TRADES = ("科技", "贸易", "建设", "物流", "餐饮", "医药", "电子", "纺织", "设计", "教育咨询", "汽车服务", "食品")
_KINDS = ("有限公司", "股份有限公司", "有限责任公司")
CHUNK = 20_000


def uscc(rng: random.Random, area_code: str = "330106") -> str:
    """A unified social credit code (统一社会信用代码, GB 32100) with a valid check character."""
    body = "91" + area_code + "".join(rng.choice(_USCC_CHARS) for _ in range(9))
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(body, _USCC_WEIGHTS, strict=True))
    return body + _USCC_CHARS[(31 - total % 31) % 31]


def _months_back(today: date, count: int) -> list[str]:
    """`count` months ending with the month before `today`, oldest first."""
    year, month = today.year, today.month
    out = []
    for _ in range(count):
        month -= 1
        if month == 0:
            year, month = year - 1, 12
        out.append(f"{year:04d}-{month:02d}")
    return out[::-1]


def _age(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))



def _write(conn, rows: list[dict]) -> int:
    return bulk_insert(conn, Contribution.__table__, rows)


def populate(engine: Engine, rng: random.Random, today: date, *, max_people: int = 1000, always_first: int = 200,
             months: int = 36, employers: int = 60) -> dict:
    now = datetime(today.year, today.month, 1, tzinfo=UTC)  # recorded at the start of this month
    month_list = _months_back(today, months)
    with engine.begin() as conn:
        people = conn.execute(select(Person.id, Person.birth_date).order_by(Person.id)).all()
        working = [(pid, birth) for pid, birth in people if 18 <= _age(birth, today) <= 60]
        first, rest = working[:always_first], working[always_first:]
        sample = rng.sample(rest, min(len(rest), max(0, max_people - len(first))))
        chosen = sorted(first + sample)

        known = dict(conn.execute(select(Employer.code, Employer.id)).all())
        new_employers = []
        codes: list[str] = list(known)
        while len(codes) < employers:
            code = uscc(rng, "3301" + rng.choice(("02", "05", "06", "08", "09", "10")))
            if code in known or code in codes:
                continue
            codes.append(code)
            name = rng.choice(_PLACES) + rng.choice("宏远华新恒泰金诚博瑞天启嘉和鼎盛") + rng.choice("达通源丰信安德汇") \
                + rng.choice(_TRADES) + rng.choice(_KINDS)
            new_employers.append({"code": code, "name": name})
        if new_employers:
            conn.execute(insert(Employer.__table__), new_employers)
        ids = [eid for _, eid in conn.execute(select(Employer.code, Employer.id).order_by(Employer.id)).all()]

        rows: list[dict] = []
        count = 0
        for pid, _birth in chosen:
            start = rng.randrange(0, months // 2) if rng.random() < 0.3 else 0
            employer = rng.choice(ids)
            change_at = rng.randrange(start + 1, months) if rng.random() < 0.35 and start + 1 < months else None
            gap = rng.randrange(0, 3) if change_at else 0
            base = rng.randrange(4_200_00, 18_000_00, 100)  # 4,200 .. 18,000 yuan a month
            for i in range(start, months):
                month = month_list[i]
                if change_at is not None and i == change_at:
                    employer = rng.choice(ids)
                    base = base * rng.randrange(95, 125) // 100 // 100 * 100
                if change_at is not None and change_at <= i < change_at + gap:
                    continue
                if month.endswith("-01") and i > start:
                    base = base * 105 // 100 // 100 * 100
                for t in INSURANCE_TYPES:
                    employer_fen, personal_fen = amounts_for(t, base)
                    rows.append({
                        "person_id": pid, "insurance_type": t, "month": month, "year": int(month[:4]),
                        "employer_id": employer, "base_fen": base, "employer_fen": employer_fen,
                        "personal_fen": personal_fen, "recorded_at": now,
                    })
                if len(rows) >= CHUNK:
                    count += _write(conn, rows)
                    rows = []
        if rows:
            count += _write(conn, rows)
    return {"people": len(chosen), "employers": len(ids), "contributions": count, "months": months}
