"""The book: what one database transaction has read and changed of the ledger, written once.

TigerBeetle applies a whole batch of transfers to accounts held in memory and writes the result in one
go; the book does the same inside our SQL transaction. `services.ledger` reads accounts and daily-limit
usage through it (each loaded once per transaction) and records new transfers and balance changes in
it; nothing reaches the database until the book is flushed, which happens:
- before the transaction commits (a `before_commit` session hook: no caller can forget it),
- before a ledger read that needs the table itself (history, pending lookups, the invariants check).

So a group commit of 8 payments writes one multi-row INSERT of transfers and one UPDATE per touched
account, instead of five statements per payment. The database's CHECK constraints (no overdraft, sums
not negative) and the unique transfer id still guard every flush.

`mark()` / `rollback(mark)` undo in memory what was recorded since the mark (linked transfers, a
refused request in a batch); a flush while a mark is open is refused, since it could not be undone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Date,
    Executable,
    Select,
    Table,
    bindparam,
    case,
    event,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, SessionTransaction

from ..core.errors import SscardError
from ..db import execute_many, fetch_all
from ..models.ledger import NO_EARLIER_DAY, LedgerAccount, LedgerTransfer, LimitUsage

ACCOUNTS = cast(Table, LedgerAccount.__table__)  # declared as a FromClause; a mapped class's table is a Table
TRANSFERS = cast(Table, LedgerTransfer.__table__)
USAGE = cast(Table, LimitUsage.__table__)
INFO_KEY = "sscard_book"
K = TypeVar("K")
V = TypeVar("V")


class LedgerInvariantBroken(AssertionError):
    """Money would be created, lost or overdrawn: a defect in the code that moved it."""


def chain_step(last: date | None, day: date) -> tuple[date, date, bool]:
    """One account's side of a new transfer dated `day`, the account's newest transfer day being `last`:
    the row's prev day (NO_EARLIER_DAY: none before), the account's newest day after it, and whether the
    row goes into an earlier month than one written before (the account is then read as out of order).
    The one rule of the chain, for the book and for the demo's bulk loads (ledger.BulkChain)."""
    if last is None:
        return NO_EARLIER_DAY, day, False
    return last, max(last, day), (day.year, day.month) < (last.year, last.month)


@dataclass(slots=True)
class Account:
    """An account as this transaction sees it (loaded values plus what the book has added). `last_day`:
    the day of its newest transfer, stored or recorded here (its last_transfer_day as the book will
    write it), which the next transfer records as its prev day; `out_of_order`: as stored."""

    id: int
    no_overdraft: bool
    closed: bool
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int
    last_day: date | None
    out_of_order: bool

    @classmethod
    def from_row(cls, account_id: int, row: Any) -> Account:  # a Row, or fetch_all's named tuple
        return cls(account_id, bool(row.no_overdraft), bool(row.closed), row.debits_posted, row.credits_posted,
                   row.debits_pending, row.credits_pending, row.last_transfer_day, bool(row.out_of_order))

    @property
    def available(self) -> int:
        return self.credits_posted - self.debits_posted - self.debits_pending

    def sums(self) -> tuple[int, int, int, int]:
        return self.debits_posted, self.credits_posted, self.debits_pending, self.credits_pending


_SELECT_ACCOUNTS = select(
    ACCOUNTS.c.id, ACCOUNTS.c.no_overdraft, ACCOUNTS.c.closed, ACCOUNTS.c.debits_posted, ACCOUNTS.c.credits_posted,
    ACCOUNTS.c.debits_pending, ACCOUNTS.c.credits_pending, ACCOUNTS.c.last_transfer_day, ACCOUNTS.c.out_of_order,
).where(ACCOUNTS.c.id.in_(bindparam("ids", expanding=True)))
_SELECT_USAGE = select(USAGE.c.ledger_account_id, USAGE.c.kind, USAGE.c.used_fen).where(
    USAGE.c.day == bindparam("day"), USAGE.c.ledger_account_id.in_(bindparam("ids", expanding=True)))
