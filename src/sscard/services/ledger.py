"""The double-entry ledger (TigerBeetle's model, in SQL), callable inside any operation's transaction.

- Accounts: one per card's bank account (customer, never overdrawn), and named system accounts
  (outlet cash drawers, ATMs, merchant settlement, each bank's clearing, agency fee income, pension
  payer): `system_account(session, "agency_fee_income")` gets or creates one.
- `transfer(op, debit_id, credit_id, amount_fen, code)` moves money in the caller's transaction;
  `pending=True` only holds it until `post_pending`, `void_pending` or expiry (`expire_due`, driven by
  the injected clock). `linked(op, [...])` applies several transfers all or nothing.
- Transfers are never updated or deleted (database triggers refuse it); a correction is a new transfer.
- Reads and writes go through the transaction's book (services/book): each account is read once per
  transaction, and the transfers and balance changes are written together before commit.
- `check_invariants(session)` recomputes every account from its transfers: sums match, all balances
  add up to zero, no customer account is negative.

Amounts are integer fen. Refusals are SscardError codes (insufficient_funds, account_closed,
limit_exceeded, transfer_exists, pending_*); nothing is written before a refusal is decided.
"""

from __future__ import annotations

import re
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Executable,
    Row,
    Table,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from ..core.clock import as_utc, shanghai_day
from ..core.errors import SscardError, register_messages
from ..core.money import require_fen
from ..db import session_rows
from ..models.foundation import BankAccount
from ..models.ledger import NO_EARLIER_DAY, LedgerAccount, LedgerTransfer, LimitUsage
from .book import Account, book_of, chain_step, flush

if TYPE_CHECKING:
    from typing import TypeAlias

    from .operation import Op

    AnyRow: TypeAlias = Row[*tuple[Any, ...]]  # a row of whatever columns its select named

register_messages({
    "same_account": (422, "转出与转入账户不能相同", "The debit and credit accounts must differ"),
})

ACCOUNTS = cast(Table, LedgerAccount.__table__)  # declared as a FromClause; a mapped class's table is a Table
TRANSFERS = cast(Table, LedgerTransfer.__table__)
USAGE = cast(Table, LimitUsage.__table__)

SYSTEM_KINDS = {"cash_drawer", "atm", "merchant", "clearing", "fee_income", "pension_payer", "system"}
DEFAULT_PENDING_TIMEOUT = timedelta(days=7)

# name -> id of system accounts known to exist (committed), per engine
_known: weakref.WeakKeyDictionary[Engine, dict[str, int]] = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------- accounts


def _insert_ignore(session: Session, table: Table, values: dict[str, Any], keys: list[str]) -> None:
    stmt: Executable
    if session.get_bind().dialect.name == "postgresql":
        stmt = pg_insert(table).values(**values).on_conflict_do_nothing(index_elements=keys)
    else:
        stmt = sqlite_insert(table).values(**values).on_conflict_do_nothing(index_elements=keys)
    session.execute(stmt)


def _kind_of(name: str) -> str:
    prefix = name.split(":", 1)[0]
    return {
        "cash": "cash_drawer",
        "atm": "atm",
        "merchant": "merchant",
        "clearing": "clearing",
        "agency_fee_income": "fee_income",
        "pension_payer": "pension_payer",
    }.get(prefix, "system")


def system_account(session_or_op: Session | Op, name: str, *, kind: str | None = None, bank_id: int | None = None,
                   now: datetime | None = None) -> int:
    """The id of a named system account, created on first use (no overdraft guard: its balance may be
    negative, e.g. a cash drawer holding cash). Names: cash:<outlet>, atm:<terminal>, merchant:<terminal>,
    clearing:<bank code>, agency_fee_income, pension_payer.

    Pass an Op (its clock gives the creation time) or a Session plus `now`."""
    if isinstance(session_or_op, Session):
        session = session_or_op
    else:
        session, now = session_or_op.session, now or session_or_op.now
    engine = session.get_bind().engine
    cache = _known.setdefault(engine, {})
    if name in cache:
        return cache[name]
    created_here = session.info.setdefault("sscard_new_system_accounts", set())
    found: int | None = session.scalar(select(ACCOUNTS.c.id).where(ACCOUNTS.c.name == name))
    if found is not None:
        if name not in created_here:  # made by a committed transaction, not by this one (which may roll back)
            cache[name] = found
        return found
    kind = kind or _kind_of(name)
    if kind not in SYSTEM_KINDS:
        raise ValueError(f"not a system account kind: {kind}")
    _insert_ignore(session, ACCOUNTS, dict(
        kind=kind, name=name, bank_id=bank_id, no_overdraft=False, closed=False, debits_posted=0,
        credits_posted=0, debits_pending=0, credits_pending=0, created_at=now or _now_of(session),
    ), ["name"])
    created_here.add(name)
    made: int | None = session.scalar(select(ACCOUNTS.c.id).where(ACCOUNTS.c.name == name))
    assert made is not None  # just inserted, or there already (the insert did nothing on a conflict)
    return made


