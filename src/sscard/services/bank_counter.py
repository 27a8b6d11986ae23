"""Reads for the customer at a bank counter (issue 17): who stands at the desk, their statement with its
arithmetic done once, and the slip (回单) of a cash deposit or withdrawal.

Separate from services.banking (whose money paths are being reshaped): these are queries only, built on
banking.statement's body inside one read transaction, with the names of the bank and the outlet in both
languages so an English page or slip never prints a Chinese name. Each is audited as a view of the
person's data (the account holder's full name is shown to the teller).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, TypedDict

from sqlalchemy import select

from ..core.clock import SHANGHAI, as_utc
from ..core.errors import SscardError, register_messages
from ..core.identifiers import ascii_digits, mask_pan
from ..core.roles import BANK_STAFF
from ..core.states import effective_bank_status, effective_ss_status
from ..core.txn_ref import normalize, short_ref
from ..models.foundation import AuditRecord, Bank, BankAccount, Card, Outlet, StaffUser
from . import banking, lookup
from .access import Scope
from .app import App
from .operation import Op, query

register_messages({
    "transaction_not_found": (404, "未找到该交易（请核对交易参考号）",
                              "No such transaction (check the transaction reference)"),
})

SLIP_CODES = ("deposit", "withdrawal")  # cash at the counter: the movements a slip is printed for
SEARCH_PAGES = 10  # a reference search reads at most this many pages of 200 movements back


class Names(TypedDict):
    code: str
    name: str
    name_en: str


class Customer(TypedDict):
    pan: str  # masked as a teller's screen and a slip show it
    last4: str
    holder_name: str  # in full: the teller calls the customer by it (the view is audited)
    status: str  # the bank account's state, lapsed losses read as lapsed
    card_status: str  # the card's social security side
    balance_fen: int
    available_fen: int
    activation_deadline: date | None
    bank: Names


class Line(TypedDict):
    id: int
    transfer_id: str
    ref: str  # core.txn_ref.short_ref
    at: datetime
    code: str
    kind: str
    counterparty: str
    place: str  # the ledger's ref: the outlet or terminal code the movement was made at
    posted: bool  # holds (pending, void, expire) do not move the posted balance
    debit_fen: int
    credit_fen: int
    balance_after_fen: int | None


class Statement(Customer):
    outlet: Names  # the outlet printing it
    lines: list[Line]  # newest first
    opening_fen: int  # the posted balance before the oldest line shown
    closing_fen: int
    next_before_id: int | None
    searched_ref: str  # the normalized reference searched for, or ""


class Slip(TypedDict):
    ref: str
    code: str  # deposit | withdrawal
    amount_fen: int
    at: datetime
    balance_after_fen: int | None
    holder_name: str
    pan: str
    bank: Names
    outlet: Names  # where the cash changed hands
    teller: str  # the teller's user name (柜员号) from the operation's audit record
    teller_name: str


def _names(row: Bank | Outlet | None) -> Names:
    if row is None:
        return {"code": "", "name": "", "name_en": ""}
    return {"code": row.code, "name": row.name, "name_en": row.name_en or row.name}


def _customer(op: Op, pan: str) -> tuple[Customer, BankAccount]:
    account = lookup.account_by_pan(op.session, pan, op.actor)  # another bank's card: wrong_bank
    person = lookup.person_by_id(op.session, account.person_id)
    card = op.session.get(Card, account.card_id)
    balance = banking.account_answer(op, account)
    out: Customer = {
        "pan": mask_pan(account.pan), "last4": account.pan[-4:], "holder_name": person.name,
        "status": str(effective_bank_status(account.status, account.loss_expires_at, op.now)),
        "card_status": str(effective_ss_status(card.ss_status, card.loss_expires_at, op.now)) if card else "",
        "balance_fen": balance["balance_fen"], "available_fen": balance["available_fen"],
        "activation_deadline": account.activation_deadline, "bank": _names(op.session.get(Bank, account.bank_id)),
    }
    return out, account


@query("bank_counter.customer", roles=BANK_STAFF, scope=Scope.OWN)
def customer(op: Op, pan: str) -> Customer:
    """The customer at the desk: holder's name, both sides' states, balance. Shown on every page."""
    out, account = _customer(op, pan)
    op.audit("bank_account", account.pan, person_id=account.person_id, shown="holder_name")
    return out


RECENT_MINUTES = 30
"""How far back a confirm step lists the card's deposits and withdrawals: a transaction done while its
answer was lost (a dropped connection, a reload) shows there before the teller does it again."""


class Confirmation(Customer):
    recent: list[Line]  # the card's posted deposits and withdrawals of the last RECENT_MINUTES, newest first


@query("bank_counter.confirmation", roles=BANK_STAFF, scope=Scope.OWN)
def confirmation(op: Op, pan: str) -> Confirmation:
    """What a deposit's or withdrawal's confirm step shows: the customer (as on every page) and the card's
    cash movements of the last half hour, so a second one of the same is seen before it is made (session
    22's browser probe: after a lost answer, a reload and redo paid out twice)."""
    out, account = _customer(op, pan)
    data = banking.statement.__wrapped__(op, pan, limit=20)
    since = op.now - timedelta(minutes=RECENT_MINUTES)
    recent = [line for line in lines_of(data["entries"], data["balance_fen"])
              if line["posted"] and line["code"] in ("deposit", "withdrawal") and line["at"] >= since]
    op.audit("bank_account", account.pan, person_id=account.person_id, shown="holder_name,recent")
    return {**out, "recent": recent}


def lines_of(entries: list[dict[str, Any]], balance_fen: int) -> list[Line]:
    """Entries (newest first) with the posted balance after each, worked back from `balance_fen`, the
    posted balance after the newest entry."""
    out: list[Line] = []
    balance = balance_fen
    for e in entries:
        posted = e.get("kind", "posted") in ("posted", "post")
        debit = e["amount_fen"] if e["direction"] == "debit" else 0
        credit = e["amount_fen"] if e["direction"] == "credit" else 0
        at = as_utc(e["at"] if isinstance(e["at"], datetime) else datetime.fromisoformat(str(e["at"])))
        out.append({"id": e["id"], "transfer_id": e["transfer_id"], "ref": short_ref(e["transfer_id"], at),
                    "at": at, "code": e.get("code", ""), "kind": e.get("kind", "posted"),
                    "counterparty": e.get("counterparty") or "", "place": e.get("ref") or "",
                    "posted": posted, "debit_fen": debit, "credit_fen": credit,
                    "balance_after_fen": balance if posted else None})
        if posted:
            balance -= credit - debit
    return out


def _outlet(op: Op) -> Outlet | None:
    return op.session.get(Outlet, op.actor.outlet_id) if op.actor.outlet_id else None


def _search(op: Op, pan: str, ref: str) -> tuple[list[Line], int]:
    """Lines whose reference is `ref`, reading back page by page until the reference's day is passed."""
    body = banking.statement.__wrapped__
    day = ref[:8]
    found: list[Line] = []
    before, balance = None, None
    for _ in range(SEARCH_PAGES):
        data = body(op, pan, limit=200, before_id=before)
        balance = data["balance_fen"] if balance is None else balance
        page = lines_of(data["entries"], balance)
        found += [x for x in page if x["ref"] == ref]
        for x in page:
            if x["posted"]:
                balance -= x["credit_fen"] - x["debit_fen"]
        if not data["next_before_id"] or (page and page[-1]["ref"][:8] < day):
            break
        before = data["next_before_id"]
    return found, balance or 0


@query("bank_counter.statement", roles=BANK_STAFF, scope=Scope.OWN)
def statement(op: Op, pan: str, limit: int = 50, before_id: int | None = None, ref: str = "") -> Statement:
    """The statement as the counter shows and prints it: lines with short references and the balance after
    each, opening and closing balances, and (with `ref`) only the transaction with that reference."""
    who, account = _customer(op, pan)
    searched = ""
    if ref:
        searched = normalize(ref) or ""
        if not searched:
            raise SscardError("transaction_not_found")
        lines, _ = _search(op, pan, searched)
        next_before = None
    else:
        data = banking.statement.__wrapped__(op, pan, limit=limit, before_id=before_id)
        closing = data["balance_fen"]
        if before_id is not None:  # an older page: its newest line's balance is today's minus what came since
            newer = banking.statement.__wrapped__(op, pan, limit=200, before_id=None)
            closing = _balance_before(op, pan, newer, data, before_id)
        lines = lines_of(data["entries"], closing)
        next_before = data["next_before_id"]
    moved = sum(x["credit_fen"] - x["debit_fen"] for x in lines if x["posted"])
    newest = next((x["balance_after_fen"] for x in lines if x["posted"]), None)
    closing_fen = newest if newest is not None else who["balance_fen"]
    op.audit("bank_account", account.pan, person_id=account.person_id)
    return {**who, "outlet": _names(_outlet(op)), "lines": lines, "opening_fen": closing_fen - moved,
            "closing_fen": closing_fen, "next_before_id": next_before, "searched_ref": searched}


def _balance_before(op: Op, pan: str, newest_page: dict[str, Any], page: dict[str, Any], before_id: int) -> int:
    """The posted balance just after the movement before `before_id`: today's balance less every posted
    movement since (read back in pages of 200)."""
    balance: int = newest_page["balance_fen"]
    data = newest_page
    while True:
        for e in data["entries"]:
            if e["id"] < before_id:
                return balance
            if e.get("kind", "posted") in ("posted", "post"):
                balance -= e["amount_fen"] if e["direction"] == "credit" else -e["amount_fen"]
        if not data["next_before_id"]:
            return balance
        data = banking.statement.__wrapped__(op, pan, limit=200, before_id=data["next_before_id"])


@query("bank_counter.slip", roles=BANK_STAFF, scope=Scope.OWN)
def slip(op: Op, pan: str, ref: str) -> Slip:
    """The slip of a cash deposit or withdrawal on this account, found by its short reference."""
    who, account = _customer(op, pan)
    wanted = normalize(ref)
    lines = [x for x in _search(op, pan, wanted)[0] if x["code"] in SLIP_CODES] if wanted else []
    if not lines:
        raise SscardError("transaction_not_found")
    line = lines[0]
    outlet = op.session.scalar(select(Outlet).where(Outlet.code == line["place"])) if line["place"] else None
    teller, teller_name = _teller(op, account.pan, line["transfer_id"])
    op.audit("bank_account", account.pan, person_id=account.person_id, slip=line["ref"])
    return {"ref": line["ref"], "code": line["code"], "amount_fen": line["debit_fen"] or line["credit_fen"],
            "at": line["at"], "balance_after_fen": line["balance_after_fen"], "holder_name": who["holder_name"],
            "pan": who["pan"], "bank": who["bank"], "outlet": _names(outlet), "teller": teller,
            "teller_name": teller_name}


def _teller(op: Op, pan: str, transfer_id: str) -> tuple[str, str]:
    """Who made the movement: the audit record of the deposit or withdrawal that names its transfer."""
    rows = op.session.scalars(
        select(AuditRecord).where(AuditRecord.object_id == pan,
                                  AuditRecord.operation.in_(("bank.deposit", "bank.withdraw")),
                                  AuditRecord.result == "ok")
        .order_by(AuditRecord.id.desc()).limit(500)).all()
    for row in rows:
        if (row.detail or {}).get("transfer_id") == transfer_id:
            if row.actor_kind == "staff" and ascii_digits(row.actor_id):
                user = op.session.get(StaffUser, int(row.actor_id))
                if user is not None:
                    return user.username, user.display_name
            return row.actor_id, ""
    return "", ""


def local_day(at: datetime) -> date:
    return as_utc(at).astimezone(SHANGHAI).date()


def outlets(app: App) -> dict[str, Names]:
    """Every outlet by code with its names (no person's data: not audited); read once per app."""
    cached = app.extras.get("bank_counter.outlets")
    if cached is None:
        cached = app.db.run(lambda s: {o.code: _names(o) for o in s.scalars(select(Outlet)).all()})
        app.extras["bank_counter.outlets"] = cached
    return cached
