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

from datetime import timedelta
from typing import Any, NotRequired, TypedDict

from sqlalchemy import select

from ..core import labels
from ..core.errors import SscardError, register_messages
from ..core.identifiers import mask_card_number, mask_citizen_id, mask_name
from ..core.money import fen_to_yuan
from ..core.roles import CENTER_STAFF, Role
from ..core.states import SS_LOST, SsStatus
from ..i18n import label_pair
from ..models.counter import FeeReceipt, PowerOfAttorney, ReplacementApplication
from ..models.foundation import Bank, BankAccount, Card, Person, ServiceCenter
from . import access, attorney, banking, ledger, lookup, loss
from . import card_lifecycle as lifecycle
from .access import Scope
from .enrolment import create_card, new_card_numbers
from .operation import Op, operation, query

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


def fee_for(op: Op, reason: str) -> int:
    return op.policy.fee.replacement_fen if reason in FEE_REASONS else 0


def center_cash_account(op: Op, center: ServiceCenter) -> int:
    return ledger.system_account(op, f"cash:center-{center.code}", kind="cash_drawer")


def _receipt_no(op: Op, center: ServiceCenter, application_id: int) -> str:
    """Numbered by the application's id, which the database hands out: unique even under concurrency."""
    return f"F{op.app.clock.today():%Y%m%d}{center.code[-3:]}{application_id:06d}"


def _new_card_keeping_pan(op: Op, person: Person, bank: Bank, center_id: int, reason: str, old: Card) -> Card:
    """bank.keep_pan_on_replacement: the new card has no bank account of its own; the old one's moves to
    it at collection (card.collect), so the PAN, the balance and the account state carry over."""
    number, code, _ = new_card_numbers(op, person.area_code, bank, pan="kept")
    card = Card(person_id=person.id, card_number=number, ident_code=code, bank_id=bank.id,
                ss_status=SsStatus.APPLIED, reason=reason, replaces_card_id=old.id,
                spec_version=op.policy.card.spec_version, apply_center_id=center_id, applied_at=op.now,
                status_changed_at=op.now)
    op.session.add(card)
    op.session.flush()
    return card


def _take_fee(op: Op, center: ServiceCenter, card_debit: int | None, amount: int, method: str) -> int | None:
    """Cash from the center's cash drawer, or a card payment from the old card's account (its state and
    PIN already checked), into the agency's fee income account (ledger). Returns the transfer id."""
    income = ledger.system_account(op, FEE_INCOME)
    debit = center_cash_account(op, center) if method == "cash" else card_debit
    assert debit is not None  # paid by card: the caller set card_debit (banking.debit_ready)
    moved = ledger.transfer(op, debit, income, amount, "replacement_fee",
                            limit=("payment", op.policy.limits.payment_per_day_fen) if method == "card" else None)
    return ledger.row_id(op.session, moved["transfer_id"])


def _apply(op: Op, card_number: str, reason: str, presented_citizen_id: str, *, payment: str | None,
           waive_reason: str | None, pin: str | None = None, collect_center_code: str | None, bank_code: str | None,
           record_formal_loss: bool, attorney_id: int | None, agent_citizen_id: str | None) -> Applied:
    if reason not in REASONS:
        raise SscardError("invalid_request")
    old = lookup.card_by_number(op.session, card_number)
    person = lookup.person_by_id(op.session, old.person_id, lock=True)
    poa = attorney.agent_for(op, attorney_id, agent_citizen_id, person.id, "replacement.apply")
    lookup.check_presented_id(person, presented_citizen_id)
    center = lookup.own_center(op.session, op.actor)
    collect_center = lookup.center_by_code(op.session, collect_center_code) if collect_center_code else center
    lifecycle.refresh_ss(op, old)
    status = SsStatus(old.ss_status)
    if status in (SsStatus.APPLIED, SsStatus.IN_PRODUCTION, SsStatus.READY, SsStatus.SEALED, SsStatus.CANCELLED):
        raise SscardError("replacement_not_allowed", state=str(status))
    if loss.replacement_applied(op, old):
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
            raise SscardError("renewal_too_early", day=opens.isoformat())
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
            raise SscardError("fee_payment_required", amount=fen_to_yuan(fee))
    old_account = op.session.scalar(select(BankAccount).where(BankAccount.card_id == old.id))
    card_debit = None
    if method == "card":
        if reason == "lost":
            raise SscardError("card_lost")  # the lost card is not at hand to pay with
        # The PIN on the window's PIN pad, checked before anything else is written: a wrong PIN's
        # counter is committed with the refusal, and nothing of the application is.
        if old_account is None:
            raise SscardError("account_not_found")
        card_debit = banking.debit_ready(op, old_account, pin or "")
    formal_loss_recorded = False
    if needs_formal_loss:
        lifecycle.ss_transition(op, old, "report_formal_loss")
        formal_loss_recorded = True
    keep_pan = op.policy.bank.keep_pan_on_replacement and bank.id == old.bank_id and old_account is not None
    if keep_pan:
        new = _new_card_keeping_pan(op, person, bank, center.id, reason, old)
        assert old_account is not None  # keep_pan requires it
        pan = old_account.pan
    else:
        new, account = create_card(op, person, bank, center.id, reason, replaces=old)
        pan = account.pan
    application = ReplacementApplication(
        person_id=person.id, old_card_id=old.id, new_card_id=new.id, reason=reason, fee_fen=fee,
        fee_status={None: "none", "waived": "waived"}.get(method, "paid"), apply_center_id=center.id,
        collect_center_id=collect_center.id, attorney_id=poa.id if poa else None, staff_id=str(op.actor.id),
        created_at=op.now,
    )
    op.session.add(application)
    op.session.flush()
    receipt = None
    if method is not None:
        transfer_id = _take_fee(op, center, card_debit, fee, method) if method != "waived" else None
        receipt = FeeReceipt(
            receipt_no=_receipt_no(op, center, application.id), application_id=application.id, person_id=person.id,
            center_id=center.id, amount_fen=0 if method == "waived" else fee, due_fen=fee, method=method,
            staff_id=str(op.actor.id), staff_name=op.actor.name[:32],
            waived_by=str(op.actor.id) if method == "waived" else None,
            waive_reason=(waive_reason or "").strip()[:128], attorney_id=poa.id if poa else None,
            ledger_transfer_id=transfer_id, paid_at=op.now,
        )
        op.session.add(receipt)
        op.session.flush()
    op.audit("card", new.card_number, before="", after=new.ss_status, person_id=person.id,
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
        old_bank = op.session.get(Bank, old.bank_id)
        assert old_bank is not None  # cards.bank_id is a NOT NULL foreign key
        out["reminder"] = loss.remind_bank(old_bank)
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
    }


@query("replacement.receipt", roles=CENTER_STAFF, scope=Scope.CENTER)
def receipt(op: Op, receipt_no: str) -> dict[str, Any]:
    r = op.session.scalar(select(FeeReceipt).where(FeeReceipt.receipt_no == str(receipt_no)[:24]))
    if r is None:
        raise SscardError("not_found", what=("收据", "receipt"))
    access.require_center(op.actor, r.center_id)
    op.audit("fee_receipt", r.receipt_no, person_id=r.person_id)
    return receipt_view(op, r)


