"""The medical book: what one transaction's settlements, refunds and contribution credits change of the
medical tables, written once (as services/book.py does for the ledger).

A personal account's balance and a year's usage are read once (the ORM objects the batch's read-ahead
loaded, or `session.get`), changed here in memory, and written when the transaction commits: one
statement per table for the whole transaction (the settlement and refund rows, the personal-account
movements, the balance changes, the usage changes). A group-committed batch of eight settlements thus
writes four statements, sent in the commit's pipeline (PostgreSQL: no round trip of their own), instead
of four ORM flushes per settlement.

- Balances and usage change by deltas (`balance_fen = balance_fen + d`, upserts that also make the rows
  a transaction opened); the objects read are kept in step (an ORM object by `set_committed_value`: the
  session sees no change to flush; in a group-committed batch, the plain AccountRow and UsageRow its
  read-ahead made), so every later read in the transaction, through the book or the object, sees the
  requests before it.
- A movement names its settlement by the settlement's code (a subquery on the unique code): the ids are
  the database's, and no statement waits for another's answer.
- Outside a group-committed batch a settlement row is inserted at once, in a savepoint, so that its
  unique quote (or reversed settlement) refuses a second one as before; in a batch the duplicates are
  refused before anything is recorded (the book's own rows and the quotes the read-ahead found settled),
  and a duplicate that still reaches the database fails the batch, which then answers its requests one
  by one.
- Before anything is written the book asserts its invariants (no negative balance or usage; every
  account's change is the sum of its movements; every settlement's personal share is its movement): a
  breach is a defect, rolls the transaction back, and a batch then answers its requests one by one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Table,
    bindparam,
    insert,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..core.errors import SscardError
from ..db import execute_many
from ..models.medical import AnnualUsage, MedicalSettlement, PersonalAccount, PersonalAccountMovement
from .batching import area_book
from .book import per_transaction

SETTLEMENTS = cast(Table, MedicalSettlement.__table__)  # declared as a FromClause; a mapped class's table is a Table
MOVEMENTS = cast(Table, PersonalAccountMovement.__table__)
ACCOUNTS = cast(Table, PersonalAccount.__table__)
USAGE = cast(Table, AnnualUsage.__table__)
INFO_KEY = "sscard_medical_book"


class MedicalInvariantBroken(AssertionError):
    """A personal account or a year's usage would be wrong: a defect in the code that changed it."""


_INSERT_SETTLEMENTS = insert(SETTLEMENTS).inline()  # no RETURNING: it may run in a pipeline
_MOVEMENT_COLUMNS = ("person_id", "kind", "amount_fen", "balance_after_fen", "month", "settlement_id", "at")
# PostgreSQL: one statement for every movement (a VALUES list); the settlement found by its code and time
# (the partition key: one partition's unique index)
_INSERT_MOVEMENTS_PG = text(
    "INSERT INTO medical_account_movements (person_id, kind, amount_fen, balance_after_fen, month, settlement_id, at) "
    "SELECT v.person_id, v.kind, v.amount_fen, v.balance_after_fen, v.month, "
    "(SELECT s.id FROM medical_settlements AS s WHERE s.code = v.code AND s.at = v.at), v.at "
    "FROM (VALUES (CAST(:person_id AS INTEGER), CAST(:kind AS VARCHAR), CAST(:amount_fen AS BIGINT), "
    "CAST(:balance_after_fen AS BIGINT), CAST(:month AS VARCHAR), CAST(:code AS VARCHAR), CAST(:at AS TIMESTAMPTZ))) "
    "AS v(person_id, kind, amount_fen, balance_after_fen, month, code, at)")
_INSERT_MOVEMENTS = insert(MOVEMENTS).from_select(
    list(_MOVEMENT_COLUMNS),
    select(bindparam("person_id", type_=Integer), bindparam("kind", type_=String),
           bindparam("amount_fen", type_=BigInteger), bindparam("balance_after_fen", type_=BigInteger),
           bindparam("month", type_=String),
           select(SETTLEMENTS.c.id).where(SETTLEMENTS.c.code == bindparam("code", type_=String)).scalar_subquery(),
           bindparam("at", type_=MOVEMENTS.c.at.type)))
_UPSERT_ACCOUNTS_PG = text(
    "INSERT INTO medical_personal_accounts AS a (person_id, balance_fen, opened_at, version) "
    "VALUES (CAST(:person_id AS INTEGER), CAST(:delta AS BIGINT), CAST(:opened_at AS TIMESTAMPTZ), 1) "
    "ON CONFLICT (person_id) DO UPDATE SET balance_fen = a.balance_fen + EXCLUDED.balance_fen, version = a.version + 1")
_UPSERT_USAGE_PG = text(
    "INSERT INTO medical_annual_usage AS u (person_id, year, deductible_used_fen, fund_used_fen) "
    "VALUES (CAST(:person_id AS INTEGER), CAST(:year AS INTEGER), CAST(:d_deductible AS BIGINT), CAST(:d_fund AS BIGINT)) "
    "ON CONFLICT (person_id, year) DO UPDATE SET deductible_used_fen = u.deductible_used_fen + EXCLUDED.deductible_used_fen, "
    "fund_used_fen = u.fund_used_fen + EXCLUDED.fund_used_fen")