def known_system_account(session: Session | Engine, name: str) -> int | None:
    """The id of a system account already known to exist (no query), or None; `session` may be the
    engine itself (before a transaction begins)."""
    engine = session if isinstance(session, Engine) else session.get_bind().engine
    return _known.get(engine, {}).get(name)


def _now_of(session: Session) -> datetime:
    now: datetime | None = session.info.get("sscard_now")
    if now is None:
        raise ValueError("system_account: pass an Op, or now= (the injected clock's time)")
    return now


def customer_account(session: Session, account: BankAccount, now: datetime) -> int:
    """The ledger account behind a card's bank account, created on first need (activation, first credit)."""
    if account.ledger_account_id is not None:
        return account.ledger_account_id
    result = session.execute(insert(ACCOUNTS).values(
        kind="customer", name=None, bank_id=account.bank_id, bank_account_id=account.id, no_overdraft=True,
        closed=False, debits_posted=0, credits_posted=0, debits_pending=0, credits_pending=0, created_at=now,
    ).returning(ACCOUNTS.c.id))
    ledger_id: int = result.scalar_one()
    account.ledger_account_id = ledger_id
    return ledger_id


@dataclass(frozen=True)
class Balance:
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int

    @property
    def posted(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """What may still be debited: posted balance less holds."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    def as_dict(self) -> dict[str, int]:
        return {"balance_fen": self.posted, "available_fen": self.available, "held_fen": self.debits_pending,
                "incoming_pending_fen": self.credits_pending}


def balance(session: Session, account_id: int | None) -> Balance:
    if account_id is None:
        return Balance(0, 0, 0, 0)
    return Balance(*book_of(session).account(account_id).sums())


def close_account(session: Session, account_id: int) -> None:
    b = balance(session, account_id)
    if b.posted != 0 or b.debits_pending or b.credits_pending:
        raise SscardError("illegal_transition", state="balance", event="close")
    book_of(session).close(account_id)


def row_id(session: Session, transfer_id: str, day: date) -> int:
    """The stored row id of a transfer made in this transaction (the book is written first). Its `day`
    names the one month partition to read: by id alone every month's would be probed."""
    flush(session)
    rid: int = session.execute(select(TRANSFERS.c.id).where(TRANSFERS.c.transfer_id == transfer_id,
                                                            TRANSFERS.c.day == day)).scalar_one()
    return rid


# ---------------------------------------------------------------- transfers


def _now(op: Op) -> datetime:
    return op.now


def usage(session: Session, account_id: int, day: date, kind: str) -> int:
    return book_of(session).usage(account_id, day, kind)


def _balance_dict(acc: Account) -> dict[str, int]:
    return Balance(*acc.sums()).as_dict()


TRANSFER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A transfer id a client chooses (a POS's own payment or hold id): one path segment of the URL that captures or
voids it. Session 26: a hold authorized as `a/b`, `..` or `a%2Fb` was taken and could never be captured or
voided (every route to it answered 404), so the cardholder's money stayed held until it expired (up to 30
days)."""


def transfer(
    op: Op,
    debit_account_id: int,
    credit_account_id: int,
    amount_fen: int,
    code: str,
    *,
    transfer_id: str | None = None,
    ref: str = "",
    pending: bool = False,
    timeout: timedelta | None = None,
    limit: tuple[str, int] | None = None,
    chain: str = "",
) -> dict[str, Any]:
    """Move `amount_fen` from the debit account to the credit account in op's transaction.

    `pending`: hold it (debits_pending/credits_pending) until posted, voided or expired at
    now + timeout. `limit=(kind, per_day_fen)`: the debit account's use of that daily limit (Shanghai
    day) may not go over. Refusals (nothing recorded): account_not_found, account_closed,
    insufficient_funds, limit_exceeded, transfer_exists, same_account, invalid_amount.

    The answer carries `balances`: {account id: balance dict} of both accounts after the transfer."""
    if transfer_id is not None and not TRANSFER_ID.fullmatch(transfer_id):
        raise SscardError("invalid_transfer_id")
    book = book_of(op.session)
    amount = require_fen(amount_fen)
    if debit_account_id == credit_account_id:
        raise SscardError("same_account")
    now = _now(op)
    day = shanghai_day(now)
    book.load((debit_account_id, credit_account_id))
    debit, credit = book.account(debit_account_id), book.account(credit_account_id)
    if debit.closed or credit.closed:
        raise SscardError("account_closed")
    if debit.no_overdraft and debit.available < amount:
        if not (debit.debits_pending and expire_due(op, account_id=debit_account_id)):
            raise SscardError("insufficient_funds")
        if debit.available < amount:
            raise SscardError("insufficient_funds")
    if limit is not None:
        kind, per_day = limit
        if book.usage(debit_account_id, day, kind) + amount > per_day:
            raise SscardError("limit_exceeded", limit=_limit_text(kind, per_day))
    if transfer_id is not None:
        if book.transfer_exists(transfer_id):
            raise SscardError("transfer_exists")
    else:
        transfer_id = uuid.uuid4().hex
    timeout_at = now + (timeout or DEFAULT_PENDING_TIMEOUT) if pending else None
    kind_ = "pending" if pending else "posted"
    posted, held = (0, amount) if pending else (amount, 0)
    book.add_transfer(dict(
        transfer_id=transfer_id, kind=kind_, debit_account_id=debit_account_id,
        credit_account_id=credit_account_id, amount=amount, pending_id=None, timeout_at=timeout_at, code=code,
        ref=ref[:64], chain=chain, limit_kind=limit[0] if limit else None, day=day, created_at=now,
    ), {debit_account_id: (posted, 0, held, 0), credit_account_id: (0, posted, 0, held)})
    if limit is not None:
        book.add_usage(debit_account_id, day, limit[0], amount)
    return {"transfer_id": transfer_id, "kind": kind_, "amount_fen": amount, "code": code,
            "timeout_at": timeout_at, "at": now, "debit_account_id": debit_account_id,
            "credit_account_id": credit_account_id, "balances": {debit_account_id: _balance_dict(debit),
                                                                 credit_account_id: _balance_dict(credit)}}


def _limit_text(kind: str, per_day: int) -> tuple[str, str]:
    from ..core.money import format_yuan

    zh = {"atm_withdrawal": "ATM每日取款", "transfer": "每日转账", "payment": "每日消费"}.get(kind, kind)
    en = {"atm_withdrawal": "ATM withdrawals per day", "transfer": "transfers per day",
          "payment": "payments per day"}.get(kind, kind)
    return (f"{zh}{format_yuan(per_day)}元", f"{en}: {format_yuan(per_day)} yuan")


@dataclass(frozen=True)
class Spec:
    """One transfer of a linked chain."""

    debit_account_id: int
    credit_account_id: int
    amount_fen: int
    code: str
    ref: str = ""
    limit: tuple[str, int] | None = None
    transfer_id: str | None = None


def linked(op: Op, specs: list[Spec], *, chain: str | None = None) -> list[dict[str, Any]]:
    """Apply transfers in order, all or nothing (one refusal undoes, in the book, the ones before it)."""
    chain = chain or uuid.uuid4().hex
    out: list[dict[str, Any]] = []
    book = book_of(op.session)
    mark = book.mark()
    try:
        for spec in specs:
            out.append(transfer(op, spec.debit_account_id, spec.credit_account_id, spec.amount_fen, spec.code,
                                ref=spec.ref, limit=spec.limit, chain=chain, transfer_id=spec.transfer_id))
    except BaseException:
        book.rollback(mark)
        raise
    book.release(mark)
    return out


# ---------------------------------------------------------------- pending transfers


def _pending_row(session: Session, transfer_id: str) -> AnyRow:
    flush(session)
    row = session.execute(select(TRANSFERS).where(TRANSFERS.c.transfer_id == transfer_id)).one_or_none()
    if row is None or row.kind != "pending":
        raise SscardError("pending_not_found")
    return row


def pending_transfer(session: Session, transfer_id: str) -> tuple[AnyRow, AnyRow | None]:
    """The pending transfer and how it was resolved (None while it still holds)."""
    row = _pending_row(session, transfer_id)
    resolution = session.execute(select(TRANSFERS).where(TRANSFERS.c.pending_id == row.id)).one_or_none()
    return row, resolution


def _resolve(op: Op, pending: AnyRow, kind: str, amount: int) -> dict[str, Any]:
    """Record the one resolution of a pending transfer: post (amount <= held), void or expire."""
    book = book_of(op.session)
    now = _now(op)
    transfer_id = uuid.uuid4().hex
    posted = amount if kind == "post" else 0
    held = pending.amount
    book.add_transfer(dict(
        transfer_id=transfer_id, kind=kind, debit_account_id=pending.debit_account_id,
        credit_account_id=pending.credit_account_id, amount=amount if kind == "post" else held,
        pending_id=pending.id, timeout_at=None, code=pending.code, ref=pending.ref, chain=pending.chain,
        limit_kind=None, day=shanghai_day(now), created_at=now,
    ), {pending.debit_account_id: (posted, 0, -held, 0), pending.credit_account_id: (0, posted, 0, -held)})
    book.resolve(pending.id)
    released = held - posted
    if pending.limit_kind and released:
        book.add_usage(pending.debit_account_id, pending.day, pending.limit_kind, -released)
    return {"transfer_id": transfer_id, "kind": kind, "pending_transfer_id": pending.transfer_id,
            "amount_fen": posted if kind == "post" else held, "at": now}


def _unresolved(session: Session, pending_id: int) -> bool:
    if pending_id in book_of(session).resolved:
        return False
    return session.scalar(select(TRANSFERS.c.id).where(TRANSFERS.c.pending_id == pending_id)) is None


def post_pending(op: Op, transfer_id: str, amount_fen: int | None = None, *, debit_account_id: int | None = None,
                 credit_account_id: int | None = None,
                 debit_allowed: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Post (capture) a pending transfer, wholly or for less. After its timeout it expires instead and the
    answer is pending_expired (the expiry is committed). Account ids, if given, must match. `debit_allowed`,
    called with the debited account's id once the hold is known to be this caller's and still open, raises
    when that account may not be debited now (the money leaves it only here: a lost or frozen card's hold
    is not posted, RULES §3)."""
    pending = _pending_row(op.session, transfer_id)
    _check_parties(pending, debit_account_id, credit_account_id)
    if not _unresolved(op.session, pending.id):
        raise SscardError("pending_already_resolved")
    amount = pending.amount if amount_fen is None else require_fen(amount_fen)
    if amount > pending.amount:
        raise SscardError("invalid_amount")
    if pending.timeout_at is not None and _now(op) >= pending.timeout_at:
        _resolve(op, pending, "expire", pending.amount)
        raise SscardError("pending_expired", commit=True)
    if debit_allowed is not None:
        debit_allowed(pending.debit_account_id)
    return _resolve(op, pending, "post", amount)


