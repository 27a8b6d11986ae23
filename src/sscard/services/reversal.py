"""A center supervisor's reversal of a clerk's action (RULES §1; what and when: core.reversal).

The supervisor names the action by its audit record (the console lists today's, `candidates`); the
reversal is one operation: the object put back through its own state machine, a `reversals` row (unique
per record: an action is reversed once), and one audit record naming the reversed record, its clerk and
the supervisor's reason. The clerk's record itself is never touched (the log is append-only).

A replacement application (docs/RULES.md R6.15) is reversed the same way: its new card cancelled (and the new
account closed), the fee refunded by a new ledger transfer the other way (`_refund_fee`), the receipt kept as
it was and its refund numbered after it (`refund_receipt_no`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..core import reversal as rules
from ..core.errors import SscardError
from ..core.identifiers import ascii_digits, mask_card_number
from ..core.override import require_reason
from ..core.roles import Role
from ..core.states import BankStatus, SsStatus, takes_credit
from ..models.counter import FeeReceipt, PowerOfAttorney, ReplacementApplication, Reversal
from ..models.foundation import AuditRecord, BankAccount, Card, StaffUser
from . import card_lifecycle as lifecycle
from . import ledger, lookup
from .access import Scope
from .banking import reversal_transfer_id
from .book import book_of
from .operation import Op, operation, query
from .replacement import refund_receipt_no
from .reports import day_bounds

REFUND_CODE = "replacement_fee_refund"  # the ledger code of a replacement fee's refund
LISTED = 200  # a day's reversible actions shown at most (a center's day has tens)


def _action(record: AuditRecord) -> rules.Action:
    return rules.Action(
        operation=record.operation, result=record.result, actor_role=record.actor_role, place=record.place,
        at=record.at, before=record.before, after=record.after,
        linked_bank=bool((record.detail or {}).get("linked_bank")), actor_id=record.actor_id or "")


def _refuse(why: str) -> SscardError:
    return SscardError("not_reversible", why=rules.WHY[why])


def _shown_object(record: AuditRecord) -> str:
    return mask_card_number(record.object_id) if record.object_type == "card" else record.object_id


@query("reversal.candidates", roles={Role.CENTER_SUPERVISOR}, scope=Scope.CENTER)
def candidates(op: Op) -> dict[str, Any]:
    """Today's reversible kinds of action by the clerks of the supervisor's center, newest first, each with
    whether it can still be reversed as far as its record tells (`why_not`: a WHY key, or None)."""
    center = lookup.own_center(op.session, op.actor)
    today = op.app.clock.today()
    start, end = day_bounds(today)
    records = op.session.scalars(
        select(AuditRecord).where(AuditRecord.place == center.code, AuditRecord.at >= start, AuditRecord.at < end,
                                  AuditRecord.actor_kind == "staff", AuditRecord.result == "ok",
                                  AuditRecord.operation.in_(rules.REVERSIBLE))
        .order_by(AuditRecord.id.desc()).limit(LISTED)).all()
    ids = [r.id for r in records]
    reversed_ids = set(op.session.scalars(select(Reversal.audit_record_id)
                                          .where(Reversal.audit_record_id.in_(ids)))) if ids else set()
    clerks = {str(u.id): u.username for u in op.session.scalars(
        select(StaffUser).where(StaffUser.center_id == center.id))}
    numbers = {r.object_id for r in records if r.object_type == "card"}
    cards = {c.card_number: c for c in op.session.scalars(select(Card).where(Card.card_number.in_(numbers)))} \
        if numbers else {}
    poa_ids = [int(r.object_id) for r in records if r.object_type == "power_of_attorney" and ascii_digits(r.object_id)]
    revoked = set(op.session.scalars(select(PowerOfAttorney.id).where(
        PowerOfAttorney.id.in_(poa_ids), PowerOfAttorney.revoked_at.is_not(None)))) if poa_ids else set()
    rows = []
    for record in records:
        why = rules.why_not(_action(record), center_code=center.code, today=today,
                            reversed_already=record.id in reversed_ids, reverser_id=str(op.actor.id))
        if why is None and record.object_id in cards and record.object_type == "card":
            why = _card_moved(op, record, cards[record.object_id])
        elif why is None and record.object_type == "power_of_attorney" and int(record.object_id) in revoked:
            why = "changed"
        kind = rules.REVERSIBLE[record.operation]
        rows.append({"audit_record_id": record.id, "at": record.at, "operation": record.operation,
                     "undo": {"zh": kind.zh, "en": kind.en}, "clerk": clerks.get(record.actor_id, record.actor_id),
                     "object_type": record.object_type, "object_id": _shown_object(record),
                     "before": record.before, "after": record.after, "why_not": why,
                     "why_not_words": ({"zh": rules.WHY[why][0], "en": rules.WHY[why][1]} if why else None)})
    return {"center": {"code": center.code, "name": center.name}, "day": today, "actions": rows}


@operation("reversal.reverse", roles={Role.CENTER_SUPERVISOR}, scope=Scope.CENTER)
def reverse(op: Op, audit_record_id: int, reason: str) -> dict[str, Any]:
    """Undo a clerk's action of today at this center, with a reason; refused `not_reversible` naming why."""
    reason = require_reason(reason)
    center = lookup.own_center(op.session, op.actor)
    record = (op.session.scalar(select(AuditRecord).where(AuditRecord.id == int(audit_record_id)))
              if ascii_digits(str(audit_record_id)) else None)
    if record is None:
        raise SscardError("not_found", what=("业务记录", "action record"))
    op.audit("audit_record", record.id, before=record.operation, person_id=record.person_id,
             reversed_operation=record.operation, clerk=record.actor_id, reason=reason)
    already = op.session.scalar(select(Reversal.id).where(Reversal.audit_record_id == record.id)) is not None
    why = rules.why_not(_action(record), center_code=center.code, today=op.app.clock.today(),
                        reversed_already=already, reverser_id=str(op.actor.id))
    if why is not None:
        raise _refuse(why)
    refund: dict[str, Any] | None = None
    if record.operation in rules.REPLACEMENTS:
        now, refund = _reverse_replacement(op, record)
    elif record.object_type == "card":
        now = _reverse_card(op, record)
    else:
        now = _reverse_attorney(op, record, reason)
    op.session.add(Reversal(audit_record_id=record.id, operation=record.operation, center_id=center.id,
                            reversed_by=str(op.actor.id), reversed_at=op.now, reason=reason))
    op.audit("audit_record", record.id, before=record.operation, after="reversed", person_id=record.person_id,
             object=_shown_object(record), state_before=record.after, state_after=now, refund=refund)
    return {"audit_record_id": record.id, "operation": record.operation, "object_type": record.object_type,
            "object_id": _shown_object(record), "state_before": record.after, "state_after": now,
            "reversed_at": op.now, "reason": reason, "refund": refund}


