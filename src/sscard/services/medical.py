"""Medical treatment and medicine purchase with the card (issue 5).

- Designated institutions (hospitals of level 1/2/3, pharmacies) and their terminals (operator's work).
- The medical personal account (个人账户) belongs to the PERSON, so it follows them to a new card; it is
  credited monthly from contributions (`credit_month`) and debited by settlements. A month's credit
  is also the proof of being insured: no credit for the visit's month (or the grace months before it)
  answers `not_insured`.
- A terminal of a designated institution reads the card (card number + identification code, both
  must match), asks for a pre-settlement (a signed quote: no state change but the audit record), then
  settles it with the SS application password (3 wrong: locked until a window resets it), the quote
  and an idempotency key. The bill is split by core.medical; the remainder is paid in cash or from the
  card's bank account (bank PIN, through the ledger). A refund is a new reversing entry.
"""

from __future__ import annotations

import hmac
import re
import secrets as pysecrets
from collections import namedtuple
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, Literal, cast, overload

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import String, bindparam, column, exists, func, literal_column, select, table, union_all
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from ..core.clock import as_utc, shanghai_day
from ..core.errors import SscardError
from ..core.identifiers import mask_card_number, mask_citizen_id, mask_name
from ..core.medical import (
    INSTITUTION_KINDS,
    BillLine,
    Split,
    month_key,
    months_back,
    parse_lines,
    parse_month,
    rules_for,
    split_bill,
)
from ..core.money import require_fen
from ..core.roles import ALL_ROLES_BUT_TERMINAL, CENTER_STAFF, Role
from ..core.states import (
    BankStatus,
    check_ss_usable,
    effective_bank_status,
    effective_ss_status,
    takes_credit,
)
from ..models.foundation import Bank, Card, Person, Terminal
from ..models.medical import (
    AnnualUsage,
    ContributionCredit,
    MedicalInstitution,
    MedicalSettlement,
    PersonalAccount,
    PersonalAccountMovement,
)
from . import access, batching, lookup, medical_book
from .access import Scope
from .operation import Op, Request, operation, query
from .passwords import check_ss_password

QUOTE_SALT = "sscard.medical.quote"
MEDICAL_TERMINAL_KINDS = ("hospital", "pharmacy")
PAY_METHODS = ("cash", "bank")
READERS = CENTER_STAFF | {Role.OPERATOR, Role.SYSTEM, Role.CARDHOLDER}


# ---------------------------------------------------------------- institutions and terminals


def institution_view(inst: MedicalInstitution) -> dict[str, Any]:
    return {
        "code": inst.code,
        "name": inst.name,
        "kind": inst.kind,
        "level": inst.level,
        "designated": inst.designated,
        "settlement_account_no": inst.settlement_account_no,
    }


def _institution(op: Op, code: str) -> MedicalInstitution:
    inst = op.session.scalar(select(MedicalInstitution).where(MedicalInstitution.code == code))
    if inst is None:
        raise SscardError("not_found", what=("医疗机构", "medical institution"))
    return inst


@operation("medical.add_institution", roles={Role.OPERATOR}, scope=Scope.CITY)
def add_institution(op: Op, code: str, name: str, kind: str, level: int | None = None, designated: bool = True,
                    area_code: str = "", settlement_bank_code: str | None = None,
                    settlement_account_no: str = "") -> dict[str, Any]:
    """A hospital (level 1, 2 or 3) or a pharmacy (no level), designated for settlement or not."""
    if kind not in INSTITUTION_KINDS or not (1 <= len(code) <= 16) or not (1 <= len(name) <= 64):
        raise SscardError("invalid_request")
    if (kind == "hospital") != (level in (1, 2, 3)):
        raise SscardError("invalid_request")
    if op.session.scalar(select(MedicalInstitution.id).where(MedicalInstitution.code == code)) is not None:
        raise SscardError("already_exists", what=("医疗机构", "Medical institution"))
    inst = MedicalInstitution(code=code, name=name, kind=kind, level=level if kind == "hospital" else None,
                              designated=designated, area_code=area_code, settlement_account_no=settlement_account_no,
                              created_at=op.now)
    if settlement_bank_code:
        inst.settlement_bank_id = lookup.bank_by_code(op.session, settlement_bank_code).id
    op.session.add(inst)
    op.session.flush()
    op.audit("medical_institution", code, after="designated" if designated else "not_designated", kind=kind,
             level=inst.level)
    return institution_view(inst)


@operation("medical.set_designated", roles={Role.OPERATOR}, scope=Scope.CITY)
def set_designated(op: Op, code: str, designated: bool) -> dict[str, Any]:
    inst = _institution(op, code)
    before = "designated" if inst.designated else "not_designated"
    inst.designated = designated
    op.audit("medical_institution", code, before=before, after="designated" if designated else "not_designated")
    return institution_view(inst)


@operation("medical.add_terminal", roles={Role.OPERATOR}, scope=Scope.CITY)
def add_terminal(op: Op, institution_code: str, code: str, name: str = "") -> dict[str, Any]:
    """A hospital or pharmacy terminal belonging to an institution (its kind follows the institution)."""
    inst = _institution(op, institution_code)
    if not (1 <= len(code) <= 24):
        raise SscardError("invalid_request")
    if op.session.scalar(select(Terminal.id).where(Terminal.code == code)) is not None:
        raise SscardError("already_exists", what=("终端", "Terminal"))
    terminal = Terminal(code=code, kind=inst.kind, name=name or f"{inst.name} {code}", merchant_name=inst.name,
                        institution_id=inst.id, bank_id=None)
    op.session.add(terminal)
    op.session.flush()
    op.audit("terminal", code, after="added", kind=inst.kind, institution=inst.code)
    return {"id": terminal.id, "code": code, "kind": inst.kind, "institution": inst.code}