def void_pending(op: Op, transfer_id: str, *, debit_account_id: int | None = None,
                 credit_account_id: int | None = None) -> dict[str, Any]:
    pending = _pending_row(op.session, transfer_id)
    _check_parties(pending, debit_account_id, credit_account_id)
    if not _unresolved(op.session, pending.id):
        raise SscardError("pending_already_resolved")
    if pending.timeout_at is not None and _now(op) >= pending.timeout_at:
        _resolve(op, pending, "expire", pending.amount)
        raise SscardError("pending_expired", commit=True)
    return _resolve(op, pending, "void", pending.amount)


def _check_parties(pending: AnyRow, debit_account_id: int | None, credit_account_id: int | None) -> None:
    if (debit_account_id is not None and pending.debit_account_id != debit_account_id) or (
        credit_account_id is not None and pending.credit_account_id != credit_account_id
    ):
        raise SscardError("pending_not_found")


def _open_pending(session: Session, *conditions: ColumnElement[bool]) -> list[AnyRow]:
    """Stored pending transfers with no resolution, stored or in the book. Inside a linked section the
    book cannot be written first, so holds made in the same transaction are not seen there (they were
    made now and are not due)."""
    book = book_of(session)
    book.flush_unless_linked()
    resolution = aliased(LedgerTransfer)
    rows = session.execute(
        select(TRANSFERS)
        .outerjoin(resolution, resolution.pending_id == TRANSFERS.c.id)
        .where(TRANSFERS.c.kind == "pending", resolution.id.is_(None), *conditions)
        .order_by(TRANSFERS.c.id)
    ).all()
    return [r for r in rows if r.id not in book.resolved]


