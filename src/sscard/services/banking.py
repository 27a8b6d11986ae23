"""The card's bank account (RULES §3, §4, §6, §8): activation, bank PIN, cash, transfers, payments,
pension credits, statements, freeze and close. Money moves only through services.ledger.

- Activation: in person at an outlet of the card's bank, within the activation window set at
  collection (a bank supervisor may extend it once); the cardholder sets the 6-digit PIN twice. When
  the card replaces an old one, the old account's whole balance (holds resolved first) moves to the
  new account and the old account closes, in the same transaction.
- Every debit needs the bank PIN (3 wrong in a row lock it, per policy bank_pin.lock); the failure
  counter is committed even when the answer is a refusal. Refusals decided after the PIN check are
  committed too (with their audit record), since nothing else was written before them.
- Debits are refused on lost/frozen/closed/not-activated accounts, credits accepted unless closed;
  lapsed oral losses count as active (effective_bank_status).
- Per card per Shanghai day limits from policy.limits (ATM withdrawals, transfers, payments).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Engine, Row, Select, bindparam, select
from sqlalchemy.orm import Session

from ..core.clock import as_utc, shanghai_day
from ..core.errors import About, SscardError, register_messages
from ..core.identifiers import mask_pan, validate_pan
from ..core.money import fen_to_yuan, format_yuan, require_fen
from ..core.override import require_reason
from ..core.passwords import Lockout, check_new_pin, check_repeat, verify_with_lockout
from ..core.roles import BANK_STAFF, Actor, Role
from ..core.states import (
    BankStatus,
    SsStatus,
    bank_next,
    check_bank_credit,
    check_bank_debit,
    check_bank_pin_change,
    check_card_in_date,
)
from ..db import fetch_together
from ..models.foundation import Bank, BankAccount, Card, IdempotencyRecord
from . import access, ledger, lookup, paging
from . import card_lifecycle as lifecycle
from .access import Scope
from .book import Book, book_of
from .operation import Op, operation, query

register_messages({
    "cardholder_in_person": (
        403,
        "此业务仅限持卡人本人持卡和身份证原件办理，不接受代理人",
        "Only the cardholder in person, with the card and the original ID, may do this: no agent",
    ),
})
register_messages({
    "activation_already_extended": (
        409, "启用期限已延长过一次，不能再次延长", "The activation window has already been extended once"),
    "extension_too_long": (422, "延长天数须在1至{max}天之间", "The extension must be 1 to {max} days"),
    "pin_not_set": (409, "尚未设置银行密码，请先启用金融功能", "No bank PIN is set: activate the account first"),
    "pension_already_credited": (409, "该账户本期养老金已入账，不重复入账",
                                 "This account's pension for the period has been credited already"),
})

PIN_PURPOSE = "bank_pin"
MAX_PENDING_TIMEOUT = timedelta(days=30)


# ---------------------------------------------------------------- helpers


PREFETCHED = "sscard_accounts_by_pan"  # session.info key: accounts a group commit loaded for its batch
_ACCOUNT_COLUMNS = tuple(c.key for c in BankAccount.__table__.columns)
CARD_EXPIRY = "card_expiry_date"  # the view's one column that is not the account's: its card's expiry (R10.14)


class AccountView:
    """A bank account as a batch loaded it: a plain row with BankAccount's attributes, read-only.

    Building ORM objects for a batch's accounts cost more than the batch's SQL; most payments only read
    the account. What writes (a PIN counter, a first ledger account) asks `_writable`, which loads the
    ORM object in its place; any other write raises, so it can never be lost silently."""

    __slots__ = (*_ACCOUNT_COLUMNS, CARD_EXPIRY)
    id: int  # and every other column of BankAccount, set from the row
    card_expiry_date: date | None  # read with it: its card's expiry date (card_expiry)

    def __init__(self, row: Row[Any]) -> None:
        for name in (*_ACCOUNT_COLUMNS, CARD_EXPIRY):
            object.__setattr__(self, name, getattr(row, name))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"AccountView is read-only ({name}): use banking._writable")


def _writable(op: Op, account: BankAccount | AccountView) -> BankAccount:
    """The ORM object of an account (for a write), in place of a batch's read-only view."""
    if not isinstance(account, AccountView):
        return account
    orm = op.session.get(BankAccount, account.id)
    assert orm is not None  # the batch read this account's row in this transaction
    op.session.info.setdefault(PREFETCHED, {})[orm.pan] = orm
    return orm


def _by_pan(op: Op, pan: str, actor: Actor | None = None) -> BankAccount:
    # a batch's AccountView stands in for the BankAccount here (read-only: see AccountView, _writable)
    account: BankAccount | None = op.session.info.get(PREFETCHED, {}).get(pan)
    if account is None:
        return lookup.account_by_pan(op.session, pan, actor)  # (which names it in the record: access.REACHED)
    op.reached(About("bank_account", account.pan, account.person_id))  # the batch's read-ahead names it alike
    if actor is not None:
        access.require_own(actor, About("bank_account", account.pan, account.person_id), bank_id=account.bank_id,
                           missing="account_not_found")
    return account


def prefetch_accounts(session: Session, pans: set[str], actors: Iterable[Actor | None] = (),
                      now: datetime | None = None, *, usage: bool = True,
                      first: list[tuple[Any, Any]] | None = None) -> list[list[Any]]:
    """Load for a whole batch (services/batching): the accounts of many PANs (as read-only views) with
    their ledger accounts and the day's limit usage in one query, and the terminals' ledger accounts,
    sent together (with the transaction's BEGIN, and `first`'s statements ahead of them: `lock_accounts`,
    the other areas' reads ahead). Returns `first`'s rows. `usage=False` (an operation run on its own,
    on PostgreSQL): not the usage, which the limit check then reads for its one account and kind
    (Book._load_kind says why)."""
    ahead = first or []
    if not pans:
        return fetch_together(session.connection(), ahead) if ahead else []
    assert now is not None  # the writer passes its batch's now (shanghai_day(None) would fail anyway)
    book = book_of(session)
    day = shanghai_day(now)
    found = {}
    statement, params = (_PREFETCH, {"day": day, "pans": sorted(pans)}) if usage else (
        _PREFETCH_ACCOUNTS, {"pans": sorted(pans)})
    actors = list(actors)
    # the terminals' and counters' own accounts (their ids known without a query) in the same round trip
    theirs = book.read_of(_terminal_ledger_ids(session, actors) + _counter_ledger_ids(session, actors))
    read = fetch_together(session.connection(), [*ahead, (statement, params)] + ([theirs] if theirs else []))
    rows, *their_rows = read[len(ahead):]
    for row in rows:
        if row.pan not in found:
            found[row.pan] = AccountView(row)
        book.seed(row, day if usage else None)
    book.seeded()
    session.info.setdefault(PREFETCHED, {}).update(found)
    for more in their_rows:
        book.take(more)
    return read[:len(ahead)]


def lock_accounts(session: Session, pans: set[str], actors: Iterable[Actor | None] = ()) -> list[tuple[str, Any]]:
    """PostgreSQL, an operation run on its own (not in a batch): the statements that lock the ledger
    accounts it may move (its PANs' and its terminal's), in id order, to be its first statements
    (batching.read_ahead_alone sends them with BEGIN and its read-ahead: one round trip).

    Under SERIALIZABLE two such transactions on one account otherwise both read it and both write it:
    one is cancelled as a pivot after doing all its work, often both, and they retry with backoff (the
    bench's (d) had p99 of seconds). Locked first and in one order, the second waits for the first, then
    fails at once ("concurrent update": its snapshot is older than the first's commit) and runs again at
    once (db.waited_for_committed_writer). No deadlock between two of them: each takes its locks in one
    statement, in id order. Sequential scans are off for the transaction: on small tables the planner
    scans, and a scan's predicate lock covers the whole table, so every writer conflicted with every
    reader; the lock is one `id = ANY(...)` (an OR made it a bitmap scan, whose predicate lock is the
    whole heap page)."""
    return [(_NO_SEQSCAN, None), (_NO_BITMAP, None), (_LOCK, (sorted(pans), sorted(_terminal_ledger_ids(session, actors))))]