@query("medical.institutions", roles=ALL_ROLES_BUT_TERMINAL, scope=Scope.CITY)
def list_institutions(op: Op, designated_only: bool = False) -> dict[str, Any]:
    q = select(MedicalInstitution).order_by(MedicalInstitution.code)
    if designated_only:
        q = q.where(MedicalInstitution.designated.is_(True))
    return {"institutions": [institution_view(i) for i in op.session.scalars(q).all()]}


# ---------------------------------------------------------------- personal account and contributions


@overload
def _personal_account(op: Op, person_id: int, *, lock: bool = False, create: Literal[True]) -> PersonalAccount: ...
@overload
def _personal_account(op: Op, person_id: int, *, lock: bool = False, create: bool = False) -> PersonalAccount | None: ...
def _personal_account(op: Op, person_id: int, *, lock: bool = False, create: bool = False) -> PersonalAccount | None:
    book = medical_book.book_of(op.session)
    account = book.opened_account(person_id)
    if account is not None:
        return account
    ahead = _read_ahead(op)
    if person_id in ahead["locked"]:  # read ahead by the (SERIALIZABLE) batch: its row, or that it has none
        account = cast(PersonalAccount | None, ahead["accounts"][person_id])  # a medical_book.AccountRow
    else:
        account = op.session.get(PersonalAccount, person_id, with_for_update=lock or None)
    if account is None and create:
        account = book.open_account(person_id, op.now)  # written with the book
    return account


@overload
def _usage(op: Op, person_id: int, year: int, *, lock: bool = False, create: Literal[True]) -> AnnualUsage: ...
@overload
def _usage(op: Op, person_id: int, year: int, *, lock: bool = False, create: bool = False) -> AnnualUsage | None: ...
def _usage(op: Op, person_id: int, year: int, *, lock: bool = False, create: bool = False) -> AnnualUsage | None:
    book = medical_book.book_of(op.session)
    usage = book.opened_usage(person_id, year)
    if usage is not None:
        return usage
    ahead = _read_ahead(op)
    if person_id in ahead["locked"] and year == ahead["year"]:  # read ahead by the batch, as above
        usage = cast(AnnualUsage | None, ahead["usage"][person_id])  # a medical_book.UsageRow
    else:
        usage = op.session.get(AnnualUsage, (person_id, year), with_for_update=lock or None)
    if usage is None and create:
        usage = book.open_usage(person_id, year)  # written with the book
    return usage


def _move(op: Op, account: PersonalAccount, kind: str, amount: int, *, month: str | None = None,
          settlement_code: str | None = None) -> None:
    """A movement of the personal account, through the medical book (services/medical_book.py): written
    with the transaction, one statement per table; refused (nothing recorded) below zero."""
    medical_book.book_of(op.session).move(account, kind, amount, at=op.now, month=month,
                                          settlement_code=settlement_code)


@operation("medical.credit_month", roles={Role.SYSTEM, Role.OPERATOR}, scope=Scope.CITY, batched=True, alone=True)
def credit_month(op: Op, month: str, credits: list[dict[str, Any]]) -> dict[str, Any]:
    """Credit month M's contributions to personal accounts: `credits` is [{citizen_id|person_id, amount_fen}].

    A person already credited for M is skipped (a re-run of the monthly job credits nobody twice).

    Through the group-commit writer, alone (`alone=True`): it writes the personal accounts and usage rows
    that settlements write, for up to 10,000 people in one transaction, so run beside the writer's batches
    it conflicted with them on PostgreSQL (SERIALIZABLE: the batch or the month reran) and queued for the
    write lock on SQLite; in a batch it would hold every settlement of the batch for its whole length and
    drag them into its rerun when one person is refused. Between two batches it competes with none."""
    year, mon = parse_month(month)
    key = month_key(year, mon)
    credited = skipped = total = 0
    for item in credits:
        amount = require_fen(item.get("amount_fen"), zero=True)
        if item.get("person_id") is not None:
            person = lookup.person_by_id(op.session, int(item["person_id"]))
        else:
            person = lookup.person_by_citizen_id(op.session, str(item.get("citizen_id", "")))
        if op.session.get(ContributionCredit, (person.id, key)) is not None:
            skipped += 1
            continue
        op.session.add(ContributionCredit(person_id=person.id, month=key, amount_fen=amount, credited_at=op.now))
        account = _personal_account(op, person.id, lock=True, create=True)
        _move(op, account, "credit", amount, month=key)
        for usage_year in {year, shanghai_day(op.now).year}:  # made now, not by the settlements that read it
            _usage(op, person.id, usage_year, create=True)
        credited += 1
        total += amount
    op.session.flush()
    op.audit("medical_contributions", key, after="credited", credited=credited, skipped=skipped, total_fen=total)
    return {"month": key, "credited": credited, "skipped": skipped, "total_fen": total}


def insured_months(op: Op, person_id: int) -> list[str]:
    known: list[str] | None = _read_ahead(op)["insured"].get(person_id)
    if known is not None:
        return known
    today = shanghai_day(op.now)
    wanted = months_back(today.year, today.month, op.policy.medical.insured_grace_months)
    rows = op.session.scalars(
        select(ContributionCredit.month).where(ContributionCredit.person_id == person_id,
                                               ContributionCredit.month.in_(wanted))
    ).all()
    return sorted(rows)


def _require_insured(op: Op, person_id: int) -> None:
    if not insured_months(op, person_id):
        raise SscardError("not_insured")