def expire_due(op: Op, *, account_id: int | None = None, limit: int = 1000) -> int:
    """Expire pending transfers whose timeout has passed (all, or those debiting one account)."""
    conditions = [TRANSFERS.c.timeout_at <= _now(op)]
    if account_id is not None:
        conditions.append(TRANSFERS.c.debit_account_id == account_id)
    rows = _open_pending(op.session, *conditions)[:limit]
    for row in rows:
        _resolve(op, row, "expire", row.amount)
    return len(rows)


def void_all_pending(op: Op, account_id: int) -> int:
    """Resolve every hold on an account (before moving its whole balance or closing it)."""
    n = expire_due(op, account_id=account_id)
    for column in (TRANSFERS.c.debit_account_id, TRANSFERS.c.credit_account_id):
        for row in _open_pending(op.session, column == account_id):
            _resolve(op, row, "void", row.amount)
            n += 1
    return n


# ---------------------------------------------------------------- history and invariants


_UNREAD: Any = object()  # history(): the caller has not read the account's last_transfer_day


def history(session: Session, account_id: int, *, limit: int = 20, before_id: int | None = None,
            today: date | None = None, opened: datetime | None = None, newest: date | None = _UNREAD,
            out_of_order: bool = False) -> list[AnyRow]:
    """Transfers touching the account, newest first, paged by id (`before_id` = the last id seen).

    With `today` (the Shanghai day now), the transfers are looked for month by month, newest first, until
    `limit` are found (`history_by_months`): each query names its month, so PostgreSQL reads only that
    month's partition of ledger_transfers instead of probing every month since the account was opened.
    `opened`, `newest`, `out_of_order`: the ledger account's created_at, last_transfer_day and
    out_of_order, when the caller has read them in this transaction after its last ledger write."""
    book = book_of(session)
    changed = book.changes
    flush(session)
    if today is None:
        q = select(TRANSFERS).where((TRANSFERS.c.debit_account_id == account_id)
                                    | (TRANSFERS.c.credit_account_id == account_id))
        if before_id is not None:
            q = q.where(TRANSFERS.c.id < before_id)
        return list(session.execute(q.order_by(TRANSFERS.c.id.desc()).limit(limit)).all())
    if newest is _UNREAD or opened is None or changed:  # (what the caller read may predate this book's writes)
        found = session.execute(select(ACCOUNTS.c.created_at, ACCOUNTS.c.last_transfer_day, ACCOUNTS.c.out_of_order)
                                .where(ACCOUNTS.c.id == account_id)).first()
        if found is None:
            return []
        opened, newest, out_of_order = found
    assert opened is not None  # (read above when not given)
    return history_by_months(session_rows(session), account_id, limit=limit, before_id=before_id,
                             opened=opened, newest=newest, out_of_order=bool(out_of_order))