_SELECT_USAGE_KIND = select(USAGE.c.used_fen).where(
    USAGE.c.ledger_account_id == bindparam("id"), USAGE.c.day == bindparam("day"), USAGE.c.kind == bindparam("kind"))
_SELECT_TRANSFER_ID = select(TRANSFERS.c.id).where(TRANSFERS.c.transfer_id == bindparam("tid"))
_INSERT_TRANSFERS = insert(TRANSFERS).inline()  # no RETURNING: it may run in a pipeline
_DAY = bindparam("day", type_=Date())
_UPDATE_SUMS = (
    update(ACCOUNTS)
    .where(ACCOUNTS.c.id == bindparam("aid"))
    .values(
        debits_posted=ACCOUNTS.c.debits_posted + bindparam("ddp"),
        credits_posted=ACCOUNTS.c.credits_posted + bindparam("dcp"),
        debits_pending=ACCOUNTS.c.debits_pending + bindparam("ddpe"),
        credits_pending=ACCOUNTS.c.credits_pending + bindparam("dcpe"),
        last_transfer_day=case((or_(ACCOUNTS.c.last_transfer_day.is_(None), ACCOUNTS.c.last_transfer_day < _DAY),
                                _DAY), else_=ACCOUNTS.c.last_transfer_day),
    )
)
# PostgreSQL: every account's change in one statement (a VALUES list), not one UPDATE per account
_UPDATE_SUMS_PG = text(
    "UPDATE ledger_accounts AS a SET debits_posted = a.debits_posted + v.ddp, "
    "credits_posted = a.credits_posted + v.dcp, debits_pending = a.debits_pending + v.ddpe, "
    "credits_pending = a.credits_pending + v.dcpe, last_transfer_day = GREATEST(a.last_transfer_day, v.day) "
    "FROM (VALUES (CAST(:aid AS BIGINT), CAST(:ddp AS BIGINT), CAST(:dcp AS BIGINT), CAST(:ddpe AS BIGINT), "
    "CAST(:dcpe AS BIGINT), CAST(:day AS DATE))) AS v(aid, ddp, dcp, ddpe, dcpe, day) WHERE a.id = v.aid")
_CLOSE = update(ACCOUNTS).where(ACCOUNTS.c.id.in_(bindparam("ids", expanding=True))).values(closed=True)
_OUT_OF_ORDER = update(ACCOUNTS).where(ACCOUNTS.c.id.in_(bindparam("ids", expanding=True))).values(out_of_order=True)
_UPSERT_USAGE: dict[str, Executable] = {}


def _upsert_usage(dialect: str) -> Executable:
    if dialect not in _UPSERT_USAGE:
        ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(USAGE)
        _UPSERT_USAGE[dialect] = ins.on_conflict_do_update(
            index_elements=["ledger_account_id", "day", "kind"],
            set_={"used_fen": USAGE.c.used_fen + ins.excluded.used_fen})
    return _UPSERT_USAGE[dialect]