# ---------------------------------------------------------------- a batch's read-ahead

_AHEAD = "sscard.medical.read_ahead"
_NOTHING_AHEAD: dict[str, Any] = {"cards": {}, "terminals": {}, "terminal_ids": {}, "institutions": {}, "people": {},
                                   "banks": {}, "accounts": {}, "usage": {}, "insured": {}, "locked": frozenset(),
                                   "year": None, "settled": frozenset(), "quotes": {}}
_AT_TERMINAL = ("medical.pre_settle", "medical.settle")

# What the bodies read of the rows the read-ahead finds, as plain read-only values (named tuples): a
# terminal, its institution, the holder's name and citizen ID for the answer. The card is the session's
# ORM object (its SS password counter is written through the ORM, and another area's request in the batch
# may change it: a replacement's formal loss); the personal account and the year's usage are the medical
# book's AccountRow and UsageRow (only the book changes them).
_TerminalRow = namedtuple("_TerminalRow", ["id", "code", "institution_id"])
_PersonRow = namedtuple("_PersonRow", ["id", "name", "citizen_id"])
_CARD_KEYS = tuple(a.key for a in sa_inspect(Card).column_attrs)
_INSTITUTION_KEYS = tuple(a.key for a in sa_inspect(MedicalInstitution).column_attrs)
_InstitutionRow = namedtuple("_InstitutionRow", _INSTITUTION_KEYS)  # type: ignore[misc]  # the model's columns


def _read_ahead(op: Op) -> dict[str, Any]:
    ahead: dict[str, Any] = op.session.info.get(_AHEAD, _NOTHING_AHEAD)
    return ahead


@batching.reads_ahead
def _prefetch(session: Session, requests: list[Request | batching.Viewed], now: datetime) -> batching.Ahead | None:
    """For a group-committed batch of pre-settlements and settlements, in ONE statement (one round trip:
    the writer waits for each; on PostgreSQL the transaction's BEGIN goes in the same one): for every
    request, the card it read with its holder, bank, personal account and this year's usage, the holder's
    insured months, the calling terminal with its institution, and whether a settlement's quote is
    settled already. Every settlement reads and writes only its own person's rows (keyed by person), so
    settlements of different people touch nothing in common but the append-only settlement and movement
    tables.

    Read as plain values (db.fetch_together's rows), not ORM entities: building seven ORM objects per request was
    most of the writer's time for (e). Only the card becomes an ORM object (lookup.attach: no query)."""
    mine = [r for r in requests if isinstance(r, Request) and r.name in _AT_TERMINAL]  # (a Viewed is a query's)
    if not mine:
        return None
    today = shanghai_day(now)
    year = today.year
    wanted_months = tuple(months_back(today.year, today.month, mine[0].app.policy.medical.insured_grace_months))
    quotes: dict[str, dict[str, Any]] = {}  # token -> its payload, signature checked (settle reads it from here)
    wanted = sorted({(number if isinstance(number := r.argument("card_number"), str) else None, r.actor.id,
                      _quote_nonce(r, quotes) if r.name == "medical.settle" else None) for r in mine},
                    key=lambda t: tuple(v or "" for v in t))
    params: dict[str, Any] = {"year": year}
    for i, (c, t, n) in enumerate(wanted):
        params.update({f"c{i}": c, f"t{i}": t, f"n{i}": n})
    statement = _read_ahead_statement(len(wanted), wanted_months, session.get_bind().dialect.name == "postgresql")
    return batching.Ahead([(statement, params)], lambda rows: _take_ahead(session, rows[0], year, quotes))


def _take_ahead(session: Session, rows: list[Any], year: int, quotes: dict[str, dict[str, Any]]) -> None:
    """The read-ahead's rows, kept for the batch's settlements (`_read_ahead`)."""
    cards: dict[str, Card] = {}
    terminals: dict[str, _TerminalRow] = {}
    terminal_ids: dict[int, _TerminalRow] = {}
    institutions: dict[int, _InstitutionRow] = {}
    people: dict[int, _PersonRow] = {}
    banks: dict[int, str] = {}
    accounts: dict[int, medical_book.AccountRow | None] = {}
    usage: dict[int, medical_book.UsageRow | None] = {}
    insured: dict[int, list[str]] = {}
    settled = set()
    ncard = len(_CARD_KEYS)
    for row in rows:
        if row.card_id is not None and row.person_name is not None and row.card_card_number not in cards:
            person_id = row.card_person_id
            cards[row.card_card_number] = lookup.attach(session, Card, dict(zip(_CARD_KEYS, row[1:1 + ncard], strict=True)))
            people[person_id] = _PersonRow(person_id, row.person_name, row.person_citizen_id)
            banks[row.card_bank_id] = row.bank_name
            accounts[person_id] = None if row.account_person_id is None else medical_book.AccountRow(
                person_id, row.account_balance_fen, row.account_opened_at, row.account_version)
            usage[person_id] = None if row.usage_person_id is None else medical_book.UsageRow(
                person_id, year, row.usage_deductible_used_fen, row.usage_fund_used_fen)
            insured[person_id] = sorted(row.months.split(",")) if row.months else []
        if row.terminal_id is not None and row.terminal_code not in terminals:
            terminal = _TerminalRow(row.terminal_id, row.terminal_code, row.terminal_institution_id)
            terminals[terminal.code] = terminal_ids[terminal.id] = terminal
            if row.inst_id is not None:
                institutions[row.inst_id] = _InstitutionRow._make(row[-2 - len(_INSTITUTION_KEYS):-2])
        if row.settled:
            # a settlement's quote already settled (a retry under another key): refused before the batch
            # records anything, instead of failing the batch's insert (medical_book.add_settlement)
            settled.add(row.nonce)
    session.info[_AHEAD] = {
        "cards": cards, "terminals": terminals, "terminal_ids": terminal_ids, "institutions": institutions,
        "people": people, "banks": banks, "accounts": accounts, "usage": usage, "insured": insured,
        "locked": frozenset(people), "year": year, "settled": frozenset(settled), "quotes": quotes}