def history_by_months(rows: Callable[[Any, dict[str, Any]], list[Any]], account_id: int, *, limit: int,
                      before_id: int | None, opened: datetime, newest: date | None,
                      out_of_order: bool) -> list[AnyRow]:
    """`history` by months, newest first, of an account whose ledger row (`opened`: created_at, `newest`:
    last_transfer_day, `out_of_order`) was read in this transaction after its last ledger write; `rows`:
    the transaction's fetch_all (a declared read's `op.rows`).

    The month of the account's newest transfer, up to its day (none: no transfers, no query); then, while
    fewer than `limit` are found, the month of the oldest found transfer's prev day for this account (its
    debit_prev_day when the account is its debit side, else its credit_prev_day: the day of the account's
    transfer written before it), one month, one partition, per query, back to the month the account was
    opened: an account that moved in three months of the last three years costs three one-partition
    queries, not one over the thirty-six months. Where that month is the one just before the last read (an
    account that moves every month), the step reads a span of months ending there, doubling up to
    MAX_SPAN while no month is skipped: forty busy months in seven queries, not forty. Each month read is read whole (below `before_id`), so the
    oldest row found is the oldest of the month, and the transfer before it is in an earlier month: its
    prev day names the nearest earlier month that holds any of the account's transfers.

    The same answer as one query over all months, because an account's transfers are written in the order
    of their days (dated by the clock when written; two transfers of one account are serialized, each
    updating its sums): a later month holds only larger ids of the account, so months newest first and ids
    newest first within each are ids newest first (`tests/ledger/test_transfer_chain.py`, test_history.py;
    `sscard account check` verifies every prev day and the order). Where that cannot be followed, the rest is read as before
    migration 0018 (`_by_months_as_before`'s queries): the rest of the months in one query when the oldest
    found transfer's prev day is unknown (written before 0018: NULL); the two months before and then the
    rest when `before_id` leaves nothing in the newest month (no transfer found, so no prev day to follow:
    the month of `before_id` itself is not known without probing every partition for it, so the first
    page found is where the walk starts); and everything as before for an account marked `out_of_order`
    (a backfill wrote older months after newer ones: there the prev days do not lead month by month)."""
    if newest is None:
        return []
    if out_of_order:
        return _by_months_as_before(rows, account_id, limit=limit, before_id=before_id, opened=opened,
                                    newest=newest)
    below = before_id if before_id is not None else _NO_ID_ABOVE
    top = newest.replace(day=1)
    first = shanghai_day(as_utc(opened)).replace(day=1)
    found: list[AnyRow] = rows(_HISTORY_MONTH, {"aid": account_id, "below": below, "lower": top,
                                                "upper": newest + timedelta(days=1), "n": limit})
    lower = top  # every month from here up is read
    blind = 0  # queries that found nothing to follow (before_id above them): as before 0018
    span = 1  # months the next step reads: doubled while the account moved in every month (up to MAX_SPAN)
    while len(found) < limit and lower > first:
        if found:
            oldest = found[-1]
            prev = oldest.debit_prev_day if oldest.debit_account_id == account_id else oldest.credit_prev_day
            if prev == NO_EARLIER_DAY:
                break  # the account's first transfer
            month = None if prev is None else prev.replace(day=1)
            if month is None or month >= lower:  # unknown (before 0018), or not earlier: the rest in one query
                found += rows(_HISTORY_MONTHS, {"aid": account_id, "below": below, "lower": first, "upper": lower,
                                                "n": limit - len(found)})
                break
            if month < first:
                break  # (none before the account was opened, as before)
            # the month just before the last one read (no gap): an account that moves every month is read
            # a span of months at a time, doubling, so that a page of 50 over 40 busy months takes 7 queries,
            # not 40; each is read whole, so its oldest row's prev day again names an earlier month
            span = min(span * 2, MAX_SPAN) if month == _months_before(lower, 1) else 1
            start = max(first, _months_before(month, span - 1))
            found += rows(_HISTORY_MONTH if span == 1 else _HISTORY_MONTHS,
                          {"aid": account_id, "below": below, "lower": start, "upper": prev + timedelta(days=1),
                           "n": limit - len(found)})
            lower = start
        else:
            bound = max(first, _months_before(lower, 2)) if blind == 0 else first
            found += rows(_HISTORY_MONTHS, {"aid": account_id, "below": below, "lower": bound, "upper": lower,
                                            "n": limit - len(found)})
            lower = bound
            blind += 1
    return found