def _card_moved(op: Op, record: AuditRecord, card: Card) -> str | None:
    """Why the card of a card action moved on since it (core.reversal.card_moved), or None."""
    replaced = account_used = False
    if record.operation == "ss_loss.report_formal":
        from .loss import replacement_applied

        replaced = replacement_applied(op, card)
    if record.operation in rules.APPLICATIONS:  # money reached the new card's account: a credit posted or held
        ledger_id = op.session.scalar(select(BankAccount.ledger_account_id).where(BankAccount.card_id == card.id))
        account_used = ledger_id is not None and ledger.balance(op.session, ledger_id) != ledger.Balance(0, 0, 0, 0)
    moved = rules.card_moved(_action(record), state=lifecycle.ss_status(op, card), changed_at=card.status_changed_at,
                             in_batch=card.batch_id is not None, replaced=replaced, account_used=account_used)
    if moved is None and record.operation in rules.REPLACEMENTS:
        receipt = _receipt_of(op, card)
        if receipt is not None and receipt.method == "card" and _fee_account_closed(op, receipt):
            return "fee_account"
    return moved


def _receipt_of(op: Op, new: Card) -> FeeReceipt | None:
    """The fee receipt of the replacement that applied for this new card (None: no fee was due)."""
    return op.session.scalar(select(FeeReceipt).join(
        ReplacementApplication, ReplacementApplication.id == FeeReceipt.application_id)
        .where(ReplacementApplication.new_card_id == new.id))


def _fee_transfer(op: Op, receipt: FeeReceipt) -> Any:
    assert receipt.ledger_transfer_id is not None  # a paid fee's receipt names its transfer (linked at commit)
    return op.session.execute(select(ledger.TRANSFERS).where(ledger.TRANSFERS.c.id == receipt.ledger_transfer_id)).one()