class Book:
    def __init__(self, session: Session):
        self.session = session
        self.accounts: dict[int, Account] = {}
        self._deltas: dict[int, list[int]] = {}  # id -> [debits_posted, credits_posted, pending d, pending c]
        self._closing: set[int] = set()
        self._usage: dict[tuple[int, date, str], int] = {}
        self._usage_loaded: set[tuple[int, date]] = set()  # (account, day): every kind loaded
        self._kinds_loaded: set[tuple[int, date, str]] = set()  # (account, day, kind): that kind loaded
        self._seeding: set[tuple[int, date]] = set()
        self._usage_delta: dict[tuple[int, date, str], int] = {}
        self._transfers: list[dict[str, Any]] = []
        self._new_ids: set[str] = set()
        self._out_of_order: set[int] = set()  # accounts to mark out of order (see _link)
        self.resolved: set[int] = set()  # ids of stored pending transfers resolved here, not yet flushed
        self._undo: list[tuple[Any, ...]] = []  # (what, ...): see rollback
        self._marks = 0
        self._mark_changes: list[int] = []
        self.changes = 0  # how many things are recorded (a batch tells a clean refusal by it)

    # ------------------------------------------------------------ reading

    def load(self, ids: Iterable[int]) -> None:
        """Load the accounts not yet held, in one query."""
        read = self.read_of(ids)
        if read is not None:
            self.take(fetch_all(self.session.connection(), *read))

    def read_of(self, ids: Iterable[int]) -> tuple[Any, dict[str, Any]] | None:
        """The query (statement, parameters) that `load` runs for these ids, to send with others
        (db.fetch_together); None when every one is held."""
        missing = [i for i in ids if i not in self.accounts]
        return (_SELECT_ACCOUNTS, {"ids": missing}) if missing else None

    def take(self, rows: Iterable[Any]) -> None:
        """The rows of `read_of`'s query: the accounts not held yet (a row another query seeded meanwhile
        is that query's)."""
        for r in rows:
            if r.id not in self.accounts:
                self.accounts[r.id] = Account.from_row(r.id, r)

    def seed(self, row: Any, day: date | None = None) -> None:  # a Row, or fetch_all's named tuple
        """Take an account (and, with `day`, one kind of its limit usage that day) from a row another
        query loaded together with other things: columns `ledger_id`, `no_overdraft`, `closed`, the four
        sums, and `usage_kind`, `usage_fen` (None when the account used no limit that day)."""
        if row.ledger_id is None:
            return
        if row.ledger_id not in self.accounts:
            self.accounts[row.ledger_id] = Account.from_row(row.ledger_id, row)
        if day is not None and (row.ledger_id, day) not in self._usage_loaded:
            if row.usage_kind is not None and (row.ledger_id, day, row.usage_kind) not in self._kinds_loaded:
                self._usage[(row.ledger_id, day, row.usage_kind)] = row.usage_fen
            self._seeding.add((row.ledger_id, day))

    def seeded(self) -> None:
        """Every usage row of the seeded accounts has been given: mark their days as loaded."""
        self._usage_loaded.update(self._seeding)
        self._seeding.clear()

    @staticmethod
    def seed_columns(ledger_id_column: ColumnElement[Any], day_param: ColumnElement[Any] | None,
                     ) -> tuple[list[ColumnElement[Any]], Callable[[Select[Any]], Select[Any]]]:
        """The columns and joins `seed` reads, to add to a query that has `ledger_id_column`; without
        `day_param` the accounts only (their usage is then read kind by kind, when asked)."""
        accounts: list[ColumnElement[Any]] = [
            ACCOUNTS.c.id.label("ledger_id"), ACCOUNTS.c.no_overdraft, ACCOUNTS.c.closed, ACCOUNTS.c.debits_posted,
            ACCOUNTS.c.credits_posted, ACCOUNTS.c.debits_pending, ACCOUNTS.c.credits_pending,
            ACCOUNTS.c.last_transfer_day, ACCOUNTS.c.out_of_order]
        if day_param is None:
            return accounts, lambda q: q.outerjoin(ACCOUNTS, ACCOUNTS.c.id == ledger_id_column)
        return (
            [*accounts, USAGE.c.kind.label("usage_kind"), USAGE.c.used_fen.label("usage_fen")],
            lambda q: q.outerjoin(ACCOUNTS, ACCOUNTS.c.id == ledger_id_column).outerjoin(
                USAGE, (USAGE.c.ledger_account_id == ledger_id_column) & (USAGE.c.day == day_param)),
        )

    def account(self, account_id: int) -> Account:
        found = self.accounts.get(account_id)
        if found is None:
            self.load([account_id])
            found = self.accounts.get(account_id)
            if found is None:
                raise SscardError("account_not_found")
        return found

    def load_usage(self, ids: Iterable[int], day: date) -> None:
        """Load the day's limit usage of these accounts (all kinds), in one query."""
        missing = [i for i in ids if (i, day) not in self._usage_loaded]
        if missing:
            for r in self.session.execute(_SELECT_USAGE, {"day": day, "ids": missing}):
                key = (r.ledger_account_id, day, r.kind)
                if key not in self._kinds_loaded:
                    self._usage[key] = self._usage.get(key, 0) + r.used_fen
            self._usage_loaded.update((i, day) for i in missing)

    def _load_kind(self, account_id: int, day: date, kind: str) -> None:
        """One kind of an account's usage that day, unless loaded: its one row, not the account's other
        kinds. On PostgreSQL a SERIALIZABLE transaction holding more than two tuple predicate locks on
        one heap page has them promoted to a lock on the whole page (max_pred_locks_per_page): reading an
        account's three kinds (purchases, transfers, withdrawals on one day) locked the page, and every
        transaction run on its own then conflicted with every other one's usage write."""
        key = (account_id, day, kind)
        if (account_id, day) in self._usage_loaded or key in self._kinds_loaded:
            return
        used = self.session.execute(_SELECT_USAGE_KIND, {"id": account_id, "day": day, "kind": kind}).scalar()
        if used is not None:
            self._usage[key] = self._usage.get(key, 0) + used
        self._kinds_loaded.add(key)

    def usage(self, account_id: int, day: date, kind: str) -> int:
        self._load_kind(account_id, day, kind)
        return self._usage.get((account_id, day, kind), 0)

    def transfer_exists(self, transfer_id: str) -> bool:
        return transfer_id in self._new_ids or (
            self.session.execute(_SELECT_TRANSFER_ID, {"tid": transfer_id}).first() is not None)

    # ------------------------------------------------------------ recording

    def add_transfer(self, row: dict[str, Any], sums: dict[int, tuple[int, int, int, int]]) -> None:
        """Record a new transfer row and what it adds to each account's four sums. The row is given, for
        each side, the day of that account's newest transfer before it (`debit_prev_day`,
        `credit_prev_day`: see `_link`)."""
        self.changes += 1
        logging = self._marks > 0
        if logging:
            self._undo.append(("row", row["transfer_id"]))
        self._link(row, logging)
        self._transfers.append(row)
        self._new_ids.add(row["transfer_id"])
        for account_id, (dp, cp, dpe, cpe) in sums.items():
            acc = self.account(account_id)
            delta = self._deltas.get(account_id)
            if logging:
                self._undo.append(("acc", acc, acc.sums(), account_id, None if delta is None else list(delta)))
            acc.debits_posted += dp
            acc.credits_posted += cp
            acc.debits_pending += dpe
            acc.credits_pending += cpe
            if delta is None:
                self._deltas[account_id] = [dp, cp, dpe, cpe]
            else:
                delta[0] += dp
                delta[1] += cp
                delta[2] += dpe
                delta[3] += cpe

    def _link(self, row: dict[str, Any], logging: bool) -> None:
        """The row's prev day for each side: the account's last_day (its newest transfer's day, as this
        transaction reads and writes it; NO_EARLIER_DAY: none), which then becomes the row's day. Exact
        under concurrency: the account was read in this transaction (SQLite: after BEGIN IMMEDIATE took the
        write lock; PostgreSQL: in the SERIALIZABLE snapshot) and the flush updates its row, so a concurrent
        transfer of the account that committed since makes this transaction fail and run again. A row dated
        in an earlier month than the account's last_day marks the account out of order (written at flush)."""
        for side in ("debit", "credit"):
            acc = self.account(row[f"{side}_account_id"])
            if logging:
                self._undo.append(("day", acc, acc.last_day, acc.id in self._out_of_order))
            row[f"{side}_prev_day"], acc.last_day, backwards = chain_step(acc.last_day, row["day"])
            if backwards and not acc.out_of_order:
                self._out_of_order.add(acc.id)

    def add_usage(self, account_id: int, day: date, kind: str, amount: int) -> None:
        self.changes += 1
        self._load_kind(account_id, day, kind)
        key = (account_id, day, kind)
        if self._marks:
            self._undo.append(("use", key, self._usage.get(key), self._usage_delta.get(key)))
        self._usage[key] = self._usage.get(key, 0) + amount
        self._usage_delta[key] = self._usage_delta.get(key, 0) + amount

    def resolve(self, pending_id: int) -> None:
        self.changes += 1
        if self._marks:
            self._undo.append(("res", pending_id))
        self.resolved.add(pending_id)

    def close(self, account_id: int) -> None:
        self.changes += 1
        acc = self.account(account_id)
        if self._marks:
            self._undo.append(("close", acc, acc.closed, account_id in self._closing))
        acc.closed = True
        self._closing.add(account_id)

    # ------------------------------------------------------------ undo

    def mark(self) -> int:
        self._marks += 1
        self._mark_changes.append(self.changes)
        return len(self._undo)

    def release(self, mark: int) -> None:
        """Keep what was recorded since the mark."""
        self._marks -= 1
        self._mark_changes.pop()
        if self._marks == 0:
            self._undo.clear()

    def rollback(self, mark: int) -> None:
        """Undo, newest first, what was recorded since the mark."""
        while len(self._undo) > mark:
            entry = self._undo.pop()
            what = entry[0]
            if what == "row":
                self._transfers.pop()
                self._new_ids.discard(entry[1])
            elif what == "acc":
                _, acc, sums, account_id, delta = entry
                acc.debits_posted, acc.credits_posted, acc.debits_pending, acc.credits_pending = sums
                if delta is None:
                    self._deltas.pop(account_id, None)
                else:
                    self._deltas[account_id] = delta
            elif what == "use":
                _, key, used, delta = entry
                self._set_or_drop(self._usage, key, used)
                self._set_or_drop(self._usage_delta, key, delta)
            elif what == "day":
                _, acc, last, was_out_of_order = entry
                acc.last_day = last
                if not was_out_of_order:
                    self._out_of_order.discard(acc.id)
            elif what == "res":
                self.resolved.discard(entry[1])
            elif what == "close":
                _, acc, closed, was_closing = entry
                acc.closed = closed
                if not was_closing:
                    self._closing.discard(acc.id)
        self.changes = self._mark_changes[-1]
        self.release(mark)

    @staticmethod
    def _set_or_drop(d: dict[K, V], key: K, value: V | None) -> None:
        if value is None:
            d.pop(key, None)
        else:
            d[key] = value

    # ------------------------------------------------------------ writing

    @property
    def dirty(self) -> bool:
        return bool(self._transfers or self._deltas or self._usage_delta or self._closing or self._out_of_order)

    def flush_unless_linked(self) -> None:
        """Write the book now if no linked section is open (inside one it waits for the commit)."""
        if not self._marks:
            self.flush()

    def check_invariants(self) -> None:
        """Before anything is written (Tiger Style: assert where money moves): what this transaction
        debits it credits, for posted and pending sums alike, and no account that may not overdraw is
        below zero. A breach is a bug, never a business refusal: the transaction (a whole group-commit
        batch) is rolled back, and the writer answers its requests one by one, so only the request that
        broke it fails."""
        totals = [0, 0, 0, 0]
        for delta in self._deltas.values():
            for i in range(4):
                totals[i] += delta[i]
        if totals[0] != totals[1] or totals[2] != totals[3]:
            raise LedgerInvariantBroken(f"debits and credits differ: posted {totals[0]} != {totals[1]} "
                                        f"or pending {totals[2]} != {totals[3]}")
        for account_id in self._deltas:
            acc = self.accounts[account_id]
            available = acc.credits_posted - acc.debits_posted - acc.debits_pending  # not via the property
            if acc.no_overdraft and available < 0:
                raise LedgerInvariantBroken(f"account {account_id} would be overdrawn ({available} fen)")
            if min(acc.sums()) < 0:
                raise LedgerInvariantBroken(f"account {account_id} has a negative sum {acc.sums()}")

    def flush(self) -> None:
        """Write what the book holds: one statement per table (executemany), then forget it."""
        if self._marks:
            raise RuntimeError("the ledger book cannot be flushed inside a linked section")
        if not self.dirty:
            return
        self.check_invariants()
        session = self.session
        session.flush()  # ORM changes first (a new ledger account the rows below refer to)
        conn = session.connection()
        execute_many(conn, _INSERT_TRANSFERS, self._transfers)
        # each account's sums and the day of its newest transfer (also for one whose sums did not change:
        # a hold and its void in the same book)
        newest: dict[int, date] = {}
        for row in self._transfers:
            for aid in (row["debit_account_id"], row["credit_account_id"]):
                if aid not in newest or newest[aid] < row["day"]:
                    newest[aid] = row["day"]
        zero = [0, 0, 0, 0]
        execute_many(conn, _UPDATE_SUMS_PG if conn.dialect.name == "postgresql" else _UPDATE_SUMS, [
            {"aid": aid, "ddp": d[0], "dcp": d[1], "ddpe": d[2], "dcpe": d[3], "day": newest.get(aid)}
            for aid in sorted(self._deltas.keys() | newest.keys()) for d in [self._deltas.get(aid, zero)]])
        execute_many(conn, _upsert_usage(conn.dialect.name),
                     [{"ledger_account_id": aid, "day": day, "kind": kind, "used_fen": amount}
                      for (aid, day, kind), amount in sorted(self._usage_delta.items()) if amount])
        if self._closing:
            session.execute(_CLOSE, {"ids": sorted(self._closing)})
        if self._out_of_order:  # (rare: see _link)
            session.execute(_OUT_OF_ORDER, {"ids": sorted(self._out_of_order)})
            for account_id in self._out_of_order:
                self.accounts[account_id].out_of_order = True
        self._transfers = []
        self._new_ids = set()
        self._deltas = {}
        self._usage_delta = {}
        self._closing = set()
        self._out_of_order = set()
        self.resolved = set()