def _by_months_as_before(rows: Callable[[Any, dict[str, Any]], list[Any]], account_id: int, *, limit: int,
                         before_id: int | None, opened: datetime, newest: date) -> list[AnyRow]:
    """The month of the newest transfer up to its day, then the two months before, then the rest back to
    the month the account was opened, until `limit` are found: the history of an account marked out of
    order, read as before migration 0018 (its answer unchanged)."""
    below = before_id if before_id is not None else _NO_ID_ABOVE
    top = newest.replace(day=1)
    found: list[AnyRow] = rows(_HISTORY_MONTH, {"aid": account_id, "below": below, "lower": top,
                                                "upper": newest + timedelta(days=1), "n": limit})
    first = shanghai_day(as_utc(opened)).replace(day=1)
    upper = top
    for lower in (max(first, _months_before(top, 2)), first):  # the two months before, then the rest
        if len(found) >= limit or upper <= first:
            break
        found += rows(_HISTORY_MONTHS, {"aid": account_id, "below": below, "lower": lower,
                                        "upper": upper, "n": limit - len(found)})
        upper = lower
    return found


_NO_ID_ABOVE = 2**63 - 1  # history(): no before_id given (every id is below it)
MAX_SPAN = 12  # history_by_months: the most months one step of the walk reads (planning grows with them)


def _history_statement(span: str) -> Any:
    """A page of an account's transfers of the days [lower, upper), newest first: built once, run through
    `fetch_all` (a statement built per call cost more than running it). Both bounds name days, so
    PostgreSQL reads only those months' partitions.

    Two of them, the same but for a comment naming the span (`_HISTORY_MONTH` for days of one month,
    `_HISTORY_MONTHS` for several), so that PostgreSQL keeps a plan cache for each: psycopg prepares a
    statement on its fifth run on a connection, and PostgreSQL then plans it once for any parameters (a
    generic plan: every partition, locked at each run and pruned only then) when its custom plans cost more
    on average. A query over many months costs that much to plan; sharing one statement, a few of them
    made the one-month queries run the generic plan too (measured: 3 ms of server CPU per statement's
    history instead of 0.4)."""
    t = TRANSFERS.c
    return (select(TRANSFERS).prefix_with(f"/* {span} */")
            .where((t.debit_account_id == bindparam("aid")) | (t.credit_account_id == bindparam("aid")),
                   t.id < bindparam("below"), t.day >= bindparam("lower"), t.day < bindparam("upper"))
            .order_by(t.id.desc()).limit(bindparam("n")))