def _fee_account_closed(op: Op, receipt: FeeReceipt) -> bool:
    """A card-paid fee's old account takes no credit any more (closed since): the fee cannot go back to it."""
    old = op.session.scalar(select(BankAccount).where(BankAccount.ledger_account_id == _fee_transfer(op, receipt)
                                                      .debit_account_id))
    assert old is not None  # a card fee's debit side is the old card's account
    return not takes_credit(lifecycle.bank_status(op, old))


def _reverse_card(op: Op, record: AuditRecord) -> str:
    """The card back to the state the action found, if nothing moved it since."""
    card = op.session.scalar(select(Card).where(Card.card_number == record.object_id))
    if card is None:
        raise SscardError("card_not_found")
    moved = _card_moved(op, record, card)
    if moved:
        raise _refuse(moved)
    for event in rules.card_steps(_action(record)):
        lifecycle.ss_transition(op, card, event)
    if record.operation == "card.apply_first":
        account = lookup.account_for_card(op.session, card)
        if account.status != BankStatus.NOT_ACTIVATED:
            raise _refuse("changed")
        if account.ledger_account_id is not None:  # opened, empty (a refused transfer to it): closed too
            ledger.close_account(op.session, account.ledger_account_id)
        lifecycle.bank_transition(op, account, "close")
    assert card.ss_status == (SsStatus.CANCELLED if record.operation == "card.apply_first" else record.before)
    return str(card.ss_status)


def _reverse_attorney(op: Op, record: AuditRecord, reason: str) -> str:
    from .attorney import end

    poa = op.session.get(PowerOfAttorney, int(record.object_id))
    if poa is None:
        raise SscardError("not_found", what=("授权委托书", "power of attorney"))
    if poa.revoked_at is not None:
        raise _refuse("changed")
    end(op, poa, reason)
    return "revoked"


def _reverse_replacement(op: Op, record: AuditRecord) -> tuple[str, dict[str, Any] | None]:
    """A replacement applied for in error (R6.15): its new card, still `applied` and in no production batch,
    cancelled; the new card's own account (none when the PAN is kept) closed, as a first card's is; the fee
    refunded the way it was paid (`_refund_fee`; waived or none: nothing moves). The old card is left as it
    is: the application changed it only by a formal loss recorded in the same visit, which stays (the
    cardholder reported the card lost; with no replacement under way now, they may cancel it at a window).
    Returns the new card's state and the refund (None when no money moved)."""
    card = op.session.scalar(select(Card).where(Card.card_number == record.object_id))
    if card is None:
        raise SscardError("card_not_found")
    lookup.person_by_id(op.session, card.person_id, lock=True)  # as the application locks it
    moved = _card_moved(op, record, card)
    if moved:
        raise _refuse(moved)
    receipt = _receipt_of(op, card)
    refund = _refund_fee(op, receipt) if receipt is not None and receipt.method in ("cash", "card") else None
    lifecycle.ss_transition(op, card, "cancel")
    account = op.session.scalar(select(BankAccount).where(BankAccount.card_id == card.id))
    if account is not None:  # the new card's own account (the PAN kept: the old account is the old card's)
        if account.status != BankStatus.NOT_ACTIVATED:
            raise _refuse("changed")
        if account.ledger_account_id is not None:
            ledger.close_account(op.session, account.ledger_account_id)
        lifecycle.bank_transition(op, account, "close")
    return str(card.ss_status), refund


def _refund_fee(op: Op, receipt: FeeReceipt) -> dict[str, Any]:
    """The fee back the way it came (R6.15): a new transfer from agency_fee_income to the account it was
    taken from (the center's cash drawer: the clerk pays the cash out; or the old card's account), whose `ref`
    is the fee's transfer, once (its id derived from the fee's, as a terminal's reversal's is); a card payment's
    use of the day's payment limit given back, as a terminal's reversal gives it. The receipt is not changed
    (append-only): the refund is numbered after it, its number with `R`."""
    fee = _fee_transfer(op, receipt)  # (an old account closed since was refused first: `_card_moved`)
    moved = ledger.transfer(op, fee.credit_account_id, fee.debit_account_id, fee.amount, REFUND_CODE,
                            transfer_id=reversal_transfer_id(op, fee.transfer_id), ref=fee.transfer_id)
    if fee.limit_kind:  # the day's payment limit counts only what stayed paid
        book_of(op.session).add_usage(fee.debit_account_id, fee.day, fee.limit_kind, -fee.amount)
    return {"receipt_no": receipt.receipt_no, "refund_receipt_no": refund_receipt_no(receipt.receipt_no),
            "amount_fen": fee.amount, "method": receipt.method, "transfer_id": moved["transfer_id"]}