# PostgreSQL: the quotes settled, from the small plain table whose primary key guards them (migration
# 0011: a trigger fills it; the settlements themselves are partitioned by month, and a probe of their
# quote index would plan and scan every month's partition)
_SETTLEMENT_KEYS = table("medical_settlement_keys", column("kind", String), column("value", String))
_READ_AHEAD: dict[tuple[int, tuple[str, ...], bool], Any] = {}  # (number asked, insured months, PostgreSQL) ->
# the statement: built once (building it and its cache key cost more than running it)


def _read_ahead_statement(n: int, months: tuple[str, ...], postgres: bool) -> Any:
    """The read-ahead for n (card number, terminal code, quote nonce), as plain columns in a fixed order:
    the nonce, the card's columns (in _CARD_KEYS' order), the holder's name and citizen ID, the bank's
    name, the personal account, the year's usage, the terminal, the institution's columns (in
    _INSTITUTION_KEYS' order), the insured months and whether the quote is settled.

    The insured months are written into the statement (one statement per set of months: a new one each
    month): PostgreSQL then reads only their partitions of the contribution credits, also in the generic
    plan of the prepared statement (with parameters it would read every month's partition, per row)."""
    key = (n, months, postgres)
    found = _READ_AHEAD.get(key)
    if found is not None:
        return found
    if len(_READ_AHEAD) > 256:
        _READ_AHEAD.clear()  # past months' (a few dozen statements a month)
    if not all(re.fullmatch(r"\d{4}-\d{2}", m) for m in months):  # written into the SQL: months_back's keys only
        raise ValueError(f"not month keys: {months}")
    asked = union_all(*[select(bindparam(f"c{i}", type_=String()).label("card_number"),
                               bindparam(f"t{i}", type_=String()).label("terminal"),
                               bindparam(f"n{i}", type_=String()).label("nonce")) for i in range(n)]).subquery("asked")
    insured = (select(func.aggregate_strings(ContributionCredit.month, ","))
               .where(ContributionCredit.person_id == Card.person_id,
                      ContributionCredit.month.in_([literal_column(f"'{m}'") for m in months]))
               .scalar_subquery())
    if postgres:  # one probe of a primary key per row (a scalar subquery: never a hashed scan of all quotes)
        settled: Any = select(literal_column("1")).where(
            _SETTLEMENT_KEYS.c.kind == literal_column("'quote'"),
            _SETTLEMENT_KEYS.c.value == asked.c.nonce).scalar_subquery().is_not(None)
    else:
        settled = exists().where(MedicalSettlement.quote_nonce == asked.c.nonce)
    card_columns = {a.key: a.columns[0] for a in sa_inspect(Card).column_attrs}
    inst_columns = {a.key: a.columns[0] for a in sa_inspect(MedicalInstitution).column_attrs}
    # no FOR UPDATE: the batch is SERIALIZABLE, and a concurrent writer of the same rows fails it, which reruns it
    statement = (
        select(asked.c.nonce,
               *[card_columns[k].label(f"card_{k}") for k in _CARD_KEYS],
               Person.name.label("person_name"), Person.citizen_id.label("person_citizen_id"),
               Bank.name.label("bank_name"),
               PersonalAccount.person_id.label("account_person_id"),
               PersonalAccount.balance_fen.label("account_balance_fen"),
               PersonalAccount.opened_at.label("account_opened_at"), PersonalAccount.version.label("account_version"),
               AnnualUsage.person_id.label("usage_person_id"),
               AnnualUsage.deductible_used_fen.label("usage_deductible_used_fen"),
               AnnualUsage.fund_used_fen.label("usage_fund_used_fen"),
               Terminal.id.label("terminal_id"), Terminal.code.label("terminal_code"),
               Terminal.institution_id.label("terminal_institution_id"),
               *[inst_columns[k].label(f"inst_{k}") for k in _INSTITUTION_KEYS],
               insured.label("months"), settled.label("settled"))
        .select_from(asked)
        .outerjoin(Card, Card.card_number == asked.c.card_number)
        .outerjoin(Person, Person.id == Card.person_id)
        .outerjoin(Bank, Bank.id == Card.bank_id)
        .outerjoin(PersonalAccount, PersonalAccount.person_id == Card.person_id)
        .outerjoin(AnnualUsage, (AnnualUsage.person_id == Card.person_id) & (AnnualUsage.year == bindparam("year")))
        .outerjoin(Terminal, Terminal.code == asked.c.terminal)
        .outerjoin(MedicalInstitution, MedicalInstitution.id == Terminal.institution_id)
    )
    _READ_AHEAD[key] = statement
    return statement


def _quote_nonce(request: Request, quotes: dict[str, dict[str, Any]]) -> str | None:
    """The nonce of a settlement request's quote (its signature checked; the payload kept in `quotes`
    for the settlement), or None."""
    token = request.argument("quote")
    try:
        payload = URLSafeSerializer(request.app.settings.secret_key, salt=QUOTE_SALT).loads(token)
    except (BadSignature, ValueError, TypeError):
        return None
    if not isinstance(payload, dict):
        return None
    quotes[token] = payload
    nonce = payload.get("n")
    return nonce if isinstance(nonce, str) else None