_HISTORY_MONTH = _history_statement("one month")
_HISTORY_MONTHS = _history_statement("months")


class BulkChain:
    """The prev days of transfers written in bulk around the book (the demo's COPY loads), given as the
    rows are made, in the order they are inserted (their ids grow in that order): what the book gives
    each row (`Book._link`). The transfers are immutable (a trigger refuses UPDATE), so the days go in
    with the rows rather than after them. `mark_out_of_order` then marks the accounts whose new transfers
    went into an earlier month than one written before (a backfill of past months), so their statements
    read by months as before. The loader holds the whole transaction: nothing else writes meanwhile."""

    def __init__(self, conn: Connection) -> None:
        # every account that has transfers, with its newest day: one query (a million rows at a million people)
        self.last: dict[int, date] = {r.id: r.last_transfer_day for r in conn.execute(
            select(ACCOUNTS.c.id, ACCOUNTS.c.last_transfer_day).where(ACCOUNTS.c.last_transfer_day.is_not(None)))}
        self.out_of_order: set[int] = set()

    def link(self, row: dict[str, Any]) -> dict[str, Any]:
        """Give the row its debit_prev_day and credit_prev_day (and take its day as each side's newest)."""
        for side in ("debit", "credit"):
            account = row[f"{side}_account_id"]
            row[f"{side}_prev_day"], self.last[account], backwards = chain_step(self.last.get(account), row["day"])
            if backwards:
                self.out_of_order.add(account)
        return row

    def mark_out_of_order(self, conn: Connection, chunk: int = 500) -> int:
        """Mark the accounts `link` saw written out of month order; how many."""
        ids = sorted(self.out_of_order)
        for start in range(0, len(ids), chunk):
            conn.execute(update(ACCOUNTS).where(ACCOUNTS.c.id.in_(ids[start:start + chunk])).values(out_of_order=True))
        return len(ids)