_accounts_ins = sqlite_insert(ACCOUNTS).values(
    person_id=bindparam("person_id"), balance_fen=bindparam("delta"), opened_at=bindparam("opened_at"),
    version=literal_column("1"))
_UPSERT_ACCOUNTS = _accounts_ins.on_conflict_do_update(
    index_elements=["person_id"],
    set_={"balance_fen": ACCOUNTS.c.balance_fen + _accounts_ins.excluded.balance_fen,
          "version": ACCOUNTS.c.version + literal_column("1")})
_usage_ins = sqlite_insert(USAGE).values(
    person_id=bindparam("person_id"), year=bindparam("year"), deductible_used_fen=bindparam("d_deductible"),
    fund_used_fen=bindparam("d_fund"))
_UPSERT_USAGE = _usage_ins.on_conflict_do_update(
    index_elements=["person_id", "year"],
    set_={"deductible_used_fen": USAGE.c.deductible_used_fen + _usage_ins.excluded.deductible_used_fen,
          "fund_used_fen": USAGE.c.fund_used_fen + _usage_ins.excluded.fund_used_fen})


class AccountRow:
    """A personal account as a group-committed batch read it ahead (medical._prefetch): plain values in
    place of a PersonalAccount, which cost more to make than the batch's SQL. Only the book changes it
    (the book writes personal accounts), so nothing is lost by its not being in the session."""

    __slots__ = ("person_id", "balance_fen", "opened_at", "version")

    def __init__(self, person_id: int, balance_fen: int, opened_at: datetime, version: int):
        self.person_id, self.balance_fen, self.opened_at, self.version = person_id, balance_fen, opened_at, version


class UsageRow:
    """A year's usage as a batch read it ahead: plain values in place of an AnnualUsage (as AccountRow)."""

    __slots__ = ("person_id", "year", "deductible_used_fen", "fund_used_fen")

    def __init__(self, person_id: int, year: int, deductible_used_fen: int, fund_used_fen: int):
        self.person_id, self.year = person_id, year
        self.deductible_used_fen, self.fund_used_fen = deductible_used_fen, fund_used_fen


def _set(obj: object, name: str, value: Any, new: bool) -> None:
    """Change an attribute without the session seeing a change to flush (the book writes it)."""
    if new or isinstance(obj, AccountRow | UsageRow):
        setattr(obj, name, value)
    else:
        set_committed_value(obj, name, value)