# ---------------------------------------------------------------- at the terminal


def _terminal(op: Op) -> tuple[Terminal, MedicalInstitution]:
    """The calling terminal and its institution, which must be designated."""
    if op.actor.role is not Role.TERMINAL or op.actor.terminal_kind not in MEDICAL_TERMINAL_KINDS:
        raise SscardError("not_a_medical_terminal")
    ahead = _read_ahead(op)  # a batch's: plain read-only rows (_TerminalRow, _InstitutionRow)
    terminal = ahead["terminals"].get(op.actor.id) or op.session.scalar(
        select(Terminal).where(Terminal.code == op.actor.id))
    if terminal is None or terminal.institution_id is None:
        raise SscardError("not_a_medical_terminal")
    inst = ahead["institutions"].get(terminal.institution_id) or op.session.get(
        MedicalInstitution, terminal.institution_id)
    if inst is None:
        raise SscardError("not_a_medical_terminal")
    if not inst.designated:
        op.audit("medical_institution", inst.code, institution=inst.code)
        raise SscardError("institution_not_designated")
    return terminal, inst


def _read_card(op: Op, card_number: str, ident_code: str) -> Card:
    """What the card reader gives: the card number and the identification code must belong together."""
    card = _read_ahead(op)["cards"].get(card_number) or lookup.card_by_number(op.session, card_number)
    op.audit("card", card.card_number, person_id=card.person_id)
    if not hmac.compare_digest(card.ident_code.encode(), (ident_code or "").strip().upper().encode()):
        raise SscardError("ident_code_mismatch")
    check_ss_usable(effective_ss_status(card.ss_status, card.loss_expires_at, op.now))
    return card


def _split(op: Op, inst: MedicalInstitution, person_id: int, bill: list[BillLine], use_personal_account: bool,
           *, lock: bool = False) -> tuple[Split, PersonalAccount | None, AnnualUsage | None]:
    year = shanghai_day(op.now).year
    account = _personal_account(op, person_id, lock=lock)
    usage = _usage(op, person_id, year, lock=lock, create=lock)
    split = split_bill(
        bill,
        rules_for(op.policy, inst.kind, inst.level),
        deductible_used_fen=usage.deductible_used_fen if usage else 0,
        fund_used_fen=usage.fund_used_fen if usage else 0,
        personal_balance_fen=account.balance_fen if account else 0,
        use_personal_account=use_personal_account,
    )
    return split, account, usage


def _serializer(op: Op) -> URLSafeSerializer:
    return URLSafeSerializer(op.app.settings.secret_key, salt=QUOTE_SALT)


def _lines_json(bill: list[BillLine]) -> list[dict[str, Any]]:
    return [{"category": b.category, "name": b.name, "code": b.code, "amount_fen": b.amount_fen, "covered": b.covered}
            for b in bill]


@operation("medical.pre_settle", roles={Role.TERMINAL}, scope=Scope.OWN, keyed=False, terminals=access.MEDICAL, batched=True)
def pre_settle(op: Op, card_number: str, ident_code: str, lines: list[dict[str, Any]], use_personal_account: bool = True) -> dict[str, Any]:
    """预结算: what the fund, the personal account and the patient would pay. Changes nothing; the
    answer carries a signed quote that `settle` takes within policy medical.quote_valid_minutes."""
    terminal, inst = _terminal(op)
    bill = parse_lines(lines)
    card = _read_card(op, card_number, ident_code)
    if card.ss_pw_locked:  # settling would be refused: say so now, before the bill is quoted
        raise SscardError("password_locked", reset_required=True,
                          until=("，请持身份证件到服务网点重置", ": a reset at a service window is needed"))
    _require_insured(op, card.person_id)
    split, _account, _usage_row = _split(op, inst, card.person_id, bill, use_personal_account)
    nonce = pysecrets.token_hex(16)
    expires = op.now + timedelta(minutes=op.policy.medical.quote_valid_minutes)
    token = _serializer(op).dumps({
        "n": nonce, "c": card.card_number, "t": terminal.code, "l": _lines_json(bill),
        "pa": bool(use_personal_account), "s": split.as_dict(), "e": expires.isoformat(),
    })
    op.audit("medical_quote", nonce, after="quoted", person_id=card.person_id, institution=inst.code,
             total_fen=split.total_fen, fund_fen=split.fund_fen, personal_fen=split.personal_fen,
             self_pay_fen=split.self_pay_fen)
    return {"quote": token, "quote_id": nonce, "expires_at": expires, "institution": institution_view(inst),
            "card_number": mask_card_number(card.card_number), "split": split.as_dict(),
            "use_personal_account": bool(use_personal_account)}


_SETTLEMENT_COLUMNS = tuple(c.key for c in medical_book.SETTLEMENTS.columns if c.key != "id")


def _settlement_values(**values: Any) -> dict[str, Any]:
    """A settlement or refund row: every column but the id (the database's), in the table's order."""
    return {key: values[key] for key in _SETTLEMENT_COLUMNS}


def _answer_row(values: dict[str, Any]) -> MedicalSettlement:
    """The row just recorded (the book writes it), as `settlement_view` reads it: its columns as
    attributes (a plain namespace: an ORM object costs more to make, and must stay out of the session)."""
    return cast(MedicalSettlement, SimpleNamespace(id=None, **values))