def advisory_locks(engine: Engine, pans: set[str], actors: Iterable[Actor | None] = ()) -> tuple[str, list[Any]]:
    """PostgreSQL, an operation run on its own: the statement that takes session-level advisory locks on
    the ledger accounts `lock_accounts` locks (its PANs' and its terminal's), in id order, for
    `Database.run(locks=...)` to run before BEGIN. The lock wait then comes before the SERIALIZABLE
    snapshot, not after it: the second of two transfers on one account starts once the first has
    committed and sees its writes, where it used to wait for the row lock and then fail ("concurrent
    update"), with every other transaction queued behind the first. In id order, in one statement: two
    of them never deadlock. A key is LEDGER_LOCKS + the ledger account's id (ids below 2**32). The
    row locks stay (`lock_accounts`): a batch of the group-commit writer takes none of these."""
    return _ADVISORY, [LEDGER_LOCKS, sorted(pans), sorted(_terminal_ledger_ids(engine, actors))]


_NO_TERMINAL_ACCOUNT = frozenset({"bank.transfer"})  # card to card: the terminal's own accounts never move


def moving_terminal(name: str, actor: Actor | None) -> list[Actor | None]:
    """The actors whose terminal accounts (a POS's merchant account, an ATM's cash) operation `name` may
    move: none for a transfer. Run on its own, an operation locks and reads those accounts with its
    cards' ones: every transfer at one ATM locked that ATM's cash account, so they all waited for each
    other, and read a third ledger account, which (more than two on a heap page) made PostgreSQL lock the
    page's every account for serializability (see Book._load_kind)."""
    return [] if name in _NO_TERMINAL_ACCOUNT else [actor]


def _terminal_ledger_ids(session: Session | Engine, actors: Iterable[Actor | None]) -> list[int]:
    """The terminals' own ledger accounts (a POS's merchant account, an ATM's cash), when known."""
    ids = []
    for actor in actors:
        if actor is not None and actor.role is Role.TERMINAL:
            for name in (f"merchant:{actor.id}", f"atm:{actor.id}"):
                known = ledger.known_system_account(session, name)
                if known is not None:
                    ids.append(known)
    return ids


def _counter_ledger_ids(session: Session, actors: Iterable[Actor | None]) -> list[int]:
    """The system accounts a counter's staff move money with, when known (no query): a teller's cash
    drawer, a center's cash and the agency's fee income (replacement fees). Loaded with the batch's other
    accounts in one query, not one by one as its requests first move them (three or four round trips per
    counter batch). Only reads: an account a batch does not move is only read."""
    ids = []
    for actor in actors:
        if actor is None or actor.role is Role.TERMINAL:
            continue
        outlet, center = lookup.kept_place_codes(session, actor.outlet_id, actor.center_id)
        names = ([f"cash:{outlet}"] if outlet else []) + (
            [f"cash:center-{center}", "agency_fee_income"] if center else [])
        for name in names:
            known = ledger.known_system_account(session, name)
            if known is not None:
                ids.append(known)
    return ids


LEDGER_LOCKS = 0x53534C41 << 32  # advisory lock key of ledger account n: this + n ("SSLA"; bigint keys)
# A subquery with ORDER BY is never flattened into the outer query, so the locks are taken in its order.
_ADVISORY = ("SELECT pg_advisory_lock(%s::bigint + id) FROM (SELECT DISTINCT id FROM unnest(ARRAY(SELECT"
             " ledger_account_id FROM bank_accounts WHERE pan = ANY(%s)) || %s::bigint[]) AS ids(id)"
             " WHERE id IS NOT NULL ORDER BY id) AS ordered")
_NO_SEQSCAN = "SET LOCAL enable_seqscan = off"  # for this transaction only
_NO_BITMAP = "SET LOCAL enable_bitmapscan = off"  # nor bitmap scans: their predicate lock is the whole heap page
_LOCK = ("SELECT id FROM ledger_accounts WHERE id = ANY(ARRAY(SELECT ledger_account_id FROM bank_accounts"
         " WHERE pan = ANY(%s)) || %s::bigint[]) ORDER BY id FOR UPDATE")


def _prefetch_statement(usage: bool = True) -> Select[Any]:
    table, cards = BankAccount.__table__, Card.__table__
    columns, join = Book.seed_columns(table.c.ledger_account_id, bindparam("day") if usage else None)
    # the card's expiry date in the same row (a terminal's debit checks it, R10.14): a lookup by its primary key
    expiry = select(cards.c.expiry_date).where(cards.c.id == table.c.card_id).scalar_subquery().label(CARD_EXPIRY)
    return join(select(table, *columns, expiry)).where(table.c.pan.in_(bindparam("pans", expanding=True)))


_PREFETCH = _prefetch_statement()  # built once: building it costs more than running it
_PREFETCH_ACCOUNTS = _prefetch_statement(usage=False)


def _statement_read() -> Select[Any]:
    """A statement's account (what the answer shows and the scope check reads), its ledger account's sums,
    when that was opened, the day of its newest transfer and whether its transfers were written out of
    order: one row."""
    table = BankAccount.__table__
    accounts = ledger.ACCOUNTS.c
    return (select(table.c.pan, table.c.person_id, table.c.bank_id, table.c.ledger_account_id, table.c.status,
                   table.c.loss_expires_at, table.c.activation_deadline, accounts.id.label("ledger_id"),
                   accounts.debits_posted, accounts.credits_posted, accounts.debits_pending, accounts.credits_pending,
                   accounts.created_at.label("ledger_opened"), accounts.last_transfer_day.label("ledger_newest"),
                   accounts.out_of_order.label("ledger_out_of_order"))
            .outerjoin(ledger.ACCOUNTS, accounts.id == table.c.ledger_account_id)
            .where(table.c.pan == bindparam("pan")))


_STATEMENT_READ = _statement_read()


def _account(op: Op, pan: str) -> BankAccount:
    """The account behind a PAN: a cardholder only their own; bank staff and terminals only their bank's.
    Named in the operation's record from here on (`_by_pan`): a debit refused for the account's state or a
    wrong PIN is recorded against the account and its holder (session 21's probe: a lost card's refused
    withdrawals named neither, and never reached the holder's access log)."""
    return _by_pan(op, pan, op.actor)


def pin_lock(account: BankAccount) -> Lockout:
    return Lockout(account.pin_failures, as_utc(account.pin_locked_until), account.pin_locked,
                   as_utc(account.pin_failed_at))


def pin_matches(op: Op, account: BankAccount, pin: str) -> bool:
    return op.secrets.pin_matches(account.pin_digest, PIN_PURPOSE, account.pan, pin or "")


def check_pin(op: Op, account: BankAccount, pin: str) -> None:
    """RULES §4 lockout; the new counter is saved even when the answer is wrong_pin/pin_locked."""
    if account.pin_digest is None:
        raise SscardError("pin_not_set")
    before = pin_lock(account)
    lock, error = verify_with_lockout(before, "bank_pin", op.policy, op.now, pin_matches(op, account, pin),
                                      locked_code="pin_locked", wrong_code="wrong_pin")
    if lock != before:  # write only on change: a good PIN with no misses touches nothing
        account = _writable(op, account)
        account.pin_failures = lock.failures
        account.pin_locked_until = lock.locked_until
        account.pin_locked = lock.locked
        account.pin_failed_at = lock.failed_at
    if error:
        op.audit("bank_account", account.pan, person_id=account.person_id, pin_failures=lock.failures)
        raise error


