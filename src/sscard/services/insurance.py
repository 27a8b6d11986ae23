"""Contribution records of the five social insurances (issue 7), and the cardholder's own card for the portal.

A record is one month of one insurance for one person at one employer: the contribution base and
what the employer and the person paid, in integer fen. Pension, medical and unemployment are paid by
both; work injury and maternity by the employer only. Amounts are computed from the base with the
rates below (basis points, rounded half up to the fen) when the month is recorded.

Reads answer rows by month and type, totals per year (per type and overall) and the pension
contributions per year (for the portal's chart); `contributions_csv` renders the same rows as CSV.
A cardholder reads only their own records: another person's id answers as if it did not exist.
"""

from __future__ import annotations

import io
import re
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core import spreadsheet
from ..core.errors import SscardError, register_messages
from ..core.identifiers import mask_citizen_id, mask_name
from ..core.money import fen_to_yuan
from ..core.roles import ALL_ROLES_BUT_TERMINAL, Actor, Role
from ..core.states import SsStatus, effective_ss_status
from ..i18n import label_pair
from ..models.foundation import Card
from ..models.insurance import Contribution, Employer
from . import access, lookup
from .access import Scope
from .app import App
from .operation import Op, operation, query

INSURANCE_TYPES = ("pension", "medical", "unemployment", "work_injury", "maternity")
# (Chinese, English) of each kind: its label in core.labels, English from the catalog.
TYPE_NAMES: dict[str, tuple[str, str]] = {t: label_pair("insurance_kind", t) for t in INSURANCE_TYPES}
# (employer, personal) rates in basis points of the contribution base (national reference rates).
RATES_BP = {
    "pension": (1600, 800),
    "medical": (800, 200),
    "unemployment": (50, 50),
    "work_injury": (40, 0),
    "maternity": (80, 0),
}
_MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
MAX_BASE_FEN = 10_000_000  # 100,000.00 yuan a month: far above any city's ceiling

register_messages(
    {
        "invalid_insurance_type": (422, "险种无效：{value}", "Unknown insurance type: {value}"),
        "invalid_month": (422, "月份无效：{value}（应为YYYY-MM）", "Invalid month: {value} (expected YYYY-MM)"),
        "no_issued_card": (409, "您目前没有可使用的社会保障卡", "You have no card in use at present"),
    }
)


def share_of(base_fen: int, rate_bp: int) -> int:
    """base × rate, rounded half up to the fen, in integers only."""
    return (base_fen * rate_bp + 5000) // 10000


def amounts_for(insurance_type: str, base_fen: int) -> tuple[int, int]:
    employer_bp, personal_bp = RATES_BP[insurance_type]
    return share_of(base_fen, employer_bp), share_of(base_fen, personal_bp)


def check_type(insurance_type: str) -> str:
    if insurance_type not in INSURANCE_TYPES:
        raise SscardError("invalid_insurance_type", value=str(insurance_type)[:20])
    return insurance_type


def check_month(month: str) -> str:
    if not isinstance(month, str) or not _MONTH_RE.match(month):
        raise SscardError("invalid_month", value=str(month)[:10])
    return month


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def employer_for(session: Session, code: str, name: str) -> Employer:
    code, name = (code or "").strip().upper(), (name or "").strip()
    if not (1 <= len(code) <= 18) or not (1 <= len(name) <= 64):
        raise SscardError("invalid_request")
    employer = session.scalar(select(Employer).where(Employer.code == code))
    if employer is None:
        employer = Employer(code=code, name=name)
        session.add(employer)
        session.flush()
    return employer


# ---------------------------------------------------------------- recording