def _insert_once(op: Op, values: dict[str, Any], code: str) -> None:
    """Record a settlement or refund; its unique quote (or reversed settlement) refuses a second one.
    On its own it is inserted at once in a savepoint, and the unique index decides (a read first would,
    under SERIALIZABLE, lock index pages that every other settlement writes to). In a group-committed
    batch it is written with the medical book (no savepoint, no round trip of its own): a quote the
    read-ahead found settled, or one this batch settled, is refused here first; a duplicate that still
    reaches the database fails the batch's insert, and the batch answers its requests one by one."""
    book = medical_book.book_of(op.session)
    deferred = batching.in_batch(op.session)
    if deferred and values["quote_nonce"] and book.quote_taken(values["quote_nonce"], _read_ahead(op)["settled"]):
        raise SscardError(code)
    book.add_settlement(values, code, deferred=deferred)


def _refunded_by(op: Op, row: MedicalSettlement) -> str | None:
    return op.session.scalar(select(MedicalSettlement.code).where(MedicalSettlement.reverses_id == row.id))


def _load_quote(op: Op, token: str, terminal: Terminal) -> dict[str, Any]:
    payload = _read_ahead(op)["quotes"].get(token)  # checked and decoded by the batch's read-ahead
    if payload is None:
        try:
            payload = _serializer(op).loads(token)
        except (BadSignature, ValueError, TypeError):
            raise SscardError("quote_invalid") from None
    if not isinstance(payload, dict) or payload.get("t") != terminal.code:
        raise SscardError("quote_invalid")
    if as_utc(datetime.fromisoformat(payload["e"])) <= op.now:
        raise SscardError("quote_expired")
    return payload


@operation("medical.settle", roles={Role.TERMINAL}, scope=Scope.OWN, secrets=('ss_password', 'bank_pin'), terminals=access.MEDICAL, batched=True)
def settle(op: Op, quote: str, card_number: str, ident_code: str, ss_password: str, pay_with: str = "cash",
           bank_pin: str | None = None) -> dict[str, Any]:
    """结算: the quote, the card still in the reader, the SS application password; remainder in cash or
    from the card's bank account (bank PIN). Needs an idempotency key."""
    if not op.idempotency_key:
        raise SscardError("idempotency_key_required")
    if pay_with not in PAY_METHODS:
        raise SscardError("invalid_request")
    terminal, inst = _terminal(op)
    payload = _load_quote(op, quote, terminal)
    card = _read_card(op, card_number, ident_code)
    if card.card_number != payload["c"]:
        raise SscardError("quote_invalid")
    check_ss_password(op, card, ss_password, for_medical_use=True)
    _require_insured(op, card.person_id)
    bill = parse_lines(payload["l"])
    split, account, usage = _split(op, inst, card.person_id, bill, payload["pa"], lock=True)
    assert usage is not None  # _split(lock=True) creates this year's usage
    if split.as_dict() != payload["s"]:
        if medical_book.book_of(op.session).quote_taken(payload["n"], _read_ahead(op)["settled"]) or op.session.scalar(
                select(MedicalSettlement.id).where(MedicalSettlement.quote_nonce == payload["n"])):
            raise SscardError("quote_already_settled")  # (read only here: the unique index decides otherwise)
        raise SscardError("quote_outdated")
    method = pay_with if split.self_pay_fen > 0 else "none"
    code = f"MS{shanghai_day(op.now):%Y%m%d}{pysecrets.token_hex(5).upper()}"
    bank_ref = None
    if method == "bank":  # first: a wrong PIN commits only its own counter, nothing of the settlement
        bank_ref = bank_payment(op, card, inst, split.self_pay_fen, bank_pin, code)
    values = _settlement_values(
        code=code, kind="settlement", quote_nonce=payload["n"], reverses_id=None, person_id=card.person_id,
        card_id=card.id, institution_id=inst.id, terminal_id=terminal.id, at=op.now, year=usage.year,
        total_fen=split.total_fen, covered_fen=split.covered_fen, uncovered_fen=split.uncovered_fen,
        deductible_fen=split.deductible_fen, copay_fen=split.copay_fen, fund_fen=split.fund_fen,
        personal_fen=split.personal_fen, self_pay_fen=split.self_pay_fen, self_pay_method=method,
        bank_reference=bank_ref, personal_balance_after_fen=(account.balance_fen if account else 0) - split.personal_fen,
        lines=_lines_json(bill), reason="",
    )
    _insert_once(op, values, "quote_already_settled")
    if split.personal_fen:
        assert account is not None  # a personal share is taken only from an account's balance (_split)
        _move(op, account, "settlement", -split.personal_fen, settlement_code=code)
    medical_book.book_of(op.session).use(usage, usage.deductible_used_fen + split.deductible_fen,
                                         usage.fund_used_fen + split.fund_fen)
    row = _answer_row(values)
    op.audit("medical_settlement", code, after="settled", person_id=card.person_id, institution=inst.code,
             total_fen=split.total_fen, fund_fen=split.fund_fen, personal_fen=split.personal_fen,
             self_pay_fen=split.self_pay_fen, pay_with=method, quote_id=payload["n"])
    return settlement_view(op, row, fresh=True)