def set_pin(op: Op, account: BankAccount, pin: str) -> None:
    """Keep a new bank PIN (as an HMAC bound to the PAN) and lift any lock: activation, change, reset."""
    account.pin_digest = op.secrets.pin_digest(PIN_PURPOSE, account.pan, pin)
    account.pin_failures = 0
    account.pin_locked_until = None
    account.pin_locked = False
    account.pin_failed_at = None


@contextmanager
def _committed_refusals() -> Iterator[None]:
    """After the PIN check nothing but the PIN counter is written before a refusal is decided (the
    ledger checks before it writes; linked transfers roll back their savepoint), so the refusal is
    answered with its writes kept: the counter reset and the refusal's own audit record."""
    try:
        yield
    except SscardError as err:
        if err.commit:
            raise
        raise SscardError(err.code, commit=True, status=err.status, **err.params) from None


def _cash_account(op: Op) -> int:
    """The outlet's cash drawer (teller) or the ATM's cash (terminal)."""
    if op.actor.role is Role.TERMINAL:  # an ATM: the operations that call this declare terminals=ATM
        return ledger.system_account(op, f"atm:{op.actor.id}", kind="atm", bank_id=op.actor.bank_id)
    if op.actor.outlet_id is None:
        raise SscardError("forbidden")
    # an outlet never changes: its code and bank are kept per engine (lookup.outlet_facts), not read
    # again by every batch of the group-commit writer
    facts = lookup.outlet_facts(op.session, op.actor.outlet_id)
    assert facts is not None  # a teller's outlet_id comes from staff_users.outlet_id, a foreign key
    code, bank_id = facts
    return ledger.system_account(op, f"cash:{code}", kind="cash_drawer", bank_id=bank_id)


def _merchant_account(op: Op) -> int:
    """The POS terminal's merchant account (the operations that call this declare terminals=POS)."""
    return ledger.system_account(op, f"merchant:{op.actor.id}", kind="merchant", bank_id=op.actor.bank_id)


def clearing_account(op: Op, bank_id: int) -> int:
    bank = op.session.get(Bank, bank_id)
    assert bank is not None  # called with an account's bank_id, a NOT NULL foreign key
    return ledger.system_account(op, f"clearing:{bank.code}", kind="clearing", bank_id=bank_id)


def _ledger_id(op: Op, account: BankAccount) -> int:
    if account.ledger_account_id is not None:
        return account.ledger_account_id
    return ledger.customer_account(op.session, _writable(op, account), op.now)