@operation("insurance.record_month", roles={Role.SYSTEM, Role.OPERATOR}, scope=Scope.CITY)
def record_month(
    op: Op,
    person_id: int,
    month: str,
    employer_code: str,
    employer_name: str,
    base_fen: int,
    types: list[str] | None = None,
) -> dict[str, Any]:
    """Record a month's contributions of one person at one employer (from the collection agency's
    monthly file): every insurance type named (all five by default), amounts from the base and rates."""
    person = lookup.person_by_id(op.session, person_id)
    check_month(month)
    if not isinstance(base_fen, int) or isinstance(base_fen, bool) or not 0 < base_fen <= MAX_BASE_FEN:
        raise SscardError("invalid_amount")
    wanted = [check_type(t) for t in (types or INSURANCE_TYPES)]
    employer = employer_for(op.session, employer_code, employer_name)
    existing = set(
        op.session.scalars(
            select(Contribution.insurance_type).where(
                Contribution.person_id == person.id, Contribution.month == month,
                Contribution.employer_id == employer.id,
            )
        )
    )
    duplicates = [t for t in wanted if t in existing]
    if duplicates:
        raise SscardError("already_exists", what=(f"{month}缴费记录", f"The {month} contribution record"))
    rows = []
    for t in wanted:
        employer_fen, personal_fen = amounts_for(t, base_fen)
        op.session.add(
            Contribution(
                person_id=person.id, insurance_type=t, month=month, year=int(month[:4]), employer_id=employer.id,
                base_fen=base_fen, employer_fen=employer_fen, personal_fen=personal_fen, recorded_at=op.now,
            )
        )
        rows.append({"insurance_type": t, "employer_fen": employer_fen, "personal_fen": personal_fen})
    op.audit("contribution", f"{person.id}:{month}", after="recorded", person_id=person.id,
             employer=employer.code, types=wanted, base_fen=base_fen)
    return {"person_id": person.id, "month": month, "employer_code": employer.code, "base_fen": base_fen,
            "records": rows}


# ---------------------------------------------------------------- reading


def _row(c: Contribution, employer: Employer) -> dict[str, Any]:
    return {
        "month": c.month,
        "year": c.year,
        "insurance_type": c.insurance_type,
        "employer_code": employer.code,
        "employer_name": employer.name,
        "base_fen": c.base_fen,
        "employer_fen": c.employer_fen,
        "personal_fen": c.personal_fen,
        "total_fen": c.employer_fen + c.personal_fen,
    }


def _empty_sum() -> dict[str, Any]:
    return {"employer_fen": 0, "personal_fen": 0, "total_fen": 0, "months": 0}


def _add(acc: dict[str, Any], row: dict[str, Any]) -> None:
    acc["employer_fen"] += row["employer_fen"]
    acc["personal_fen"] += row["personal_fen"]
    acc["total_fen"] += row["total_fen"]