@operation("medical.refund", roles={Role.TERMINAL, Role.OPERATOR}, scope=Scope.OWN, terminals=access.MEDICAL, batched=True)
def refund(op: Op, settlement_code: str, reason: str = "") -> dict[str, Any]:
    """退费: a new entry reversing a settlement; the fund's year-to-date usage, the deductible met and the
    personal account are restored, self-pay goes back the way it came. Needs an idempotency key."""
    if not op.idempotency_key:
        raise SscardError("idempotency_key_required")
    original = op.session.scalar(select(MedicalSettlement).where(MedicalSettlement.code == settlement_code,
                                                                  MedicalSettlement.kind == "settlement"))
    if original is None:
        raise SscardError("settlement_not_found")
    terminal = None
    if op.actor.role is Role.TERMINAL:
        terminal, inst = _terminal(op)
        if original.institution_id != inst.id:
            raise SscardError("settlement_not_found")
    else:
        known_inst = op.session.get(MedicalInstitution, original.institution_id)
        assert known_inst is not None  # medical_settlements.institution_id is a NOT NULL foreign key
        inst = known_inst
    if original.id in medical_book.book_of(op.session).reversed or _refunded_by(op, original) is not None:
        raise SscardError("already_refunded")
    account = _personal_account(op, original.person_id, lock=True, create=True)
    usage = _usage(op, original.person_id, original.year, lock=True, create=True)
    code = f"MR{shanghai_day(op.now):%Y%m%d}{pysecrets.token_hex(5).upper()}"
    bank_ref = None
    method = original.self_pay_method
    if method == "bank" and original.self_pay_fen:
        bank_ref = bank_refund(op, original, inst, code)
        if bank_ref is None:  # no account of the holder's takes it back: the institution's till pays it (R9.8)
            method = "cash"
    values = _settlement_values(
        code=code, kind="refund", quote_nonce=None, reverses_id=original.id, person_id=original.person_id,
        card_id=original.card_id,
        institution_id=original.institution_id, terminal_id=terminal.id if terminal else original.terminal_id,
        at=op.now, year=original.year, total_fen=-original.total_fen, covered_fen=-original.covered_fen,
        uncovered_fen=-original.uncovered_fen, deductible_fen=-original.deductible_fen,
        copay_fen=-original.copay_fen, fund_fen=-original.fund_fen, personal_fen=-original.personal_fen,
        self_pay_fen=-original.self_pay_fen, self_pay_method=method, bank_reference=bank_ref,
        personal_balance_after_fen=account.balance_fen + original.personal_fen, lines=original.lines,
        reason=(reason or "")[:64],
    )
    _insert_once(op, values, "already_refunded")
    if original.personal_fen:
        _move(op, account, "refund", original.personal_fen, settlement_code=code)
    medical_book.book_of(op.session).use(usage, max(0, usage.deductible_used_fen - original.deductible_fen),
                                         max(0, usage.fund_used_fen - original.fund_fen))
    row = _answer_row(values)
    op.audit("medical_settlement", original.code, before="settled", after="refunded", person_id=original.person_id,
             refund=code, institution=inst.code, fund_fen=original.fund_fen, personal_fen=original.personal_fen,
             self_pay_fen=original.self_pay_fen, self_pay_refunded=method)
    return settlement_view(op, row)


# ---------------------------------------------------------------- the remainder from the bank account


def institution_ledger_account(op: Op, inst: MedicalInstitution) -> int:
    """The institution's settlement account in the ledger (a merchant account), made on first use."""
    if inst.ledger_account_id is None:
        from . import ledger

        if not isinstance(inst, MedicalInstitution):  # a batch's read-only row: the ORM object to write
            found = op.session.get(MedicalInstitution, inst.id)
            assert found is not None  # the batch read this institution's row in this transaction
            _read_ahead(op)["institutions"][found.id] = inst = found  # the batch's later requests see it
        inst.ledger_account_id = ledger.system_account(op, f"merchant:medical:{inst.code}", kind="merchant",
                                                       bank_id=inst.settlement_bank_id)
    return inst.ledger_account_id


def bank_payment(op: Op, card: Card, inst: MedicalInstitution, amount: int, pin: str | None, reference: str) -> str:
    """Debit the card's bank account for the self-pay part, to the institution's settlement account,
    through the ledger (services.ledger / services.banking): account state, the card's expiry date (a
    terminal's debit: docs/RULES.md R10.14), bank PIN (3-strike lockout,
    its counter committed even on refusal), the daily payment limit, no overdraft.

    Called before anything of the settlement is written: a refusal here commits only counters."""
    from . import banking, ledger

    if not pin:
        raise SscardError("pin_required")
    account = lookup.account_for_card(op.session, card)
    source = banking.debit_ready(op, account, pin, card=card)  # state, the card's date (R10.14), the PIN
    target = institution_ledger_account(op, inst)
    try:
        moved = ledger.transfer(op, source, target, amount, "medical_payment", ref=reference,
                                limit=("payment", op.policy.limits.payment_per_day_fen))
    except SscardError as err:  # keep the PIN counter's reset and the refusal's audit record
        if err.commit:
            raise
        raise SscardError(err.code, commit=True, status=err.status, **err.params) from None
    transfer_id: str = moved["transfer_id"]
    return transfer_id


def bank_refund(op: Op, original: MedicalSettlement, inst: MedicalInstitution, reference: str) -> str | None:
    """Self-pay back to the bank account it came from; if that account has been closed (a replacement
    card took it over), to the account of the person's current card. None when neither takes a credit
    (closed at the counter, and no later card's account open): the refund's self-pay is then paid in cash
    at the institution, which holds it in its settlement account (R9.8), and the rest of the refund (the
    fund, the personal account, the year's usage) is not held up by a bank account the patient closed."""
    from . import ledger

    card = op.session.get(Card, original.card_id)
    assert card is not None  # medical_settlements.card_id is a NOT NULL foreign key
    account = lookup.account_for_card(op.session, card)
    if account.status == BankStatus.CLOSED:
        current = lookup.current_card(op.session, original.person_id)
        if current is not None:
            account = lookup.account_for_card(op.session, current)
    if not takes_credit(effective_bank_status(account.status, account.loss_expires_at, op.now)):
        return None
    target = ledger.customer_account(op.session, account, op.now)
    moved = ledger.transfer(op, institution_ledger_account(op, inst), target, original.self_pay_fen,
                            "medical_refund", ref=reference)
    transfer_id: str = moved["transfer_id"]
    return transfer_id