T = TypeVar("T")


def per_transaction(key: str, make: Callable[[Session], T], write: Callable[[T], None]) -> Callable[[Session], T]:
    """A book of one kind (the ledger's here, the medical one in services.medical_book, the operation
    frame's audit and idempotency rows in services.operation): one per session transaction, kept in
    `session.info[key]` and made on first use; written by `write` when the transaction commits (not when
    a savepoint inside it is released: its rows belong to the whole transaction, not to whatever the
    savepoint guarded), so no caller can forget it; forgotten when the transaction ends,
    committed or rolled back (a retried transaction starts a new one). Returns the function that finds it."""

    def of(session: Session) -> T:
        book: T | None = session.info.get(key)
        if book is None:
            book = session.info[key] = make(session)
        return book

    @event.listens_for(Session, "before_commit")
    def _write_before_commit(session: Session) -> None:
        book = session.info.get(key)
        if book is not None and not session.in_nested_transaction():
            write(book)

    @event.listens_for(Session, "after_transaction_end")
    def _forget_after_transaction(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            session.info.pop(key, None)

    return of


book_of = per_transaction(INFO_KEY, Book, Book.flush_unless_linked)  # the session's ledger book


def flush(session: Session) -> None:
    """Write the session's book, if it has one (before reading ledger tables with SQL)."""
    book = session.info.get(INFO_KEY)
    if book is not None:
        book.flush()