class MedicalBook:
    def __init__(self, session: Session):
        self.session = session
        self._new_accounts: dict[int, PersonalAccount] = {}  # opened here: not in the session
        self._new_usage: dict[tuple[int, int], AnnualUsage] = {}
        self._accounts: dict[int, tuple[PersonalAccount, int]] = {}  # touched: (object, balance before)
        self._usage: dict[tuple[int, int], tuple[AnnualUsage, int, int]] = {}
        self._settlements: list[dict[str, Any]] = []
        self._movements: list[dict[str, Any]] = []
        self.quotes: set[str] = set()  # quote nonces settled here (not yet written)
        self.reversed: set[int] = set()  # settlements refunded here
        self.changes = 0  # how many things are recorded (a batch tells a clean refusal by it)

    # ------------------------------------------------------------ rows opened here

    def opened_account(self, person_id: int) -> PersonalAccount | None:
        return self._new_accounts.get(person_id)

    def opened_usage(self, person_id: int, year: int) -> AnnualUsage | None:
        return self._new_usage.get((person_id, year))

    def open_account(self, person_id: int, now: datetime) -> PersonalAccount:
        self.changes += 1
        account = PersonalAccount(person_id=person_id, balance_fen=0, opened_at=now, version=1)
        self._new_accounts[person_id] = account
        self._accounts[person_id] = (account, 0)
        return account

    def open_usage(self, person_id: int, year: int) -> AnnualUsage:
        self.changes += 1
        usage = AnnualUsage(person_id=person_id, year=year, deductible_used_fen=0, fund_used_fen=0)
        self._new_usage[(person_id, year)] = usage
        self._usage[(person_id, year)] = (usage, 0, 0)
        return usage

    # ------------------------------------------------------------ recording

    def move(self, account: PersonalAccount, kind: str, amount: int, *, at: datetime, month: str | None = None,
             settlement_code: str | None = None) -> None:
        """A movement of the personal account; refused (nothing recorded) if it would go below zero."""
        balance = account.balance_fen + amount
        if balance < 0:
            raise SscardError("insufficient_funds")
        self.changes += 1
        person_id = account.person_id
        if person_id not in self._accounts:
            self._accounts[person_id] = (account, account.balance_fen)
        _set(account, "balance_fen", balance, person_id in self._new_accounts)
        self._movements.append({"person_id": person_id, "kind": kind, "amount_fen": amount,
                                "balance_after_fen": balance, "month": month, "code": settlement_code, "at": at})

    def use(self, usage: AnnualUsage, deductible_used_fen: int, fund_used_fen: int) -> None:
        """Set a year's usage to these values (written as the change from what was read)."""
        key = (usage.person_id, usage.year)
        if key not in self._usage:
            self._usage[key] = (usage, usage.deductible_used_fen, usage.fund_used_fen)
        if (deductible_used_fen, fund_used_fen) == (usage.deductible_used_fen, usage.fund_used_fen):
            return
        self.changes += 1
        new = key in self._new_usage
        _set(usage, "deductible_used_fen", deductible_used_fen, new)
        _set(usage, "fund_used_fen", fund_used_fen, new)

    def quote_taken(self, nonce: str, settled: frozenset[str] | set[str]) -> bool:
        """Has this quote been settled in this transaction, or (`settled`: read ahead) before it?"""
        return nonce in self.quotes or nonce in settled

    def add_settlement(self, values: dict[str, Any], refusal: str, *, deferred: bool) -> None:
        """A settlement or refund row (the table's columns but its id). `deferred` (a group-committed
        batch, whose duplicates were refused before): written with the book. Else inserted now, in a
        savepoint: a duplicate quote (or refund) is refused with `refusal`."""
        if not deferred:
            try:
                with self.session.begin_nested():
                    self.session.execute(_INSERT_SETTLEMENTS, [values])
            except IntegrityError:
                raise SscardError(refusal) from None
        else:
            self.changes += 1
            self._settlements.append(values)
        if values["quote_nonce"]:
            self.quotes.add(values["quote_nonce"])
        if values["reverses_id"] is not None:
            self.reversed.add(values["reverses_id"])

    # ------------------------------------------------------------ writing

    @property
    def dirty(self) -> bool:
        return bool(self._settlements or self._movements or self._accounts or self._usage)

    def check_invariants(self) -> None:
        """Before anything is written (as the ledger's book does): no personal account below zero and
        each account's change equal to the sum of its movements; no year's usage below zero; every
        settlement's or refund's personal share is exactly its movement."""
        moved: dict[int, int] = {}
        by_code: dict[str, int] = {}
        for m in self._movements:
            moved[m["person_id"]] = moved.get(m["person_id"], 0) + m["amount_fen"]
            if m["code"] is not None:
                by_code[m["code"]] = by_code.get(m["code"], 0) + m["amount_fen"]
        for person_id, (account, before) in self._accounts.items():
            if account.balance_fen < 0:
                raise MedicalInvariantBroken(f"personal account {person_id} would be negative ({account.balance_fen})")
            if account.balance_fen - before != moved.get(person_id, 0):
                raise MedicalInvariantBroken(f"personal account {person_id} changed by {account.balance_fen - before} "
                                             f"but its movements add up to {moved.get(person_id, 0)}")
        if set(moved) - set(self._accounts):
            raise MedicalInvariantBroken(f"movements of accounts not held: {sorted(set(moved) - set(self._accounts))}")
        for (person_id, year), (usage, _d, _f) in self._usage.items():
            if usage.deductible_used_fen < 0 or usage.fund_used_fen < 0:
                raise MedicalInvariantBroken(f"usage of {person_id} in {year} would be negative")
        for row in self._settlements:
            if -row["personal_fen"] != by_code.get(row["code"], 0):
                raise MedicalInvariantBroken(f"settlement {row['code']}: personal share {row['personal_fen']} "
                                             f"but movements of {by_code.get(row['code'], 0)}")

    def flush(self) -> None:
        """Write what the book holds, one statement per table, then forget it."""
        if not self.dirty:
            return
        self.check_invariants()
        conn = self.session.connection()
        postgres = conn.dialect.name == "postgresql"
        execute_many(conn, _INSERT_SETTLEMENTS, self._settlements)
        execute_many(conn, _INSERT_MOVEMENTS_PG if postgres else _INSERT_MOVEMENTS, self._movements)
        execute_many(conn, _UPSERT_ACCOUNTS_PG if postgres else _UPSERT_ACCOUNTS, [
            {"person_id": person_id, "delta": account.balance_fen - before, "opened_at": account.opened_at}
            for person_id, (account, before) in sorted(self._accounts.items())
            if account.balance_fen != before or person_id in self._new_accounts])
        execute_many(conn, _UPSERT_USAGE_PG if postgres else _UPSERT_USAGE, [
            {"person_id": person_id, "year": year, "d_deductible": usage.deductible_used_fen - ded,
             "d_fund": usage.fund_used_fen - fund}
            for (person_id, year), (usage, ded, fund) in sorted(self._usage.items())
            if (usage.deductible_used_fen, usage.fund_used_fen) != (ded, fund) or (person_id, year) in self._new_usage])
        # what was written is now what the database holds: the book starts again from it (a row opened
        # here is read from the database from now on)
        self._new_accounts = {}
        self._new_usage = {}
        self._accounts = {}
        self._usage = {}
        self._settlements = []
        self._movements = []


@area_book
def _of(session: Session) -> MedicalBook | None:
    """For a group-committed batch: the session's book, if a request has made one."""
    book: MedicalBook | None = session.info.get(INFO_KEY)
    return book


book_of = per_transaction(INFO_KEY, MedicalBook, MedicalBook.flush)  # the session's medical book