# ---------------------------------------------------------------- reading


def settlement_view(op: Op, row: MedicalSettlement, *, fresh: bool = False) -> dict[str, Any]:
    ahead = _read_ahead(op)  # in a batch: the rows its read-ahead found (no query for them)
    inst = ahead["institutions"].get(row.institution_id) or op.session.get(MedicalInstitution, row.institution_id)
    card = op.session.get(Card, row.card_id)
    person = ahead["people"].get(row.person_id) or op.session.get(Person, row.person_id)
    assert inst is not None and person is not None  # medical_settlements: NOT NULL foreign keys
    bank_name = None
    if card is not None:
        bank_name = ahead["banks"].get(card.bank_id)
        if bank_name is None:
            bank = op.session.get(Bank, card.bank_id)
            bank_name = bank.name if bank else None
    reverses = op.session.get(MedicalSettlement, row.reverses_id) if row.reverses_id else None
    refunded_by = _refunded_by(op, row) if row.kind == "settlement" and not fresh else None
    terminal = ahead["terminal_ids"].get(row.terminal_id) or op.session.get(Terminal, row.terminal_id)
    return {
        "code": row.code,
        "kind": row.kind,
        "at": row.at,
        "year": row.year,
        "institution": institution_view(inst),
        "terminal": terminal.code if terminal else None,
        "card_number": mask_card_number(card.card_number) if card else None,
        "person": {"id": person.id, "name": mask_name(person.name), "citizen_id": mask_citizen_id(person.citizen_id)},
        "bank": bank_name,
        "lines": row.lines,
        "split": {
            "total_fen": row.total_fen,
            "covered_fen": row.covered_fen,
            "uncovered_fen": row.uncovered_fen,
            "deductible_fen": row.deductible_fen,
            "copay_fen": row.copay_fen,
            "fund_fen": row.fund_fen,
            "personal_fen": row.personal_fen,
            "self_pay_fen": row.self_pay_fen,
        },
        "self_pay_method": row.self_pay_method,
        "personal_balance_after_fen": row.personal_balance_after_fen,
        "reverses": reverses.code if reverses else None,
        "refunded_by": refunded_by,
        "reason": row.reason,
    }


def _readable_settlement(op: Op, code: str) -> MedicalSettlement:
    row = op.session.scalar(select(MedicalSettlement).where(MedicalSettlement.code == code))
    if row is None:
        raise SscardError("settlement_not_found")
    if op.actor.role is Role.TERMINAL:
        terminal = op.session.scalar(select(Terminal).where(Terminal.code == op.actor.id))
        if terminal is None or terminal.institution_id != row.institution_id:
            raise SscardError("settlement_not_found")
    elif op.actor.role is Role.CARDHOLDER and op.actor.person_id != row.person_id:
        raise SscardError("settlement_not_found")
    access.checked(Scope.OWN)  # a terminal its institution's, a cardholder their own (READERS: no bank side)
    return row


@query("medical.settlement", roles=READERS | {Role.TERMINAL}, scope=Scope.OWN, terminals=access.MEDICAL)
def get_settlement(op: Op, code: str) -> dict[str, Any]:
    """One settlement or refund: the cardholder's own, their institution's for a terminal, any for staff."""
    row = _readable_settlement(op, code)
    op.audit("medical_settlement", code, person_id=row.person_id)
    return settlement_view(op, row)


@query("medical.person_settlements", roles=READERS, scope=Scope.OWN)
def person_settlements(op: Op, person_id: int, year: int | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """A person's settlements and refunds, newest first (staff, or the cardholder themself)."""
    person = lookup.person_by_id(op.session, person_id, op.actor)
    op.audit("person", person.id, person_id=person.id)
    q = select(MedicalSettlement).where(MedicalSettlement.person_id == person.id)
    if year is not None:
        q = q.where(MedicalSettlement.year == year)
    total = op.session.scalar(select(func.count()).select_from(q.subquery()))
    rows = op.session.scalars(q.order_by(MedicalSettlement.at.desc(), MedicalSettlement.id.desc())
                              .limit(max(1, min(limit, 500))).offset(max(0, offset))).all()
    return {"person_id": person.id, "total": total, "settlements": [settlement_view(op, r) for r in rows]}


@query("medical.personal_account", roles=READERS, scope=Scope.OWN)
def personal_account(op: Op, person_id: int, movements: int = 20) -> dict[str, Any]:
    """Balance, recent movements, this year's deductible met and fund used, and insured months."""
    person = lookup.person_by_id(op.session, person_id, op.actor)
    op.audit("person", person.id, person_id=person.id)
    account = _personal_account(op, person.id)
    year = shanghai_day(op.now).year
    usage = _usage(op, person.id, year)
    rows = op.session.scalars(
        select(PersonalAccountMovement).where(PersonalAccountMovement.person_id == person.id)
        .order_by(PersonalAccountMovement.id.desc()).limit(max(1, min(movements, 500)))
    ).all()
    return {
        "person_id": person.id,
        "balance_fen": account.balance_fen if account else 0,
        "year": year,
        "deductible_used_fen": usage.deductible_used_fen if usage else 0,
        "fund_used_fen": usage.fund_used_fen if usage else 0,
        "insured_months": insured_months(op, person.id),
        "movements": [{"kind": m.kind, "amount_fen": m.amount_fen, "balance_after_fen": m.balance_after_fen,
                       "month": m.month, "at": m.at} for m in rows],
    }