def account_answer(op: Op, account: BankAccount, moved: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    account = op.session.info.get(PREFETCHED, {}).get(account.pan, account)  # a view may have been replaced
    known = (moved or {}).get("balances", {}).get(account.ledger_account_id)
    b = known or ledger.balance(op.session, account.ledger_account_id).as_dict()
    out = _answer(op, account, b)
    if moved:
        out.update(transfer_id=moved["transfer_id"], amount_fen=moved["amount_fen"], at=moved["at"])
    out.update(extra)
    return out


def _answer(op: Op, account: BankAccount, b: dict[str, int]) -> dict[str, Any]:
    """An account's answer from its balance (`ledger.Balance.as_dict`)."""
    return {"pan": mask_pan(account.pan), "status": str(lifecycle.bank_status(op, account)), **b,
            "balance": fen_to_yuan(b["balance_fen"]), "available": fen_to_yuan(b["available_fen"])}


def require_pin_kept(op: Op, account: BankAccount) -> None:
    """A bank PIN exists from activation until close: before or after, the PIN answers as a debit would."""
    status = lifecycle.bank_status(op, account)
    if status in (BankStatus.NOT_ACTIVATED, BankStatus.CLOSED):
        check_bank_debit(status)


def require_pin_changeable(op: Op, account: BankAccount) -> None:
    """A PIN is changed (the old one, then the new twice) only on an account that may be used: a lost or
    frozen one takes no PIN change as it takes no debit nor balance inquiry (docs/RULES.md R3.4), on every
    channel that changes one (ATM, counter, API, the bank's hotline). Session 25's rules probe: an ATM and
    the hotline changed a lost card's PIN, so a finder who had seen the PIN typed set their own while the
    owner's oral loss ran. A reset in person (`reset_pin`) is not a change and is still done. The refusal
    says a PIN change was refused, not a debit (`account_lost_pin_change`, `account_frozen_pin_change`)."""
    check_bank_pin_change(lifecycle.bank_status(op, account))


def card_expiry(op: Op, account: BankAccount | AccountView, card: Card | None = None) -> date | None:
    """The expiry date of the card an account is behind: read with the account by a batch's read-ahead
    (`AccountView`), else from the card given or loaded by its id."""
    if isinstance(account, AccountView):
        return account.card_expiry_date
    if card is None or card.id != account.card_id:
        card = op.session.get(Card, account.card_id)
    return card.expiry_date if card is not None else None


def require_card_in_date(op: Op, account: BankAccount | AccountView, card: Card | None = None) -> None:
    """docs/RULES.md R10.14: a card past its expiry date (R2.7) is refused `card_expired` for a debit a
    TERMINAL takes with it (ATM withdrawal or transfer, POS sale, authorization and capture, a hospital's or
    pharmacy's self-pay by card): the one place that decides it, for the REST terminal API and ISO 8583
    alike, one by one or group-committed. The account itself stays open: credits, the bank counter (a
    teller with the holder's ID) and the cardholder's own card-not-present transfer go on, and the holder
    renews the card (replacement reason `expiring`, R6.5), whose activation takes the account over."""
    if op.actor.role is Role.TERMINAL:
        check_card_in_date(card_expiry(op, account, card), shanghai_day(op.now))


def debit_ready(op: Op, account: BankAccount, pin: str, *, card: Card | None = None) -> int:
    """Debit side checks in order: account state, the card's date at a terminal (R10.14), then the PIN.
    Returns the ledger account id to debit (a transfer, a payment, a medical self-pay, a replacement fee
    paid by card). `card`: the account's card when the caller holds it already (no read)."""
    check_bank_debit(lifecycle.bank_status(op, account))
    require_card_in_date(op, account, card)
    check_pin(op, account, pin)
    return _ledger_id(op, account)


# ---------------------------------------------------------------- activation


def _require_in_person(confirmed: bool) -> None:
    """RULES §3/§4: activation and a PIN reset only for the cardholder in person, with the card and the
    original ID; the teller (console checkbox, API field) confirms it, on every channel alike."""
    if confirmed is not True:
        raise SscardError("cardholder_in_person")


@operation("bank.activate", roles=BANK_STAFF, scope=Scope.OWN, secrets=('pin', 'pin_again'))
def activate(op: Op, pan: str, presented_citizen_id: str, pin: str, pin_again: str, *,
             cardholder_in_person: bool) -> dict[str, Any]:
    """At an outlet of the card's bank, cardholder in person with card and ID; sets the bank PIN."""
    _require_in_person(cardholder_in_person)
    account = _account(op, pan)
    person = lookup.person_by_id(op.session, account.person_id)
    lookup.check_presented_id(person, presented_citizen_id)
    card = op.session.get(Card, account.card_id)
    assert card is not None  # bank_accounts.card_id is a NOT NULL foreign key
    before = account.status
    bank_next(account.status, "activate")  # refuses anything but not_activated
    if card.collected_at is None or account.activation_deadline is None:
        raise SscardError("card_not_usable", state=card.ss_status)
    if card.ss_status == "cancelled":
        raise SscardError("card_cancelled")
    if shanghai_day(op.now) > account.activation_deadline:
        raise SscardError("activation_window_expired")
    check_repeat(pin, pin_again)
    check_new_pin(pin, person.citizen_id, person.birth_date)
    lifecycle.bank_transition(op, account, "activate")
    account.activated_outlet_id = op.actor.outlet_id
    set_pin(op, account, pin)
    new_id = _ledger_id(op, account)
    moved = _take_over_replaced_account(op, card, new_id) if card.replaces_card_id else None
    op.audit("bank_account", account.pan, before=before, after=account.status, person_id=person.id,
             moved_from=moved and moved["old_pan"], moved_fen=moved and moved["amount_fen"])
    return account_answer(op, account, moved_from_old_account=moved)


def _take_over_replaced_account(op: Op, card: Card, new_ledger_id: int) -> dict[str, Any] | None:
    """RULES §6: the old card's account gives its whole balance to the new one and closes."""
    old_card = op.session.get(Card, card.replaces_card_id)
    old = op.session.scalar(select(BankAccount).where(BankAccount.card_id == old_card.id)) if old_card else None
    if old is None or old.status == BankStatus.CLOSED:
        return None
    if lifecycle.bank_status(op, old) == BankStatus.FROZEN:
        raise SscardError("account_frozen")  # a frozen balance cannot leave; the freeze must be lifted first
    amount = 0
    if old.ledger_account_id is not None:
        ledger.void_all_pending(op, old.ledger_account_id)
        amount = ledger.balance(op.session, old.ledger_account_id).posted
        if amount > 0:
            ledger.transfer(op, old.ledger_account_id, new_ledger_id, amount, "replacement", ref=f"card:{card.id}")
        ledger.close_account(op.session, old.ledger_account_id)
    lifecycle.bank_transition(op, old, "close")
    return {"old_pan": mask_pan(old.pan), "amount_fen": amount}


@operation("bank.extend_activation", roles={Role.BANK_SUPERVISOR}, scope=Scope.OWN)
def extend_activation(op: Op, pan: str, days: int | None = None, reason: str = "") -> dict[str, Any]:
    """Once per card, by up to policy activation.max_extension_days, from the later of deadline and today."""
    reason = require_reason(reason)
    account = _account(op, pan)
    if account.status != BankStatus.NOT_ACTIVATED:
        raise SscardError("illegal_transition", state=account.status, event="extend_activation")
    if account.activation_deadline is None:
        raise SscardError("card_not_usable", state="not_collected")
    card = op.session.get(Card, account.card_id)
    assert card is not None  # bank_accounts.card_id is a NOT NULL foreign key
    if card.ss_status == "cancelled":  # its activation is refused (activate): no window to extend
        raise SscardError("card_cancelled")
    if account.window_extended:
        raise SscardError("activation_already_extended")
    max_days = op.policy.activation.max_extension_days
    days = max_days if days is None else days
    if not (1 <= days <= max_days):
        raise SscardError("extension_too_long", max=max_days)
    before = account.activation_deadline
    account.activation_deadline = max(before, shanghai_day(op.now)) + timedelta(days=days)
    account.window_extended = True
    op.audit("bank_account", account.pan, before=before.isoformat(), after=account.activation_deadline.isoformat(),
             person_id=account.person_id, reason=reason, days=days)
    return {"pan": mask_pan(account.pan), "activation_deadline": account.activation_deadline, "days": days}


# ---------------------------------------------------------------- cash


@operation("bank.deposit", roles=BANK_STAFF | {Role.TERMINAL}, scope=Scope.OWN, terminals=access.ATM, batched=True)
def deposit(op: Op, pan: str, amount_fen: int) -> dict[str, Any]:
    """Cash in at a counter (the outlet's drawer) or an ATM. A credit: accepted while lost or frozen."""
    require_fen(amount_fen)
    account = _account(op, pan)
    check_bank_credit(lifecycle.bank_status(op, account))
    cash = _cash_account(op)
    moved = ledger.transfer(op, cash, _ledger_id(op, account), amount_fen, "deposit", ref=op.actor.place)
    op.audit("bank_account", account.pan, person_id=account.person_id, amount_fen=amount_fen,
             transfer_id=moved["transfer_id"])
    return account_answer(op, account, moved)


@operation("bank.withdraw", roles=BANK_STAFF | {Role.TERMINAL}, scope=Scope.OWN, secrets=('pin',), terminals=access.ATM, batched=True)
def withdraw(op: Op, pan: str, amount_fen: int, pin: str) -> dict[str, Any]:
    """Cash out at a counter or an ATM (ATM: per-transaction and per-day limits)."""
    require_fen(amount_fen)
    account = _account(op, pan)
    cash = _cash_account(op)
    source = debit_ready(op, account, pin)
    with _committed_refusals():
        limit = None
        if op.actor.role is Role.TERMINAL:
            limits = op.policy.limits
            if amount_fen > limits.atm_withdrawal_per_txn_fen:
                raise SscardError("limit_exceeded", limit=(f"ATM单笔取款{format_yuan(limits.atm_withdrawal_per_txn_fen)}元",
                                                           f"ATM withdrawal per transaction: "
                                                           f"{format_yuan(limits.atm_withdrawal_per_txn_fen)} yuan"))
            limit = ("atm_withdrawal", limits.atm_withdrawal_per_day_fen)
        moved = ledger.transfer(op, source, cash, amount_fen, "withdrawal", ref=op.actor.place, limit=limit)
    op.audit("bank_account", account.pan, person_id=account.person_id, amount_fen=amount_fen,
             transfer_id=moved["transfer_id"])
    return account_answer(op, account, moved)


# ---------------------------------------------------------------- transfers


@operation("bank.transfer", roles=BANK_STAFF | {Role.TERMINAL, Role.CARDHOLDER}, scope=Scope.OWN, secrets=('pin',), terminals=access.ATM, batched=True)
def transfer(op: Op, from_pan: str, to_pan: str, amount_fen: int, pin: str, transfer_id: str | None = None) -> dict[str, Any]:
    """To a card of the same bank directly; to another bank's card through both banks' clearing accounts
    (two linked transfers, all or nothing). Counts against the per-day transfer limit."""
    require_fen(amount_fen)
    source_account = _account(op, from_pan)
    # the payer's PIN before the payee is looked for: looked for first, a PAN of nobody answered
    # account_not_found and a real one wrong_pin (pin_locked once locked, for ever after), so a card
    # without its PIN told which card numbers of any bank exist (session 24's probe)
    source = debit_ready(op, source_account, pin)
    with _committed_refusals():
        target = _by_pan(op, to_pan)
        if target.id == source_account.id:
            raise SscardError("same_account")
        check_bank_credit(lifecycle.bank_status(op, target))
        target_id = _ledger_id(op, target)
        limit = ("transfer", op.policy.limits.transfer_per_day_fen)
        if target.bank_id == source_account.bank_id:
            moved = ledger.transfer(op, source, target_id, amount_fen, "transfer", limit=limit,
                                    transfer_id=transfer_id, ref=target.pan[-4:])
        else:
            first, _second = ledger.linked(op, [
                ledger.Spec(source, clearing_account(op, source_account.bank_id), amount_fen, "transfer",
                            ref=target.pan[-4:], limit=limit, transfer_id=transfer_id),
                ledger.Spec(clearing_account(op, target.bank_id), target_id, amount_fen, "transfer",
                            ref=source_account.pan[-4:]),
            ])
            moved = first
    op.audit("bank_account", source_account.pan, person_id=source_account.person_id, amount_fen=amount_fen,
             to=mask_pan(target.pan), transfer_id=moved["transfer_id"],
             inter_bank=target.bank_id != source_account.bank_id)
    return account_answer(op, source_account, moved, to=mask_pan(target.pan))


# ---------------------------------------------------------------- payments at a merchant POS


def _payment(op: Op, pan: str, amount_fen: int, pin: str, *, pending: bool, timeout_seconds: int | None,
             transfer_id: str | None) -> dict[str, Any]:
    require_fen(amount_fen)
    merchant = _merchant_account(op)
    account = _account(op, pan)
    source = debit_ready(op, account, pin)
    timeout = None
    if pending and timeout_seconds is not None:
        if not (1 <= timeout_seconds <= MAX_PENDING_TIMEOUT.total_seconds()):
            raise SscardError("invalid_request")
        timeout = timedelta(seconds=timeout_seconds)
    with _committed_refusals():
        moved = ledger.transfer(op, source, merchant, amount_fen, "payment", pending=pending, timeout=timeout,
                                limit=("payment", op.policy.limits.payment_per_day_fen), transfer_id=transfer_id,
                                ref=op.actor.place)
    op.audit("bank_account", account.pan, person_id=account.person_id, amount_fen=amount_fen,
             transfer_id=moved["transfer_id"], pending=pending)
    return account_answer(op, account, moved, timeout_at=moved["timeout_at"])


@operation("bank.purchase", roles={Role.TERMINAL}, scope=Scope.OWN, secrets=('pin',), terminals=access.POS, batched=True)
def purchase(op: Op, pan: str, amount_fen: int, pin: str, transfer_id: str | None = None) -> dict[str, Any]:
    """A one-step payment at a POS."""
    return _payment(op, pan, amount_fen, pin, pending=False, timeout_seconds=None, transfer_id=transfer_id)


@operation("bank.authorize_payment", roles={Role.TERMINAL}, scope=Scope.OWN, secrets=('pin',), terminals=access.POS, batched=True)
def authorize_payment(op: Op, pan: str, amount_fen: int, pin: str, timeout_seconds: int | None = None,
                      transfer_id: str | None = None) -> dict[str, Any]:
    """A hold (pending transfer) to the merchant, captured or voided later; it expires by itself."""
    return _payment(op, pan, amount_fen, pin, pending=True, timeout_seconds=timeout_seconds, transfer_id=transfer_id)


@operation("bank.capture_payment", roles={Role.TERMINAL}, scope=Scope.OWN, terminals=access.POS, batched=True)
def capture_payment(op: Op, transfer_id: str, amount_fen: int | None = None) -> dict[str, Any]:
    """Post a hold of this terminal, wholly or for less (the rest is released). The money leaves the card's
    account now, so the account must be one that may be debited now: a hold taken before a loss report or a
    freeze is not posted after it (RULES §3: no debit while lost or frozen), it stays held until voided or
    expired (session 24's probe: a hold authorized, an oral loss reported, then captured)."""
    merchant = _merchant_account(op)
    holder: list[BankAccount] = []  # the hold's card account, read once: its state here, its holder for the record

    def debit_allowed(ledger_id: int) -> None:
        account = op.session.scalar(select(BankAccount).where(BankAccount.ledger_account_id == ledger_id))
        if account is not None:  # (a hold is always on a card's account; none is a ledger-only test's)
            check_bank_debit(lifecycle.bank_status(op, account))
            require_card_in_date(op, account)  # a capture is a terminal's debit (R10.14)
            holder.append(account)

    posted = ledger.post_pending(op, transfer_id, amount_fen, credit_account_id=merchant, debit_allowed=debit_allowed)
    access.checked(Scope.OWN)  # post_pending refuses a hold whose merchant is not this terminal
    op.audit("ledger_transfer", transfer_id, before="pending", after="posted", amount_fen=posted["amount_fen"],
             person_id=holder[0].person_id if holder else None)
    return posted


@operation("bank.void_payment", roles={Role.TERMINAL}, scope=Scope.OWN, terminals=access.POS, batched=True)
def void_payment(op: Op, transfer_id: str) -> dict[str, Any]:
    merchant = _merchant_account(op)
    voided = ledger.void_pending(op, transfer_id, credit_account_id=merchant)
    access.checked(Scope.OWN)  # void_pending refuses a hold whose merchant is not this terminal
    op.audit("ledger_transfer", transfer_id, before="pending", after="voided", amount_fen=voided["amount_fen"],
             person_id=_holder_of(op, transfer_id))
    return voided


# ---------------------------------------------------------------- a terminal's reversal of its own movement

register_messages({
    "reversal_original_not_found": (404, "找不到要冲正的原交易", "The original transaction to reverse was not found"),
    "reversal_too_late": (409, "原交易已超过{hours}小时，终端不能冲正，请由银行处理",
                          "The original is more than {hours} hours old: a terminal cannot reverse it, the bank settles it"),
    "reversed_before_original": (409, "该交易已由终端冲正，不再受理",
                                 "The terminal reversed this transaction before it arrived: it is not taken"),
})
REVERSIBLE = {"atm": "withdrawal", "pos": "payment"}  # a terminal's kind -> the one movement it reverses
_REVERSED_FIRST_ANSWER = '{"code": "reversed_before_original", "params": {}}'


def reversal_transfer_id(op: Op, original_transfer_id: str) -> str:
    """The ledger transfer id of the one reversal of a transfer: the ledger's unique transfer id takes a
    second reversal of the same original, however keyed, as already done. Keyed with the server's secret,
    as a pension's is (`pension_transfer_id`): a POS chooses its own payment ids, and could otherwise take
    the id first and make its own reversal impossible."""
    digest = hmac.new(op.app.settings.secret_key, f"reversal\x00{original_transfer_id}".encode(), hashlib.sha256)
    return "reversal-" + digest.hexdigest()[:48]


@operation("bank.reverse_terminal", roles={Role.TERMINAL}, scope=Scope.OWN, terminals=access.ATM | access.POS,
           batched=True, alone=True)
def reverse_terminal(op: Op, original_key: str, dispensed_fen: int = 0, *, pan: str | None = None,
                     amount_fen: int | None = None, original_at: datetime | None = None) -> dict[str, Any]:
    """An ATM's withdrawal whose cash did not (all) come out, or a POS's one-step payment that did not
    complete, reversed by the terminal that made it (ISO 8583 0400/0420, or the REST terminal API), RULES
    R10.13. The original is found by the request's own idempotency key, in this terminal's keys only
    (`original_key`; over ISO 8583 `iso8583:<field 7>:<STAN>` from field 90): another terminal finds nothing,
    whether or not the original exists. `dispensed_fen`: what was really dispensed or paid (field 95; 0: none),
    the rest goes back, as a new `reversal` transfer from the terminal's account to the card's, whose `ref` is the
    original's transfer id; the day's limit the original counted against gets the same back. No PIN (the
    terminal sends it, not the cardholder); a credit, so taken while the card is lost or frozen.

    - once per original: its transfer id (`reversal_transfer_id`) exists after the first, so a second
      reversal, whatever its key, answers `already_reversed` and moves nothing;
    - an original refused, or one this terminal never made: `reversal_original_not_found`, nothing moves;
    - an original not seen yet (the reversal overtook it): the refusal is committed with a record kept under
      the original's key (`operation.REVERSED_FIRST`), so that the original, when it comes, is refused
      `reversed_before_original` and moves nothing. Both are inserted under the same unique key: whichever
      commits second finds the other (the original's batch is rerun and answered from the record, this runs
      again and finds the original);
    - older than `bank.terminal_reversal_hours`: `reversal_too_late` (the bank settles it);
    - `pan` and `amount_fen`, when given (ISO 8583 sends fields 2 and 4), must be the original's; the amount
      dispensed must be 0 or more and less than the original (`invalid_amount`)."""
    from .operation import REVERSED_FIRST, key_scope

    if not (isinstance(original_key, str) and 1 <= len(original_key) <= 80):
        raise SscardError("invalid_request")
    if type(dispensed_fen) is not int or dispensed_fen < 0 or (amount_fen is not None and (
            type(amount_fen) is not int or not 0 < amount_fen <= 10**12)):
        raise SscardError("invalid_amount")
    hours = op.policy.bank.terminal_reversal_hours
    scope = key_scope(op.actor)
    stored = op.session.get(IdempotencyRecord, (scope, original_key))
    if stored is None and original_key == op.idempotency_key:
        raise SscardError("reversal_original_not_found")  # its own key: no original, and none to wait for
    if stored is None:
        if original_at is not None and op.now - as_utc(original_at) > timedelta(hours=hours):
            raise SscardError("reversal_too_late", hours=hours)
        op.session.add(IdempotencyRecord(scope=scope, key=original_key, request_hash=REVERSED_FIRST, status=409,
                                         response=_REVERSED_FIRST_ANSWER, created_at=op.now))
        op.session.flush()  # a twin of the original stored first: IntegrityError, and the frame runs this again
        op.audit("idempotency_key", original_key, after="reversed_before_original")
        raise SscardError("reversal_original_not_found", commit=True)
    if stored.request_hash == REVERSED_FIRST or stored.status >= 400:
        raise SscardError("reversal_original_not_found")  # refused, or already reversed before it came
    original_id = json.loads(stored.response).get("transfer_id")
    rows = op.session.execute(select(ledger.TRANSFERS).where(ledger.TRANSFERS.c.transfer_id == original_id)).all() \
        if isinstance(original_id, str) else []
    original = rows[0] if rows else None
    own = f"{'atm' if op.actor.terminal_kind == 'atm' else 'merchant'}:{op.actor.id}"
    if original is None or original.kind != "posted" or original.code != REVERSIBLE.get(op.actor.terminal_kind or "") \
            or ledger.account_names(op.session, {original.credit_account_id}).get(
                original.credit_account_id, ("", "", None))[1] != own:
        raise SscardError("reversal_original_not_found")  # a deposit, a balance inquiry, a hold: not this
    account = op.session.scalar(select(BankAccount).where(BankAccount.ledger_account_id == original.debit_account_id))
    assert account is not None  # a withdrawal's or payment's debit side is a card's account
    access.require_own(op.actor, About("bank_account", account.pan, account.person_id), bank_id=account.bank_id,
                       missing="account_not_found")
    if pan is not None and pan != account.pan:
        raise SscardError("reversal_original_not_found")
    if amount_fen is not None and amount_fen != original.amount:
        raise SscardError("invalid_amount")
    if dispensed_fen >= original.amount:
        raise SscardError("invalid_amount")
    reversal_id = reversal_transfer_id(op, original.transfer_id)
    book = book_of(op.session)
    if book.transfer_exists(reversal_id):
        first = op.session.execute(select(ledger.TRANSFERS).where(ledger.TRANSFERS.c.transfer_id == reversal_id)).one()
        op.audit("bank_account", account.pan, person_id=account.person_id, original_transfer_id=original.transfer_id,
                 original_key=original_key, transfer_id=reversal_id, already_reversed=True)
        return account_answer(op, account, None, transfer_id=reversal_id, amount_fen=first.amount,
                              at=first.created_at, original_transfer_id=original.transfer_id,
                              already_reversed=True)
    if op.now - as_utc(original.created_at) > timedelta(hours=hours):
        raise SscardError("reversal_too_late", hours=hours)
    check_bank_credit(lifecycle.bank_status(op, account))  # a credit: lost or frozen take it, closed not
    back = original.amount - dispensed_fen
    moved = ledger.transfer(op, original.credit_account_id, original.debit_account_id, back, "reversal",
                            transfer_id=reversal_id, ref=original.transfer_id)
    if original.limit_kind:  # the day's limit counts what was really dispensed or paid
        book.add_usage(original.debit_account_id, original.day, original.limit_kind, -back)
    op.audit("bank_account", account.pan, person_id=account.person_id, amount_fen=back, dispensed_fen=dispensed_fen,
             original_transfer_id=original.transfer_id, original_key=original_key, transfer_id=reversal_id)
    return account_answer(op, account, moved, original_transfer_id=original.transfer_id, already_reversed=False)


_HOLDER_OF_HOLD = select(BankAccount.person_id).join(
    ledger.TRANSFERS, ledger.TRANSFERS.c.debit_account_id == BankAccount.ledger_account_id).where(
    ledger.TRANSFERS.c.transfer_id == bindparam("tid")).limit(1)


def _holder_of(op: Op, transfer_id: str) -> int | None:
    """The cardholder a POS hold was taken from: its capture and its void are in their record (session 22's
    auditor: only the authorization was, so the cardholder's access log never showed the 100.00 taken)."""
    rows = op.rows(_HOLDER_OF_HOLD, {"tid": transfer_id})
    return rows[0].person_id if rows else None


@operation("bank.expire_pending", roles={Role.SYSTEM, Role.OPERATOR}, scope=Scope.CITY, batched=True, alone=True)
def expire_pending(op: Op) -> dict[str, Any]:
    """Sweep: expire every hold whose timeout has passed by the injected clock.

    Through the group-commit writer, but alone (`alone=True`): a sweep of up to 10,000 holds would make the
    payments of its batch wait for it, and rerun with it on a conflict. Run by the writer between two
    batches it competes with none of them: on PostgreSQL, run beside them, its one SERIALIZABLE
    transaction over many accounts conflicted with the batches touching the same accounts (both retried);
    on SQLite it queued for the write lock behind them."""
    n = ledger.expire_due(op, limit=10_000)
    op.audit("sweep", "pending_transfers", expired=n)
    return {"expired": n}


# ---------------------------------------------------------------- pension credit (system)


def pension_transfer_id(op: Op, account_id: int, period: str) -> str | None:
    """The ledger transfer id of an account's pension for a period: one per account and period, so the
    ledger's unique transfer id refuses a second (none without a period). `account_id` is the account's
    lineage (`first_account_of_chain`): an account a replacement took over and the one that took it over are
    one account for its pensions (R10.11). Keyed with the server's secret:
    transfer ids are one namespace and a POS chooses its own (`transfer_id` on a payment), so an id anyone
    could work out (`pension-2026-11-42`) let a POS take it first and the month be refused to its pensioner."""
    if not period:
        return None
    digest = hmac.new(op.app.settings.secret_key, f"pension\x00{account_id}\x00{period}".encode(), hashlib.sha256)
    return "pension-" + digest.hexdigest()[:48]


REPLACEMENT_CHAIN = 16  # a card replaced more often than this in a row is a data error, not a person's history


def account_behind_replacement(op: Op, account: BankAccount) -> BankAccount | None:
    """The open account now behind the card that replaced this closed account's card (docs/RULES.md R10.11):
    the replacement's activation moved the old balance over and closed the old account (R6.12), so the
    person's money now lives behind the newest card of the chain (`cards.replaces_card_id`, the same person's)
    whose account is not closed. None when the card was never replaced, or every account after it is closed."""
    card_id = account.card_id
    for _ in range(REPLACEMENT_CHAIN):
        newer = op.session.scalar(select(Card).where(Card.replaces_card_id == card_id).order_by(Card.id.desc()).limit(1))
        if newer is None:
            return None
        assert newer.person_id == account.person_id  # a replacement is the same person's card (R6.1)
        found = op.session.scalar(select(BankAccount).where(BankAccount.card_id == newer.id))
        if found is not None and found.status != BankStatus.CLOSED:
            return found
        card_id = newer.id
    return None


def first_account_of_chain(op: Op, account: BankAccount) -> int:
    """The id of the first account of the replacement chain that ends at this account's card: the account a
    pension's once-per-period rule is counted on (R10.11). Activation takes the old account over (R6.12), so
    the old and the new account hold one person's one pension: a month credited to the old PAN before the
    new card's activation and to either PAN after it is one month, credited once. A card that replaced none
    (nearly every one): its own account, in one read of its card."""
    first, card_id = account.id, account.card_id
    for _ in range(REPLACEMENT_CHAIN):
        older = op.session.scalar(select(Card.replaces_card_id).where(Card.id == card_id))
        if older is None:
            break
        found = op.session.scalar(select(BankAccount.id).where(BankAccount.card_id == older))
        if found is not None:  # (with bank.keep_pan_on_replacement the old card has none: the account moved)
            first = found
        card_id = older
    return first


@operation("bank.credit_pension", roles={Role.SYSTEM}, scope=Scope.OWN, batched=True)
def credit_pension(op: Op, pan: str, amount_fen: int, period: str = "") -> dict[str, Any]:
    """From the pension payer to the card's account: a credit, accepted while lost, frozen or not yet
    activated (refused once closed). The pension payer's batch job only (`sscard account pension FILE`):
    no person's credential creates money (RULES §1: an operator manages users, terminals, banks and
    policies; session 25's probe credited 1,000,000 yuan with an operator's API token).

    Once per account and period (`pension_already_credited`): the file's Idempotency-Keys answer a run
    again only while they are kept (api.idempotency_keep_days); the same month's file run after the
    nightly sweep had removed them credited every line a second time (session 27's probe).

    A PAN whose account is closed because its card was replaced (docs/RULES.md R10.11, session 29): the
    credit goes to the account now behind the replacement card (`account_behind_replacement`), once per
    period over the old and the new account together (`first_account_of_chain`), and the answer says where (`redirected_to`, the new PAN masked); the
    payer's file still carrying the old PAN was refused `account_closed` and the month never reached the
    pensioner. A closed account with no open successor is refused as before."""
    require_fen(amount_fen)
    account = lookup.account_by_pan(op.session, pan)
    redirected_from = None
    if lifecycle.bank_status(op, account) == BankStatus.CLOSED:
        successor = account_behind_replacement(op, account)
        if successor is not None:
            redirected_from, account = account, successor
    check_bank_credit(lifecycle.bank_status(op, account))
    payer = ledger.system_account(op, "pension_payer", kind="pension_payer")
    try:
        moved = ledger.transfer(op, payer, _ledger_id(op, account), amount_fen, "pension", ref=period[:64],
                                transfer_id=pension_transfer_id(op, first_account_of_chain(op, account), period)
                                if period else None)
    except SscardError as err:
        if err.code == "transfer_exists":
            raise SscardError("pension_already_credited") from None
        raise
    redirected = {} if redirected_from is None else {"redirected_to": mask_pan(account.pan)}
    detail: dict[str, Any] = {} if redirected_from is None else {"redirected_from": mask_pan(redirected_from.pan)}
    op.audit("bank_account", account.pan, person_id=account.person_id, amount_fen=amount_fen, period=period,
             transfer_id=moved["transfer_id"], **detail)
    op.event("bank.pension_credited", account.card_id, amount_fen=amount_fen, period=period,
             transfer_id=moved["transfer_id"])
    return account_answer(op, account, moved, **redirected)


# ---------------------------------------------------------------- balance and statement


@operation("bank.balance", roles={Role.TERMINAL, Role.CARDHOLDER}, scope=Scope.OWN, keyed=False, secrets=('pin',), terminals=access.BALANCE, batched=True)
def balance_inquiry(op: Op, pan: str, pin: str) -> dict[str, Any]:
    """At an ATM or by the bank hotline: needs the PIN (so it counts toward the lockout)."""
    account = _account(op, pan)
    require_pin_kept(op, account)
    check_bank_debit(lifecycle.bank_status(op, account))  # R3.4: a lost account's balance is not shown
    check_pin(op, account, pin)
    op.audit("bank_account", account.pan, person_id=account.person_id, after="balance_shown")
    return account_answer(op, account)


@query("bank.statement", roles=BANK_STAFF | {Role.CARDHOLDER, Role.OPERATOR}, scope=Scope.OWN)
def statement(op: Op, pan: str, limit: int = 20, before_id: int | None = None) -> dict[str, Any]:
    """Balance and history, newest first; page with before_id = the last entry's id.

    As plain rows (`op.rows`: in a declared read no ORM session is made): the account with its ledger
    account's sums, when that was opened and the day of its newest transfer in one query, then its
    transfers by months (`ledger.history_by_months`) and their other sides. A read: no ledger write of
    this transaction is waiting in a book (a body that wrote would flush its book first)."""
    number = validate_pan(pan)
    found = op.rows(_STATEMENT_READ, {"pan": number})
    if not found:
        lookup.refuse_another_banks_pan(op.rows, number, op.actor)  # another bank's BIN: wrong_bank (R1.3)
        raise SscardError("account_not_found")  # (as `_account` refuses a PAN no account has)
    account = cast(BankAccount, found[0])  # its row stands in for it: the columns the answer reads
    access.require_own(op.actor, About("bank_account", account.pan, account.person_id), bank_id=account.bank_id,
                       missing="account_not_found")
    op.audit("bank_account", account.pan, person_id=account.person_id)
    limit = max(1, min(int(limit), 200))
    ledger_id = account.ledger_account_id
    read = ledger.history_by_months(op.rows, ledger_id, limit=paging.one_more(limit), before_id=before_id,
                                    opened=found[0].ledger_opened, newest=found[0].ledger_newest,
                                    out_of_order=bool(found[0].ledger_out_of_order)) if ledger_id else []
    rows, next_before_id = paging.cut(read, limit, lambda row: row.id)
    others = {r.credit_account_id if r.debit_account_id == ledger_id else r.debit_account_id for r in rows}
    names = _counterparties(op.rows, others)
    entries = []
    for r in rows:
        outgoing = r.debit_account_id == ledger_id
        other = names.get(r.credit_account_id if outgoing else r.debit_account_id, ("", "", None))
        counterparty = mask_pan(other[2] or "") if other[0] == "customer" else other[1]
        entries.append({
            "id": r.id, "transfer_id": r.transfer_id, "at": r.created_at, "code": r.code, "kind": r.kind,
            "direction": "debit" if outgoing else "credit", "amount_fen": r.amount, "amount": fen_to_yuan(r.amount),
            "counterparty": counterparty, "ref": r.ref, "timeout_at": r.timeout_at,
        })
    sums = found[0]
    b = (ledger.Balance(sums.debits_posted, sums.credits_posted, sums.debits_pending, sums.credits_pending)
         if sums.ledger_id is not None else ledger.Balance(0, 0, 0, 0)).as_dict()
    out = _answer(op, account, b)
    out.update(entries=entries, next_before_id=next_before_id,
               activation_deadline=account.activation_deadline)
    return out


def _counterparties(fetch: lookup.Rows, ids: set[int]) -> dict[int, tuple[str, str, str | None]]:
    """Ledger account id -> (kind, name, the PAN of a customer's bank account): the other sides of a
    statement's transfers in one query (`ledger.account_names` and then the customers' PANs took two)."""
    if not ids:
        return {}
    rows = fetch(_COUNTERPARTIES, {"ids": sorted(ids)})
    return {r.id: (r.kind, r.name or "", r.pan) for r in rows}


def _counterparties_statement() -> Select[Any]:
    accounts = ledger.ACCOUNTS
    return (select(accounts.c.id, accounts.c.kind, accounts.c.name, BankAccount.pan)
            .outerjoin(BankAccount, (BankAccount.id == accounts.c.bank_account_id) & (accounts.c.kind == "customer"))
            .where(accounts.c.id.in_(bindparam("ids", expanding=True))))


_COUNTERPARTIES = _counterparties_statement()  # built once (see _PREFETCH)


# ---------------------------------------------------------------- the bank PIN


@operation("bank.change_pin", roles=BANK_STAFF | {Role.TERMINAL, Role.CARDHOLDER}, scope=Scope.OWN, secrets=('old', 'new', 'new_again'), terminals=access.ATM)
def change_pin(op: Op, pan: str, old: str, new: str, new_again: str) -> dict[str, Any]:
    """At an ATM, an outlet or the bank hotline: the old PIN, then the new one twice."""
    account = _account(op, pan)
    require_pin_changeable(op, account)
    check_repeat(new, new_again)
    person = lookup.person_by_id(op.session, account.person_id)
    check_new_pin(new, person.citizen_id, person.birth_date)
    check_pin(op, account, old)
    set_pin(op, account, new)
    op.audit("bank_account", account.pan, person_id=account.person_id, after="pin_changed")
    return {"pan": mask_pan(account.pan), "changed": True}


@operation("bank.reset_pin", roles=BANK_STAFF, scope=Scope.OWN, secrets=('new', 'new_again'))
def reset_pin(op: Op, pan: str, presented_citizen_id: str, new: str, new_again: str, *,
              cardholder_in_person: bool) -> dict[str, Any]:
    """Forgotten or locked: at an outlet of the card's bank, the cardholder in person (ID checked) types a
    new PIN twice; the lock is lifted. No agent may do this."""
    _require_in_person(cardholder_in_person)
    account = _account(op, pan)
    person = lookup.person_by_id(op.session, account.person_id)
    lookup.check_presented_id(person, presented_citizen_id)
    require_pin_kept(op, account)
    check_repeat(new, new_again)
    check_new_pin(new, person.citizen_id, person.birth_date)
    was_locked = pin_lock(account).is_locked(op.now)
    set_pin(op, account, new)
    op.audit("bank_account", account.pan, person_id=person.id, after="pin_reset", was_locked=was_locked)
    return {"pan": mask_pan(account.pan), "reset": True, "was_locked": was_locked}


# ---------------------------------------------------------------- freeze, close


@operation("bank.freeze", roles={Role.BANK_SUPERVISOR}, scope=Scope.OWN)
def freeze(op: Op, pan: str, reason: str = "") -> dict[str, Any]:
    """A supervisor stops every debit (a court order, a suspected fraud); credits still arrive."""
    return _freeze_step(op, pan, "freeze", reason)


@operation("bank.unfreeze", roles={Role.BANK_SUPERVISOR}, scope=Scope.OWN)
def unfreeze(op: Op, pan: str, reason: str = "") -> dict[str, Any]:
    return _freeze_step(op, pan, "unfreeze", reason)


def _freeze_step(op: Op, pan: str, event: str, reason: str) -> dict[str, Any]:
    reason = require_reason(reason)
    account = _account(op, pan)
    before = lifecycle.bank_transition(op, account, event)
    op.audit("bank_account", account.pan, before=before, after=account.status, person_id=account.person_id,
             reason=reason)
    return {"pan": mask_pan(account.pan), "status": account.status}


CARD_ON_ITS_WAY = (SsStatus.APPLIED, SsStatus.IN_PRODUCTION, SsStatus.READY, SsStatus.SEALED)


def _require_no_replacement_under_way(op: Op, account: BankAccount) -> None:
    """RULES §6: a replacement's account and the one it replaces are one customer relationship until the new
    card is activated (activation moves the old balance over and closes the old account). Closing either
    half alone strands the new card, so a bank refuses it:
    - the new card's account, not activated, while the old card's account is open: closed, the new card could
      never be activated and the old account would never be taken over (`close_replacement_not_activated`:
      activate the new card, or close the old account first);
    - with bank.keep_pan_on_replacement, the account a card on its way will carry (the new card has no
      account of its own; this one moves to it at collection): closed, the new card would be handed over
      with a closed account (`close_account_moving_to_new_card`: close it once the new card is collected).
    Closing the old card's account while a new PAN is on its way is a bank's ordinary close: the balance is
    paid out, and the new card's activation finds nothing to take over."""
    card = op.session.get(Card, account.card_id)
    if account.status == BankStatus.NOT_ACTIVATED and card is not None and card.replaces_card_id is not None:
        old = op.session.scalar(select(BankAccount).where(BankAccount.card_id == card.replaces_card_id))
        if old is not None and old.status != BankStatus.CLOSED:
            raise SscardError("close_replacement_not_activated", old_pan=mask_pan(old.pan))
    moving_to = op.session.scalar(
        select(Card.card_number).where(Card.replaces_card_id == account.card_id, Card.ss_status.in_(CARD_ON_ITS_WAY),
                                       ~select(BankAccount.id).where(BankAccount.card_id == Card.id).exists())
        .limit(1))
    if moving_to is not None:
        raise SscardError("close_account_moving_to_new_card")


@operation("bank.close", roles=BANK_STAFF, scope=Scope.OWN)
def close(op: Op, pan: str, presented_citizen_id: str) -> dict[str, Any]:
    """At an outlet with ID: holds are released, the balance is paid out in cash from the drawer, and the
    account closes. A frozen account's balance cannot be paid out."""
    account = _account(op, pan)
    lookup.check_presented_id(lookup.person_by_id(op.session, account.person_id), presented_citizen_id)
    before = lifecycle.bank_status(op, account)
    bank_next(before, "close")  # refused before any money moves
    _require_no_replacement_under_way(op, account)
    paid = 0
    moved = None
    if account.ledger_account_id is not None:
        ledger.void_all_pending(op, account.ledger_account_id)
        paid = ledger.balance(op.session, account.ledger_account_id).posted
        if paid > 0:
            if before == BankStatus.FROZEN:
                raise SscardError("account_frozen")
            moved = ledger.transfer(op, account.ledger_account_id, _cash_account(op), paid, "close_payout",
                                    ref=op.actor.place)
        ledger.close_account(op.session, account.ledger_account_id)
    lifecycle.bank_transition(op, account, "close")
    op.audit("bank_account", account.pan, before=before, after=account.status, person_id=account.person_id,
             paid_out_fen=paid)
    return {"pan": mask_pan(account.pan), "status": account.status, "paid_out_fen": paid,
            "paid_out": fen_to_yuan(paid), "transfer_id": moved and moved["transfer_id"]}


@query("ledger.check", roles={Role.OPERATOR}, scope=Scope.CITY)
def ledger_check(op: Op) -> dict[str, Any]:
    """Recompute every ledger account from its transfers: sums match, balances add up to zero. The
    operator's: it reads the whole city's ledger, both banks' and the agency's (a bank supervisor could,
    until session 22's probe: another bank's accounts and transfers by id)."""
    return ledger.check_invariants(op.session)
