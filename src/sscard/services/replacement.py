"""Replacement (补卡) and renewal (换卡) at a service-center window (RULES §6).

Reasons: `lost` (needs a formal SS loss, which the clerk may record in the same visit), `damaged`,
`expiring` (from renewal.window_days before expiry), `data_change`, `bank_change` (a card of another
bank). The production fee fee.replacement_fen is due for lost/damaged/bank_change, 0 otherwise; it
is paid in cash or by card into the agency fee income account, with a numbered receipt, in the same
transaction as the application (or waived by a center supervisor, with a reason).

The new card comes from services.enrolment.create_card in `applied` (new card number and
identification code; a new PAN unless bank.keep_pan_on_replacement, when the old bank account moves
to the new card at collection). It goes through a production batch, is made ready at the center the
applicant chose, and is collected with an ID check (services.cards.collect_card, which cancels the
old card). An agent with a power of attorney may apply, pay, collect and report a formal loss.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NotRequired, TypedDict, cast

from sqlalchemy import ColumnElement, Insert, Table, bindparam, exists, func, insert, select, update
from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from ..core import labels
from ..core.clock import local_pair, shanghai_day
from ..core.errors import About, SscardError, register_messages
from ..core.identifiers import mask_card_number, mask_citizen_id, mask_name, validate_card_number
from ..core.money import format_yuan
from ..core.policy import Policy
from ..core.reversal import REPLACEMENTS
from ..core.roles import CENTER_STAFF, Role
from ..core.states import SS_LOST, SsStatus
from ..db import execute_many
from ..i18n import label_pair
from ..models.counter import FeeReceipt, PowerOfAttorney, ReplacementApplication, Reversal
from ..models.foundation import AuditRecord, Bank, BankAccount, Card, Person, ServiceCenter
from . import access, attorney, banking, batching, ledger, lookup, loss, outbox
from . import card_lifecycle as lifecycle
from .access import Scope
from .book import TRANSFERS, per_transaction
from .book import flush as flush_book
from .enrolment import TAKEN_NUMBERS, card_number_candidates, create_card, new_card_numbers, numbers_for_batch
from .operation import Op, Request, operation, query

register_messages({
    "formal_loss_required": (
        409,
        "因遗失补卡须先办理正式挂失",
        "A replacement for a lost card needs a formal loss first",
    ),
    "renewal_too_early": (
        409,
        "距卡片有效期截止日超过规定天数，暂不能换卡（{day}起可办理）",
        "Too early to renew: renewal is possible from {day}",
    ),
    "replacement_pending": (409, "此卡已在办理补换卡", "A replacement for this card is already under way"),
    "replacement_not_allowed": (
        409,
        "此卡当前状态（{state}）不能办理补换卡",
        "A card in this state ({state}) cannot be replaced",
    ),
    "fee_payment_required": (
        409,
        "须缴纳工本费{amount}元（现金或刷卡），或由主管减免",
        "The production fee of {amount} yuan must be paid (cash or card) or waived by a supervisor",
    ),
    "waive_reason_required": (422, "减免工本费须填写原因", "A fee waiver needs a reason"),
})

# (Chinese, English) of each reason a replacement may give and each way its fee may be settled: the labels
# of core.labels ("first" is a first card, not a replacement), English from the catalog.
REASONS: dict[str, tuple[str, str]] = {r: label_pair("reason", r) for r in labels.REASON if r != "first"}
FEE_REASONS = frozenset({"lost", "damaged", "bank_change"})
METHODS: dict[str, tuple[str, str]] = {m: label_pair("fee_method", m) for m in labels.FEE_METHOD}
FEE_INCOME = "agency_fee_income"


class Applied(TypedDict):
    """A replacement applied for: the window's confirmation and the API's answer."""

    application_id: int
    card_number: str
    ss_status: str
    reason: str
    old_card_number: str
    old_card_status: str
    formal_loss_recorded: bool
    fee_fen: int
    fee_status: str  # none | paid | waived
    fee_method: str | None  # cash | card | waived
    receipt_no: str | None
    bank: str  # the new card's bank code
    pan_kept: bool
    pan_last4: str
    collect_center: str  # the code of the center the applicant chose
    reminder: NotRequired[loss.Reminder]  # only when the formal loss was recorded in this visit


def fee_due(policy: Policy, reason: str) -> int:
    """The fee a replacement for this reason takes (the window's confirm step names it before it is taken)."""
    return policy.fee.replacement_fen if reason in FEE_REASONS else 0


def fee_for(op: Op, reason: str) -> int:
    return fee_due(op.policy, reason)


def center_cash_account(op: Op, center: ServiceCenter) -> int:
    return ledger.system_account(op, f"cash:center-{center.code}", kind="cash_drawer")


def _receipt_no(op: Op, center: ServiceCenter, application_id: int) -> str:
    """Numbered by the application's id, which the database hands out: unique even under concurrency."""
    return f"F{op.app.clock.today():%Y%m%d}{center.code[-3:]}{application_id:06d}"


def _new_card_keeping_pan(op: Op, person: Person, bank: Bank, center_id: int, reason: str, old: Card,
                          ahead: _Old | None) -> Card:
    """bank.keep_pan_on_replacement: the new card has no bank account of its own; the old one's moves to
    it at collection (card.collect), so the PAN, the balance and the account state carry over."""
    number, code, _ = ahead.numbers if ahead else new_card_numbers(op, person.area_code, bank, pan="kept")
    card = Card(person_id=person.id, card_number=number, ident_code=code, bank_id=bank.id,
                ss_status=SsStatus.APPLIED, reason=reason, replaces_card_id=old.id,
                spec_version=op.policy.card.spec_version, apply_center_id=center_id, applied_at=op.now,
                status_changed_at=op.now)
    if ahead:
        card.id = ahead.ids[0]  # added and flushed by the caller
    else:
        op.session.add(card)
        op.session.flush()
    return card


def _take_fee(op: Op, center: ServiceCenter, card_debit: int | None, amount: int,
              method: str) -> tuple[str, date]:
    """Cash from the center's cash drawer, or a card payment from the old card's account (its state and
    PIN already checked), into the agency's fee income account (ledger). Returns the transfer's id and its
    day (the month partition it is in: a read of it by id alone probes every month)."""
    income = ledger.system_account(op, FEE_INCOME)
    debit = center_cash_account(op, center) if method == "cash" else card_debit
    assert debit is not None  # paid by card: the caller set card_debit (banking.debit_ready)
    moved = ledger.transfer(op, debit, income, amount, "replacement_fee",
                            limit=("payment", op.policy.limits.payment_per_day_fen) if method == "card" else None)
    return moved["transfer_id"], shanghai_day(moved["at"])


@dataclass
class _Admitted:
    """What the checks before anything is written found: the replacement may go ahead as asked."""

    poa: PowerOfAttorney | None
    center: ServiceCenter
    collect_center: ServiceCenter
    bank: Bank
    needs_formal_loss: bool
    fee: int
    method: str | None
    old_account: BankAccount | None


def _admit(op: Op, old: Card, person: Person, status: SsStatus, reason: str, presented_citizen_id: str, *,
           pending: bool, payment: str | None, waive_reason: str | None, collect_center_code: str | None,
           bank_code: str | None, record_formal_loss: bool, attorney_id: int | None,
           agent_citizen_id: str | None, batch: _Batch | None = None, ahead: _Old | None = None) -> _Admitted:
    """Every rule a replacement must pass before anything is written (RULES §6), in the order it is
    refused: the application (`_apply`) and its check before the window's fee step (`check`) both run
    this, so the fee is never asked for a replacement that would be refused once confirmed. (Both refuse an
    unknown reason first, before any read.)"""
    poa = attorney.agent_for(op, attorney_id, agent_citizen_id, person.id, "replacement.apply")
    lookup.check_presented_id(person, presented_citizen_id)
    center = lookup.own_center(op.session, op.actor)
    collect_center = center
    if collect_center_code:
        found = batch.centers.get(collect_center_code) if batch else None
        collect_center = found or lookup.center_by_code(op.session, collect_center_code)
    if status in (SsStatus.APPLIED, SsStatus.IN_PRODUCTION, SsStatus.READY, SsStatus.SEALED, SsStatus.CANCELLED):
        raise SscardError("replacement_not_allowed", state=str(status))
    if pending:
        raise SscardError("replacement_pending")
    today = op.app.clock.today()
    needs_formal_loss = False
    if reason == "lost":
        if status != SsStatus.FORMAL_LOSS:
            if not record_formal_loss:
                raise SscardError("formal_loss_required")
            if poa is not None:
                attorney.require_valid(op, poa.id, person.id, "ss_loss.report_formal")
            needs_formal_loss = True
    elif status in SS_LOST:
        raise SscardError("card_lost")
    if reason == "expiring":
        opens = (old.expiry_date - timedelta(days=op.policy.renewal.window_days)) if old.expiry_date else None
        if opens is not None and today < opens:
            raise SscardError("renewal_too_early", day=local_pair(opens))
    bank = op.session.get(Bank, old.bank_id)
    assert bank is not None  # cards.bank_id is a NOT NULL foreign key
    if reason == "bank_change":
        if not bank_code:
            raise SscardError("invalid_request")
        bank = lookup.bank_by_code(op.session, bank_code)
        if bank.id == old.bank_id:
            raise SscardError("invalid_request")
    fee = fee_for(op, reason)
    method = None
    if fee > 0:
        if waive_reason is not None:
            if op.actor.role is not Role.CENTER_SUPERVISOR:
                raise SscardError("forbidden")
            if not waive_reason.strip():
                raise SscardError("waive_reason_required")
            method = "waived"
        elif payment in ("cash", "card"):
            method = payment
            if poa is not None:
                attorney.require_valid(op, poa.id, person.id, "replacement.pay_fee")
        else:
            raise SscardError("fee_payment_required", amount=format_yuan(fee))
    old_account = ahead.account if ahead else op.session.scalar(select(BankAccount).where(BankAccount.card_id == old.id))
    if method == "card":
        if reason == "lost":
            raise SscardError("card_lost")  # the lost card is not at hand to pay with
        if old_account is None:
            raise SscardError("account_not_found")
    return _Admitted(poa, center, collect_center, bank, needs_formal_loss, fee, method, old_account)


def _apply(op: Op, card_number: str, reason: str, presented_citizen_id: str, *, payment: str | None,
           waive_reason: str | None, pin: str | None = None, collect_center_code: str | None, bank_code: str | None,
           record_formal_loss: bool, attorney_id: int | None, agent_citizen_id: str | None) -> Applied:
    if reason not in REASONS:
        raise SscardError("invalid_request")
    batch = _read_ahead(op)  # a group-committed batch's read-ahead, else None
    ahead = batch.cards.get(card_number) if batch else None
    if ahead:
        old, person = ahead.card, ahead.person  # the person read FOR UPDATE with the batch's cards
    else:
        old = lookup.card_by_number(op.session, card_number)
        person = lookup.person_by_id(op.session, old.person_id, lock=True)
    lifecycle.refresh_ss(op, old)
    pending = (ahead.pending or old.id in batch.replaced) if ahead and batch else loss.replacement_applied(op, old)
    ok = _admit(op, old, person, SsStatus(old.ss_status), reason, presented_citizen_id, pending=pending,
                payment=payment, waive_reason=waive_reason, collect_center_code=collect_center_code,
                bank_code=bank_code, record_formal_loss=record_formal_loss, attorney_id=attorney_id,
                agent_citizen_id=agent_citizen_id, batch=batch, ahead=ahead)
    poa, center, collect_center, bank = ok.poa, ok.center, ok.collect_center, ok.bank
    needs_formal_loss, fee, method, old_account = ok.needs_formal_loss, ok.fee, ok.method, ok.old_account
    card_debit = None
    if method == "card":
        # The PIN on the window's PIN pad, checked before anything else is written: a wrong PIN's
        # counter is committed with the refusal, and nothing of the application is.
        assert old_account is not None  # _admit refused account_not_found
        card_debit = banking.debit_ready(op, old_account, pin or "")
    formal_loss_recorded = False
    if needs_formal_loss:
        lifecycle.ss_transition(op, old, "report_formal_loss")
        formal_loss_recorded = True
    keep_pan = op.policy.bank.keep_pan_on_replacement and bank.id == old.bank_id and old_account is not None
    new_rows: list[Card | BankAccount | ReplacementApplication | FeeReceipt] = []  # a batch's new rows, in the order of their foreign keys, flushed at the end
    if keep_pan:
        new = _new_card_keeping_pan(op, person, bank, center.id, reason, old, ahead)
        assert old_account is not None  # keep_pan requires it
        pan = old_account.pan
        new_rows.append(new)
    else:
        # the numbers reserved for the batch have a PAN of the old card's bank
        new, account = create_card(op, person, bank, center.id, reason, replaces=old,
                                   ids=ahead.ids[:2] if ahead else None,
                                   numbers=ahead.numbers if ahead and bank.id == old.bank_id else None)
        pan = account.pan
        new_rows += [new, account]
    application = ReplacementApplication(
        person_id=person.id, old_card_id=old.id, new_card_id=new.id, reason=reason, fee_fen=fee,
        fee_status={None: "none", "waived": "waived"}.get(method, "paid"), apply_center_id=center.id,
        collect_center_id=collect_center.id, attorney_id=poa.id if poa else None, staff_id=str(op.actor.id),
        created_at=op.now,
    )
    if ahead:
        application.id = ahead.ids[2]
        new_rows.append(application)
    else:
        op.session.add(application)
        op.session.flush()
    receipt = None
    if method is not None:
        transfer = _take_fee(op, center, card_debit, fee, method) if method != "waived" else None
        # in a batch the transfer's row is written when the batch commits: the receipt is linked to it then
        transfer_id = ledger.row_id(op.session, *transfer) if transfer and not ahead else None
        receipt = FeeReceipt(
            receipt_no=_receipt_no(op, center, application.id), application_id=application.id, person_id=person.id,
            center_id=center.id, amount_fen=0 if method == "waived" else fee, due_fen=fee, method=method,
            staff_id=str(op.actor.id), staff_name=op.actor.name[:32],
            waived_by=str(op.actor.id) if method == "waived" else None,
            waive_reason=(waive_reason or "").strip()[:128], attorney_id=poa.id if poa else None,
            ledger_transfer_id=transfer_id, paid_at=op.now,
        )
        if ahead:
            receipt.id = ahead.ids[3]
            new_rows.append(receipt)
            if transfer:
                op.session.info.setdefault(_FEE_LINKS, []).append(
                    {"rid": receipt.id, "tid": transfer[0], "day": transfer[1]})
        else:
            op.session.add(receipt)
            op.session.flush()
    if ahead and batch:
        _insert_in_order(op, new_rows)
        batch.replaced.add(old.id)
    # the new card's bank named here: in a batch its row is written after this record (the trigger would
    # find no card, and that bank's supervisor no record of the account it opens)
    op.audit("card", new.card_number, before="", after=new.ss_status, person_id=person.id, object_bank_id=bank.id,
             on_behalf_of=person.id if poa else None, attorney_id=poa.id if poa else None,
             reason=reason, old_card=old.card_number, old_card_status=old.ss_status, fee_fen=fee,
             fee_method=method or "none", receipt_no=receipt.receipt_no if receipt else None,
             waive_reason=(waive_reason or "").strip() or None, formal_loss_recorded=formal_loss_recorded,
             pan_kept=keep_pan, collect_center=collect_center.code)
    out: Applied = {
        "application_id": application.id,
        "card_number": new.card_number,
        "ss_status": new.ss_status,
        "reason": reason,
        "old_card_number": old.card_number,
        "old_card_status": old.ss_status,
        "formal_loss_recorded": formal_loss_recorded,
        "fee_fen": fee,
        "fee_status": application.fee_status,
        "fee_method": method,
        "receipt_no": receipt.receipt_no if receipt else None,
        "bank": bank.code,
        "pan_kept": keep_pan,
        "pan_last4": pan[-4:],
        "collect_center": collect_center.code,
    }
    if formal_loss_recorded:
        out["reminder"] = loss.bank_reminder(op, old)  # the old card's account, as it stands
    return out


@operation("replacement.apply", roles=CENTER_STAFF, scope=Scope.OWN, secrets=('pin',), batched=True)
def apply(op: Op, card_number: str, reason: str, presented_citizen_id: str, payment: str | None = None,
          collect_center_code: str | None = None, bank_code: str | None = None, record_formal_loss: bool = False,
          attorney_id: int | None = None, agent_citizen_id: str | None = None, pin: str | None = None) -> Applied:
    """Apply for a replacement or renewal and, when a fee is due, take it (cash, or card with the bank
    PIN typed on the window's PIN pad) with a numbered receipt."""
    return _apply(op, card_number, reason, presented_citizen_id, payment=payment, waive_reason=None, pin=pin,
                  collect_center_code=collect_center_code, bank_code=bank_code,
                  record_formal_loss=record_formal_loss, attorney_id=attorney_id, agent_citizen_id=agent_citizen_id)


@operation("replacement.apply_waived", roles={Role.CENTER_SUPERVISOR}, scope=Scope.OWN, batched=True)
def apply_waived(op: Op, card_number: str, reason: str, presented_citizen_id: str, waive_reason: str,
                 collect_center_code: str | None = None, bank_code: str | None = None,
                 record_formal_loss: bool = False, attorney_id: int | None = None,
                 agent_citizen_id: str | None = None) -> Applied:
    """The same, with the fee waived by a center supervisor, who gives the reason."""
    return _apply(op, card_number, reason, presented_citizen_id, payment=None, waive_reason=waive_reason or "",
                  collect_center_code=collect_center_code, bank_code=bank_code,
                  record_formal_loss=record_formal_loss, attorney_id=attorney_id, agent_citizen_id=agent_citizen_id)


@query("replacement.check", roles=CENTER_STAFF, scope=Scope.OWN)
def check(op: Op, card_number: str, reason: str, presented_citizen_id: str, payment: str | None = None,
          collect_center_code: str | None = None, bank_code: str | None = None, record_formal_loss: bool = False,
          attorney_id: int | None = None, agent_citizen_id: str | None = None,
          waive_reason: str | None = None) -> dict[str, Any]:
    """Whether `replacement.apply` (or, with `waive_reason`, `apply_waived`) would be admitted as asked, by
    the same checks it runs first (`_admit`), writing nothing: the window asks this before its fee step,
    so a refusal (a lost card with no formal loss, a renewal too early) comes before the fee, not after
    it was confirmed. The bank PIN is not checked here (the fee step is where it is typed)."""
    if reason not in REASONS:
        raise SscardError("invalid_request")
    old = lookup.card_by_number(op.session, card_number)
    person = lookup.person_by_id(op.session, old.person_id)
    status = SsStatus(lifecycle.ss_status(op, old))
    ok = _admit(op, old, person, status, reason, presented_citizen_id, pending=loss.replacement_applied(op, old),
                payment=payment, waive_reason=waive_reason, collect_center_code=collect_center_code,
                bank_code=bank_code, record_formal_loss=record_formal_loss, attorney_id=attorney_id,
                agent_citizen_id=agent_citizen_id)
    op.audit("card", old.card_number, person_id=person.id)
    return {"fee_fen": ok.fee, "fee_method": ok.method, "formal_loss_needed": ok.needs_formal_loss}


# ---------------------------------------------------------------- reading: receipts, a person's cards, the queue


def receipt_view(op: Op, r: FeeReceipt) -> dict[str, Any]:
    app_ = op.session.get(ReplacementApplication, r.application_id)
    person = op.session.get(Person, r.person_id)
    center = op.session.get(ServiceCenter, r.center_id)
    assert app_ is not None and person is not None and center is not None  # fee_receipts: NOT NULL foreign keys
    new = op.session.get(Card, app_.new_card_id)
    old = op.session.get(Card, app_.old_card_id)
    assert new is not None and old is not None  # replacement_applications: NOT NULL foreign keys
    poa = op.session.get(PowerOfAttorney, r.attorney_id) if r.attorney_id else None
    return {
        "receipt_no": r.receipt_no,
        "paid_at": r.paid_at,
        "center": {"code": center.code, "name": center.name},
        "person": {"name": mask_name(person.name), "citizen_id": mask_citizen_id(person.citizen_id)},
        "reason": app_.reason,
        "new_card_number": mask_card_number(new.card_number),
        "old_card_number": mask_card_number(old.card_number),
        "amount_fen": r.amount_fen,
        "due_fen": r.due_fen,
        "method": r.method,
        "staff": r.staff_name,
        "waive_reason": r.waive_reason,
        "agent": {"name": mask_name(poa.agent_name), "citizen_id": mask_citizen_id(poa.agent_citizen_id)}
        if poa else None,
        "ledger_transfer_id": r.ledger_transfer_id,
        "refund": _refund_of(op, r, new),
    }


def refund_receipt_no(receipt_no: str) -> str:
    """The number of a fee's refund (R6.15): the receipt's own, with `R` (the receipt is never changed)."""
    return receipt_no + "R"


def _refund_of(op: Op, r: FeeReceipt, new: Card) -> dict[str, Any] | None:
    """The refund of a fee whose replacement a supervisor reversed (services.reversal, RULES R6.15): the
    receipt itself is never changed, so a reprint says it here (its refund's number, the receipt's with `R`,
    and when); None while the fee stands, and for a waived fee (nothing was paid)."""
    if r.method == "waived":
        return None
    at = op.session.scalar(select(Reversal.reversed_at).join(AuditRecord, AuditRecord.id == Reversal.audit_record_id)
                           .where(Reversal.operation.in_(sorted(REPLACEMENTS)), AuditRecord.object_type == "card",
                                  AuditRecord.object_id == new.card_number))
    return {"refund_receipt_no": refund_receipt_no(r.receipt_no), "refunded_at": at} if at is not None else None


@query("replacement.receipt", roles=CENTER_STAFF, scope=Scope.CENTER)
def receipt(op: Op, receipt_no: str) -> dict[str, Any]:
    r = op.session.scalar(select(FeeReceipt).where(FeeReceipt.receipt_no == str(receipt_no)[:24]))
    if r is None:
        raise SscardError("not_found", what=("收据", "receipt"))
    access.require_center(op.actor, r.center_id, about=About("fee_receipt", r.receipt_no, r.person_id))
    op.audit("fee_receipt", r.receipt_no, person_id=r.person_id)
    return receipt_view(op, r)




# ---------------------------------------------------------------- a batch's read-ahead


_AHEAD = "sscard.replacement.read_ahead"  # session.info: _Batch
_FEE_LINKS = "sscard.replacement.fee_links"  # session.info: receipts to link to their fee transfers at commit
_APPLYING = ("replacement.apply", "replacement.apply_waived")
_NEW = aliased(Card)
_TABLES = ("cards", "bank_accounts", "replacement_applications", "fee_receipts")
_RECEIPTS = cast(Table, FeeReceipt.__table__)
_LINK_FEE = update(_RECEIPTS).where(_RECEIPTS.c.id == bindparam("rid")).values(  # `day`: its month's partition only
    ledger_transfer_id=select(TRANSFERS.c.id).where(TRANSFERS.c.transfer_id == bindparam("tid"),
                                                    TRANSFERS.c.day == bindparam("day")).scalar_subquery())


@dataclass(slots=True)
class _Old:
    """A card a replacement of the batch names, read ahead with what the application needs of it."""

    card: Card
    person: Person
    bank: Bank
    account: BankAccount | None
    pending: bool  # a replacement of it is under way (loss.replacement_applied), as the batch began
    ids: tuple[int, int, int, int]  # reserved row ids: new card, its bank account, application, receipt
    numbers: tuple[str, str, str]  # a new card number (checked unused), identification code and PAN at its bank


@dataclass(slots=True)
class _Batch:
    cards: dict[str, _Old]  # by the card number as the request gave it
    centers: dict[str, ServiceCenter]  # by code
    replaced: set[int] = field(default_factory=set)  # old cards replaced by an earlier request of the batch
    held: list[object] = field(default_factory=list)  # the identity map holds objects weakly


def _insert_in_order(op: Op, rows: list[Card | BankAccount | ReplacementApplication | FeeReceipt]) -> None:
    """A batch's new rows of one application (their ids reserved), kept in the batch's book of new rows
    and written when the batch commits, in its commit's round trip (`_NewRows`): sent here, they cost the
    writer a round trip per application, with every caller of the batch waiting behind it. The objects
    stay out of the session; the events that its flush hook would queue for a new card and its account
    are queued here, the same."""
    new_rows_of(op.session).add(rows)
    # the events' card facts as written here (the new card's own bank account, if it has one: none when
    # the PAN is kept): no batched operation changes a card applied for in its batch, so they are the
    # commit's, and the commit need not read them back
    card = next(row for row in rows if isinstance(row, Card))
    account = next((row for row in rows if isinstance(row, BankAccount)), None)
    fact = outbox.Fact(card.id, card.card_number, card.bank_id, card.ready_center_id, card.apply_center_id,
                       account.pan if account is not None else None)
    for row in rows:
        if isinstance(row, Card):
            outbox.queue(op.session, "card.ss_status_changed", row.id, after=str(row.ss_status), fact=fact,
                         reason=row.reason)
        elif isinstance(row, BankAccount):
            assert row.card_id == card.id  # the new card's account
            outbox.queue(op.session, "card.bank_status_changed", row.card_id, after=str(row.status), fact=fact)


class _NewRows:
    """A batch's new rows of its replacement applications, by table, written at its commit: each table
    after those it refers to, a table's rows in one statement (Core inserts of the objects' values, over
    the columns' defaults as the ORM would apply them: its unit of work cost more than the statements).
    An area book (services.batching): the batch counts its `changes` (an application refused after it
    added rows cannot stay in the batch) and writes it in the commit's pipeline. The rows refer only to
    rows already there (the person, the old card, the centers) or to rows of this book's earlier tables;
    the fee receipts' links to their transfers are written after them (`_link_fees`, before commit)."""

    ORDER = (Card, BankAccount, ReplacementApplication, FeeReceipt)

    def __init__(self, session: Session):
        self.session = session
        self.changes = 0
        self._rows: dict[type, list[dict[str, Any]]] = {cls: [] for cls in self.ORDER}

    def add(self, rows: list[Card | BankAccount | ReplacementApplication | FeeReceipt]) -> None:
        for row in rows:
            table = cast(Table, type(row).__table__)
            _insert, defaults = _insert_of(table)
            # the values set, over the columns' defaults (None: the default)
            self._rows[type(row)].append({**defaults, **{key: value for key, value in vars(row).items()
                                                         if key in table.c and not (value is None and key in defaults)}})
        self.changes += 1

    def flush(self) -> None:
        if not self.changes:
            return
        conn = self.session.connection()
        for cls in self.ORDER:
            by_keys: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for values in self._rows[cls]:
                by_keys.setdefault(tuple(values), []).append(values)
            for same in by_keys.values():  # (one statement per set of columns given: usually one)
                execute_many(conn, _insert_of(cast(Table, cls.__table__))[0], same)
        self.changes = 0
        self._rows = {cls: [] for cls in self.ORDER}


_NEW_ROWS = "sscard.replacement.new_rows"  # session.info: _NewRows
new_rows_of = per_transaction(_NEW_ROWS, _NewRows, _NewRows.flush)


@batching.area_book
def _new_rows(session: Session) -> _NewRows | None:
    """For a group-committed batch: its book of new rows, if an application has made one."""
    found: _NewRows | None = session.info.get(_NEW_ROWS)
    return found


_INSERTS: dict[str, tuple[Insert, dict[str, Any]]] = {}


def _insert_of(table: Table) -> tuple[Insert, dict[str, Any]]:
    """The table's insert (no RETURNING: sent in a pipeline) and its columns' scalar defaults (given with
    the values, the insert takes db.execute_many's fast path: no default left for SQLAlchemy to compute)."""
    found = _INSERTS.get(table.name)
    if found is None:
        defaults = {c.key: c.default.arg for c in table.c if isinstance(c.default, ScalarElementColumnDefault)}
        found = _INSERTS[table.name] = (insert(table).inline(), defaults)
    return found


def _read_ahead(op: Op) -> _Batch | None:
    found: _Batch | None = op.session.info.get(_AHEAD)
    return found


def _reserved_ids(postgres: bool) -> list[ColumnElement[Any]]:
    """Columns giving each row of the read-ahead its new rows' ids: on PostgreSQL from the tables'
    sequences; on SQLite the tables' highest ids (the batch holds the write lock: counted on from there)."""
    if postgres:
        return [func.nextval(func.pg_get_serial_sequence(t, "id")).label(f"id_{t}") for t in _TABLES]
    columns = (Card.id, BankAccount.id, ReplacementApplication.id, FeeReceipt.id)
    return [select(func.coalesce(func.max(c), 0)).scalar_subquery().label(f"id_{name}")
            for c, name in zip(columns, _TABLES, strict=True)]


_ENTITIES: tuple[type[Any], ...] = (Card, Person, Bank, BankAccount)  # the read-ahead's objects, in its columns' order
_ATTRS = tuple(tuple(sa_inspect(cls).column_attrs) for cls in _ENTITIES)  # the query's columns and `_objects`' keys


@functools.cache
def _old_cards(postgres: bool) -> Any:
    """The read-ahead's one query, built once per dialect (building it for every batch, with its subqueries,
    was much of the read-ahead's time in the writer): the cards named in `:numbers` with their holders
    (FOR UPDATE), banks and bank accounts (the columns of each, in `_ATTRS`' order: `_objects`), whether
    a replacement is under way, and ids for the new rows. Plain columns, sent with the batch's other reads."""
    pending = exists().where(_NEW.replaces_card_id == Card.id, _NEW.ss_status != SsStatus.CANCELLED)
    columns = [a.columns[0] for attrs in _ATTRS for a in attrs]
    return (
        select(*columns, pending.label("pending"), *_reserved_ids(postgres))
        .join(Person, Person.id == Card.person_id)
        .join(Bank, Bank.id == Card.bank_id)
        .outerjoin(BankAccount, BankAccount.card_id == Card.id)
        .where(Card.card_number.in_(bindparam("numbers", expanding=True)))
        .order_by(Card.id)
        .with_for_update(of=cast(Table, Person.__table__))
    )


def _objects(session: Session, row: Any) -> tuple[Card, Person, Bank, BankAccount | None]:
    """A read-ahead row's card, holder, bank and bank account (None: the card has none) as the session's
    persistent objects, as if the ORM had loaded them (lookup.attach: no query)."""
    out: list[Any] = []
    at = 0
    for cls, attrs in zip(_ENTITIES, _ATTRS, strict=True):
        values = {a.key: value for a, value in zip(attrs, row[at:at + len(attrs)], strict=True)}
        at += len(attrs)
        out.append(None if values["id"] is None else lookup.attach(session, cls, values))
    return out[0], out[1], out[2], out[3]


@batching.reads_ahead
def _prefetch(session: Session, requests: list[Request | batching.Viewed], now: datetime) -> batching.Ahead | None:
    """For a group-committed batch of replacement applications, with the batch's other reads (one round
    trip): the old cards with their holders (FOR UPDATE, as each application locks its person), banks
    and bank accounts, whether a replacement is under way, and row ids for the new rows; and which of
    the card numbers drawn for the new cards are taken (enrolment.numbers_for_batch). Then the clerks'
    and the collection centers (kept per engine: no query once read). Two reads for the batch instead of
    a dozen statements per application; the new rows are inserted with its commit."""
    mine = [r for r in requests if isinstance(r, Request) and r.name in _APPLYING]
    if not mine:
        return None
    numbers: dict[str, str] = {}
    for r in mine:
        raw = r.argument("card_number")
        if isinstance(raw, str):
            try:
                numbers[raw] = validate_card_number(raw)
            except SscardError:
                continue  # refused by the application itself, as always
    if not numbers:
        return None
    postgres = session.get_bind().dialect.name == "postgresql"
    old = sorted(set(numbers.values()))
    candidates = card_number_candidates(len(old))
    reads = [(_old_cards(postgres), {"numbers": old}), (TAKEN_NUMBERS, {"numbers": candidates})]
    return batching.Ahead(reads, lambda rows: _take_ahead(session, mine, numbers, postgres, candidates, *rows))


def _take_ahead(session: Session, mine: list[Request], numbers: dict[str, str], postgres: bool,
                candidates: list[str], rows: list[Any], taken: list[Any]) -> None:
    found = [_objects(session, row) for row in rows]
    fresh = numbers_for_batch(session, [(person.area_code, bank.bin) for _c, person, bank, _a in found],
                              candidates, {t[0] for t in taken})
    by_number: dict[str, _Old] = {}
    for i, (row, (card, person, bank, account)) in enumerate(zip(rows, found, strict=True)):
        ids = tuple(getattr(row, f"id_{t}") + (0 if postgres else i + 1) for t in _TABLES)
        by_number[card.card_number] = _Old(card, person, bank, account, bool(row.pending),
                                           cast(tuple[int, int, int, int], ids), fresh[i])
    center_ids = {r.actor.center_id for r in mine if r.actor.center_id is not None}
    codes = {c for r in mine if isinstance(c := r.argument("collect_center_code"), str)}
    centers = lookup.centers(session, center_ids, codes)  # kept per engine: no query once read
    batch = _Batch({raw: by_number[n] for raw, n in numbers.items() if n in by_number},
                   {c.code: c for c in centers})
    batch.held += [obj for objects in found for obj in objects if obj is not None]
    batch.held += centers
    session.info[_AHEAD] = batch


@sa_event.listens_for(Session, "before_commit")
def _link_fees(session: Session) -> None:
    """A batch's fee receipts get their ledger transfer's row id once the book has written the transfers
    (services.book flushes it at commit too: registered before this, it runs first)."""
    if session.in_nested_transaction() or not session.info.get(_FEE_LINKS):
        return
    flush_book(session)
    execute_many(session.connection(), _LINK_FEE, session.info.pop(_FEE_LINKS))