def refresh_last_transfer_days(conn: Connection) -> None:
    """Set every account's last_transfer_day from its transfers: for the demo's bulk loads, which COPY
    transfers around the book (the book keeps the day as it writes)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(
            "UPDATE ledger_accounts AS a SET last_transfer_day = n.day FROM ("
            "SELECT account, max(day) AS day FROM (SELECT debit_account_id AS account, day FROM ledger_transfers"
            " UNION ALL SELECT credit_account_id, day FROM ledger_transfers) AS m GROUP BY account) AS n"
            " WHERE a.id = n.account AND a.last_transfer_day IS DISTINCT FROM n.day"))
        return
    newest = select(func.max(TRANSFERS.c.day)).where(
        (TRANSFERS.c.debit_account_id == ACCOUNTS.c.id) | (TRANSFERS.c.credit_account_id == ACCOUNTS.c.id))
    conn.execute(update(ACCOUNTS).values(last_transfer_day=newest.scalar_subquery()))


def _months_before(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 - n
    return date(index // 12, index % 12 + 1, 1)


def account_names(session: Session, ids: set[int]) -> dict[int, tuple[str, str, int | None]]:
    """id -> (kind, name, bank_account_id)."""
    if not ids:
        return {}
    rows = session.execute(select(ACCOUNTS.c.id, ACCOUNTS.c.kind, ACCOUNTS.c.name, ACCOUNTS.c.bank_account_id)
                           .where(ACCOUNTS.c.id.in_(ids))).all()
    return {r.id: (r.kind, r.name or "", r.bank_account_id) for r in rows}


def check_invariants(session: Session) -> dict[str, Any]:
    """Recompute every account from the transfers and compare; report totals and every problem found.

    Besides the sums: each account's last_transfer_day is its newest transfer's day; each transfer's prev
    day of each side is the newest day among that account's transfers written before it (NO_EARLIER_DAY
    when none; NULL only before the account's first transfer that has one: written before migration
    0018); and an account one of whose transfers is dated in an earlier month than one written before it
    is marked out_of_order (what `history_by_months` relies on to follow the prev days); and no closed bank
    account holds money (posted or held: a close pays the balance out, a replacement's activation moves it)."""
    flush(session)
    problems: list[str] = []
    sums: dict[int, list[int]] = {}

    def add(account_id: int, idx: int, amount: int) -> None:
        sums.setdefault(account_id, [0, 0, 0, 0])[idx] += amount

    by_id: dict[int, AnyRow] = {}
    newest: dict[int, date] = {}  # as the transfers are read in id order: the newest day so far
    chained: set[int] = set()  # accounts with a transfer that has a prev day
    unordered: set[int] = set()
    for t in session.execute(select(TRANSFERS.c.id, TRANSFERS.c.kind, TRANSFERS.c.debit_account_id,
                                    TRANSFERS.c.credit_account_id, TRANSFERS.c.amount, TRANSFERS.c.pending_id,
                                    TRANSFERS.c.day, TRANSFERS.c.debit_prev_day, TRANSFERS.c.credit_prev_day)
                             .order_by(TRANSFERS.c.id)):
        by_id[t.id] = t
        for name, side, prev in (("debit", t.debit_account_id, t.debit_prev_day),
                                 ("credit", t.credit_account_id, t.credit_prev_day)):
            before = newest.get(side)
            if prev is not None:
                chained.add(side)
                if prev != (NO_EARLIER_DAY if before is None else before):
                    problems.append(f"transfer {t.id}: {name} prev day {prev} but account {side}'s transfers "
                                    f"before it say {before or 'none'}")
            elif side in chained:
                problems.append(f"transfer {t.id}: no {name} prev day, though account {side}'s earlier "
                                f"transfers have one")
            if before is None or before < t.day:
                newest[side] = t.day
            elif (t.day.year, t.day.month) < (before.year, before.month):
                unordered.add(side)
        if t.kind == "posted":
            add(t.debit_account_id, 0, t.amount)
            add(t.credit_account_id, 1, t.amount)
        elif t.kind == "pending":
            add(t.debit_account_id, 2, t.amount)
            add(t.credit_account_id, 3, t.amount)
        else:
            p = by_id.get(t.pending_id)
            if p is None or p.kind != "pending":
                problems.append(f"transfer {t.id} resolves {t.pending_id}, not a pending transfer")
                continue
            add(t.debit_account_id, 2, -p.amount)
            add(t.credit_account_id, 3, -p.amount)
            if t.kind == "post":
                if t.amount > p.amount:
                    problems.append(f"transfer {t.id} posts more than pending {p.id} held")
                add(t.debit_account_id, 0, t.amount)
                add(t.credit_account_id, 1, t.amount)
    total_posted = total_pending = 0
    negative = 0
    accounts = session.execute(select(ACCOUNTS)).all()
    for a in accounts:
        expect = sums.get(a.id, [0, 0, 0, 0])
        have = [a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending]
        if expect != have:
            problems.append(f"account {a.id}: sums {have} but transfers say {expect}")
        if a.last_transfer_day != newest.get(a.id):
            problems.append(f"account {a.id}: last transfer day {a.last_transfer_day} but transfers say "
                            f"{newest.get(a.id)}")
        if a.id in unordered and not a.out_of_order:
            problems.append(f"account {a.id}: a transfer is dated in an earlier month than one written before "
                            f"it, but the account is not marked out of order")
        total_posted += a.credits_posted - a.debits_posted
        total_pending += a.credits_pending - a.debits_pending
        if a.no_overdraft and a.credits_posted - a.debits_posted - a.debits_pending < 0:
            negative += 1
            problems.append(f"customer account {a.id} is overdrawn")
    stranded = session.execute(
        select(BankAccount.id, ACCOUNTS.c.credits_posted - ACCOUNTS.c.debits_posted, ACCOUNTS.c.debits_pending)
        .join(ACCOUNTS, ACCOUNTS.c.id == BankAccount.ledger_account_id)
        .where(BankAccount.status == "closed", (ACCOUNTS.c.credits_posted != ACCOUNTS.c.debits_posted)
               | (ACCOUNTS.c.debits_pending != 0))).all()
    for bank_account_id, held, pending in stranded:  # nobody can pay out a closed account's money (session 27)
        problems.append(f"closed bank account {bank_account_id} still holds {held} fen ({pending} pending)")
    if total_posted != 0:
        problems.append(f"posted balances add up to {total_posted}, not 0")
    if total_pending != 0:
        problems.append(f"pending balances add up to {total_pending}, not 0")
    return {"accounts": len(accounts), "transfers": len(by_id), "sum_posted_fen": total_posted,
            "sum_pending_fen": total_pending, "negative_customer_accounts": negative, "problems": problems,
            "ok": not problems}


def customer_total(session: Session) -> int:
    flush(session)
    return session.scalar(select(func.coalesce(func.sum(ACCOUNTS.c.credits_posted - ACCOUNTS.c.debits_posted), 0))
                          .where(ACCOUNTS.c.kind == "customer")) or 0


__all__ = [
    "Balance", "Spec", "account_names", "balance", "check_invariants", "close_account", "customer_account",
    "customer_total", "expire_due", "history", "linked", "pending_transfer", "post_pending", "row_id", "system_account",
    "transfer", "usage", "void_all_pending", "void_pending",
]