@query("insurance.records", roles=ALL_ROLES_BUT_TERMINAL, scope=Scope.OWN)
def contribution_records(op: Op, person_id: int, year: int | None = None, insurance_type: str | None = None) -> dict[str, Any]:
    """A person's contributions by month and type (newest first), optionally one year and/or one type;
    totals per year for every year on record (per type and overall), and pension per year (oldest first)."""
    person = lookup.person_by_id(op.session, person_id, op.actor)
    if insurance_type:
        check_type(insurance_type)
    op.audit("person", person.id, person_id=person.id)
    found = op.session.execute(
        select(Contribution, Employer)
        .join(Employer, Employer.id == Contribution.employer_id)
        .where(Contribution.person_id == person.id)
    ).all()
    order = {t: i for i, t in enumerate(INSURANCE_TYPES)}
    all_rows = sorted((_row(c, e) for c, e in found),
                      key=lambda r: (r["month"], -order[r["insurance_type"]], r["employer_code"]), reverse=True)
    totals: dict[int, dict[str, Any]] = {}
    months_seen: dict[tuple[int, str], set[str]] = {}
    for r in all_rows:
        y = totals.setdefault(r["year"], {"year": r["year"], **_empty_sum(),
                                          "by_type": {t: _empty_sum() for t in INSURANCE_TYPES}})
        _add(y, r)
        _add(y["by_type"][r["insurance_type"]], r)
        months_seen.setdefault((r["year"], r["insurance_type"]), set()).add(r["month"])
        months_seen.setdefault((r["year"], ""), set()).add(r["month"])
    for (yr, t), months in months_seen.items():
        (totals[yr]["by_type"][t] if t else totals[yr])["months"] = len(months)
    years = sorted(totals, reverse=True)
    months_by_type = {t: len({r["month"] for r in all_rows if r["insurance_type"] == t}) for t in INSURANCE_TYPES}
    rows = [r for r in all_rows if (year is None or r["year"] == year)
            and (not insurance_type or r["insurance_type"] == insurance_type)]
    return {
        "person": {"name": mask_name(person.name), "citizen_id": mask_citizen_id(person.citizen_id)},
        "year": year,
        "insurance_type": insurance_type or None,
        "years": years,
        "types": list(INSURANCE_TYPES),
        "rows": rows,
        "totals": [totals[y] for y in years],
        "pension_by_year": [{"year": y, **totals[y]["by_type"]["pension"]} for y in sorted(totals)],
        # contribution months on record per insurance kind, all years (a month paid at two employers counts once)
        "months_by_type": months_by_type,
        "first_month": all_rows[-1]["month"] if all_rows else None,
        "last_month": all_rows[0]["month"] if all_rows else None,
    }


_CSV_HEAD = {
    "zh": ["月份", "险种", "缴费单位", "统一社会信用代码", "缴费基数(元)", "单位缴纳(元)", "个人缴纳(元)", "合计(元)"],
    "en": ["Month", "Insurance", "Employer", "Employer code", "Base (yuan)", "Employer paid (yuan)",
           "Personal paid (yuan)", "Total (yuan)"],
}


def contributions_csv(app: App, actor: Actor, person_id: int, year: int | None = None, insurance_type: str | None = None,
                      lang: str = "zh") -> str:
    """The records as CSV (amounts in yuan with two decimals; names in the asked language)."""
    data = contribution_records(app, actor, person_id, year=year, insurance_type=insurance_type)
    en = lang.startswith("en")
    out = io.StringIO()
    writer = spreadsheet.Writer(out, lineterminator="\r\n")
    writer.writerow(_CSV_HEAD["en" if en else "zh"])
    for r in data["rows"]:
        writer.writerow([
            r["month"], TYPE_NAMES[r["insurance_type"]][1 if en else 0], r["employer_name"],
            r["employer_code"], fen_to_yuan(r["base_fen"]), fen_to_yuan(r["employer_fen"]),
            fen_to_yuan(r["personal_fen"]), fen_to_yuan(r["total_fen"]),
        ])
    return out.getvalue()


# ---------------------------------------------------------------- the cardholder's own card (portal)


@query("portal.own_card", roles={Role.CARDHOLDER}, scope=Scope.OWN)
def own_card(op: Op, purpose: str = "loss") -> dict[str, Any]:
    """The signed-in cardholder's card to act on, chosen by the server (the portal never takes a card
    number or person id from the browser): for `loss` the newest issued card (normal or lost); for
    `password` the newest card in normal use. The number is for the service call, never for the page."""
    states = {
        "loss": {SsStatus.NORMAL, SsStatus.TEMPORARY_LOSS, SsStatus.FORMAL_LOSS},
        "password": {SsStatus.NORMAL},
    }[purpose]
    cards = op.session.scalars(
        select(Card).where(Card.person_id == op.actor.person_id).order_by(Card.id.desc())
    ).all()
    access.checked(Scope.OWN)  # read by the signed-in cardholder's own person id, nothing from the browser
    for card in cards:
        status = effective_ss_status(card.ss_status, card.loss_expires_at, op.now)
        if status in states:
            return {"card_number": card.card_number, "ss_status": status}
    raise SscardError("no_issued_card")
