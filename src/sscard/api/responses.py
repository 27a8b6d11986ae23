"""What every /api/v1 route answers on success (200/201): the contract integrators build on.

The services answer JSON-ready dicts; these models describe them exactly (money in integer fen, dates
and times as ISO strings, identifiers masked as the service masks them). They were first drafted from
the answers the test suite's requests really got, then checked against the services' code. `Out`
allows extra keys (an answer is never cut short by a forgotten field: FastAPI would drop it), and
tests/api/test_contract.py proves real answers carry no key a model does not declare.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, WithJsonSchema, model_serializer

from ..core.identifiers import mask_card_number, mask_citizen_id, mask_name, mask_pan
from ..core.roles import Channel, Role
from ..core.states import BankStatus, SsStatus


def enum_of(table: type[StrEnum]) -> WithJsonSchema:
    """The contract of a string field that carries one of a core table's values (a state, a role): the
    table's own values, read from it, so that the schema and the code cannot disagree. The wire is unchanged
    (the field stays a string); tests/api/test_contract_formats.py checks each field against its table."""
    return WithJsonSchema({"type": "string", "enum": [member.value for member in table]})


SsState = Annotated[str, enum_of(SsStatus)]
"""A card's social security state (core.states.SsStatus)."""
BankState = Annotated[str, enum_of(BankStatus)]
"""A bank account's state (core.states.BankStatus)."""
RoleName = Annotated[str, enum_of(Role)]
"""Who acted (core.roles.Role)."""
ChannelName = Annotated[str, enum_of(Channel)]
"""Through which channel (core.roles.Channel)."""


def _mask_for(key: str) -> Callable[[str | None], str] | None:
    """R2.8: how the API's copy of a key's value is masked, by the key's name, whoever asks, at any depth of
    any answer: a PAN (`pan`, `*_pan`), a card number (`*card_number`, `cancelled_old_card`), a citizen ID
    (`*citizen_id`). The frame masks them as it writes the answer, so a service that hands back a full
    number (the consoles and hotlines need some) cannot leak it through a route, nor a new answer field
    slip past by its name. Masking a masked number changes nothing. Shown in full: the number of a card a
    request has just issued, to the staff who issued it (`Out.issued`: without it the caller could not
    address the new card), and the events feed's PAN for the card's own bank (api.events: not an `Out`)."""
    if key == "pan" or key.endswith("_pan"):
        return mask_pan
    if key.endswith("card_number") or key == "cancelled_old_card":
        return mask_card_number
    if key.endswith("citizen_id"):
        return mask_citizen_id
    return None


def masked(value: Any) -> Any:
    """`value` with every number key of every dict in it masked (`_mask_for`; lists and dicts walked), and
    the `name` of a dict that names a person by `citizen_id` or `person_id` (a person's name is masked as
    the ID beside it is, the collection queue's rows included: R2.8, the API's lists stay masked; a bank's
    or a center's name is not)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            mask = _mask_for(k) if isinstance(v, str) else None
            out[k] = mask(v) if mask is not None else masked(v)
        if ("citizen_id" in out or "person_id" in out) and isinstance(out.get("name"), str):
            out["name"] = mask_name(out["name"])
        return out
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


class Out(BaseModel):
    """Base of every answer model: extra keys kept, numbers masked (`_mask_for`) but those in `issued`."""

    model_config = ConfigDict(extra="allow")
    issued: ClassVar[frozenset[str]] = frozenset()
    """Top-level keys holding the number of a card this request issued: answered in full."""

    @model_serializer(mode="wrap")
    def _masked(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        # No return annotation: pydantic would take it for the answer's schema (and the contract's).
        data = handler(self)
        new = {key: data[key] for key in self.issued if key in data}
        return {**masked(data), **new}


class PersonRef(Out):
    id: int
    name: str
    citizen_id: str


class NameAndId(Out):
    name: str
    citizen_id: str


class CardSummary(Out):
    """The caller's current card as a hotline agent sees it (masked)."""

    card_number: str
    ss_status: SsState
    ss_loss_expires_at: str | None
    bank: str
    bank_status: BankState


class ReplacementRef(Out):
    application_id: int
    fee_fen: int
    fee_status: str
    receipt_no: str | None


class MovedBalance(Out):
    """The old account's balance moved to the replacement card's account at activation."""

    old_pan: str
    amount_fen: int


class BankBalanceOut(Out):
    pan: str
    status: BankState
    balance_fen: int
    available_fen: int
    held_fen: int
    incoming_pending_fen: int
    balance: str
    available: str


class BankMovementOut(BankBalanceOut):
    transfer_id: str
    amount_fen: int
    at: str


class BankPurchaseOut(BankMovementOut):
    timeout_at: str | None


class TerminalReversalOut(BankMovementOut):
    original_transfer_id: str
    already_reversed: bool


class BankAuthorizePaymentOut(BankMovementOut):
    timeout_at: str | None


class BankCapturePaymentOut(Out):
    transfer_id: str
    kind: str
    pending_transfer_id: str
    amount_fen: int
    at: str


class BankTransferOut(BankMovementOut):
    to: str


class BankChangePinOut(Out):
    pan: str
    changed: bool


class PersonRegisterOut(Out):
    id: int
    citizen_id: str
    name: str
    sex: str
    birth_date: str
    area_code: str


class SsPasswordState(Out):
    initial: bool
    locked: bool


class CardBankSide(Out):
    code: str
    name: str
    name_en: str
    hotline: str
    pan: str | None
    status: BankState | None
    activation_deadline: str | None
    activation_days_left: int | None


class CardView(Out):
    card_number: str
    person: NameAndId
    ss_status: SsState
    ss_loss_expires_at: str | None
    reason: str
    applied_at: str
    ready_at: str | None
    ready_center: str | None
    ready_center_en: str | None  # the same center's English name (its Chinese name when it has none)
    collected_at: str | None
    issue_date: str | None
    expiry_date: str | None
    spec_version: str
    ss_password: SsPasswordState
    bank: CardBankSide


class PersonCardsOut(Out):
    person: PersonRef
    cards: list[CardView]


class PersonFindOut(Out):
    id: int
    name: str
    citizen_id: str
    birth_date: str
    sex: str


class CardApplyFirstOut(Out):
    issued = frozenset({"card_number"})
    card_number: str
    ss_status: SsState
    bank: str
    pan_last4: str


class ProductionStartBatchOut(Out):
    batch: str
    cards: int
    due_date: str
    status: str


class ProductionCompleteBatchOut(Out):
    batch: str
    cards: int
    status: str


class CardCollectOut(Out):
    card_number: str
    ss_status: SsState
    issue_date: str | None
    expiry_date: str | None
    activation_deadline: str | None
    cancelled_old_card: str | None


class CardState(Out):
    card_number: str
    ss_status: SsState


class SsPasswordChangeOut(Out):
    card_number: str
    changed: bool


class SsPasswordVerifyOut(Out):
    card_number: str
    verified: bool


class SsPasswordResetOut(Out):
    card_number: str
    reset: bool
    initial: bool


class QueryPasswordLoginOut(Out):
    token: str
    person_id: int
    must_change_password: bool


class QueryPasswordChangeOut(Out):
    changed: bool


class QueryPasswordResetOut(Out):
    reset: bool


class Reminder(Out):
    zh: str
    en: str


class SsLossReportTemporaryOut(Out):
    card_number: str
    ss_status: SsState
    lapses_at: str
    linked_bank_status: BankState | None
    reminder: Reminder


class SsLossReportFormalOut(Out):
    card_number: str
    ss_status: SsState
    linked_bank_status: BankState | None
    reminder: Reminder


class BankLossReportOralOut(Out):
    pan: str
    status: BankState
    lapses_at: str
    linked_ss_status: SsState | None
    reminder: Reminder


class BankLossReportWrittenOut(Out):
    pan: str
    status: BankState
    linked_ss_status: SsState | None
    reminder: Reminder


class BankAccountState(Out):
    pan: str
    status: BankState


class AuditActor(Out):
    kind: str
    id: str
    role: RoleName


class AuditRecordOut(Out):
    id: int
    at: str
    actor: AuditActor
    on_behalf_of: int | None
    attorney_id: int | None
    channel: ChannelName
    place: str
    operation: str
    object_type: str
    object_id: str
    person_id: int | None
    before: str
    after: str
    result: str
    detail: dict[str, Any]


class AuditReadOut(Out):
    records: list[AuditRecordOut]
    limit: int
    offset: int


class CheckIdentifierOut(Out):
    kind: str
    valid: bool
    value: str


class BankActivateOut(BankBalanceOut):
    moved_from_old_account: MovedBalance | None


class BankResetPinOut(Out):
    pan: str
    reset: bool
    was_locked: bool


class BankCloseOut(Out):
    pan: str
    status: str
    paid_out_fen: int
    paid_out: str
    transfer_id: str


class StatementEntry(Out):
    id: int
    transfer_id: str
    at: str
    code: str
    kind: str
    direction: str
    amount_fen: int
    amount: str
    counterparty: str
    ref: str
    timeout_at: str | None


class BankStatementOut(BankBalanceOut):
    entries: list[StatementEntry]
    next_before_id: int | None
    activation_deadline: str | None


class BankExpirePendingOut(Out):
    expired: int


class LedgerCheckOut(Out):
    accounts: int
    transfers: int
    sum_posted_fen: int
    sum_pending_fen: int
    negative_customer_accounts: int
    problems: list[str]
    ok: bool


class InstitutionBrief(Out):
    code: str
    name: str
    kind: str
    level: int | None
    designated: bool
    settlement_account_no: str


class SettlementSplit(Out):
    total_fen: int
    covered_fen: int
    uncovered_fen: int
    deductible_fen: int
    copay_fen: int
    fund_fen: int
    personal_fen: int
    self_pay_fen: int


class MedicalPreSettleOut(Out):
    quote: str
    quote_id: str
    expires_at: str
    institution: InstitutionBrief
    card_number: str
    split: SettlementSplit
    use_personal_account: bool


class BillLine(Out):
    category: str
    name: str
    code: str
    amount_fen: int
    covered: bool


# A settlement (or refund) as the terminal that made it is answered; a refund and a settlement looked up name
# the whole institution and what is sure of them (a comment, not a docstring: the OpenAPI stays as it was).
class MedicalSettleOut(Out):
    code: str
    kind: str
    at: str
    year: int
    institution: InstitutionBrief
    terminal: str | None
    card_number: str | None
    person: PersonRef
    bank: str | None
    lines: list[BillLine]
    split: SettlementSplit
    self_pay_method: str | None
    personal_balance_after_fen: int | None
    reverses: str | None
    refunded_by: str | None
    reason: str | None


class Institution(InstitutionBrief):  # the same fields, under the name the settlement lookups answer with
    pass


class MedicalRefundOut(MedicalSettleOut):
    institution: Institution
    reverses: str


class MedicalSettlementOut(MedicalSettleOut):
    institution: Institution  # refunded_by stays str | None: a settlement not refunded has none


class MedicalPersonSettlementsOut(Out):
    person_id: int
    total: int
    settlements: list[MedicalSettleOut]


class PersonalAccountMovement(Out):
    kind: str
    amount_fen: int
    balance_after_fen: int
    month: str | None
    at: str


class MedicalPersonalAccountOut(Out):
    person_id: int
    balance_fen: int
    year: int
    deductible_used_fen: int
    fund_used_fen: int
    insured_months: list[str]
    movements: list[PersonalAccountMovement]


class MedicalInstitutionsOut(Out):
    institutions: list[InstitutionBrief]


class MedicalAddTerminalOut(Out):
    id: int
    code: str
    kind: str
    institution: str


class MedicalCreditMonthOut(Out):
    month: str
    credited: int
    skipped: int
    total_fen: int


class CounterFindByNameOut(Out):
    persons: list[PersonFindOut]


class QueryPasswordState(Out):
    initial: bool
    locked_until: str | None


class CounterPerson(Out):
    id: int
    name: str
    citizen_id: str
    birth_date: str
    sex: str
    query_password: QueryPasswordState


class CounterCardRow(CardView):
    """A card as the window's person overview lists it: the card view with its id and replacement."""

    id: int
    replacement: ReplacementRef | None
    replaced: bool


class CounterPersonOut(Out):
    person: CounterPerson
    cards: list[CounterCardRow]


class CounterVisitOut(Out):
    id: int
    person_id: int
    presenter: str
    attorney: AttorneyOut | None
    checked_at: str
    expires_at: str


class CounterEndVisitOut(Out):
    id: int
    ended: bool


class AttorneyOut(Out):
    id: int
    person_id: int
    agent_name: str
    agent_citizen_id: str
    scope: list[str]
    valid_from: str
    valid_to: str
    document_ref: str
    revoked_at: str | None
    revoke_reason: str
    status: str


class AttorneyListOut(Out):
    person_id: int
    attorneys: list[AttorneyOut]


class AttorneyRevokeOut(AttorneyOut):  # the power of attorney as revoked
    pass


class CenterRef(Out):
    code: str
    name: str


class ReceiptRefund(Out):
    refund_receipt_no: str
    refunded_at: str


class ReplacementReceiptOut(Out):
    receipt_no: str
    paid_at: str | None
    center: CenterRef
    person: NameAndId
    reason: str
    new_card_number: str
    old_card_number: str
    amount_fen: int
    due_fen: int
    method: str
    staff: str
    waive_reason: str
    agent: NameAndId | None
    ledger_transfer_id: int | None
    refund: ReceiptRefund | None  # the fee refunded by a supervisor's reversal (RULES R6.15); the receipt kept


class BankRef(Out):
    code: str
    name: str
    name_en: str
    hotline: str


class CounterCollectionReceiptOut(Out):
    receipt_no: str
    card_number: str
    person: NameAndId
    collected_at: str | None
    issue_date: str | None
    expiry_date: str | None
    center: CenterRef | None
    reason: str
    old_card_number: str | None
    old_card_status: SsState | None
    bank: BankRef
    pan: str
    bank_status: BankState
    activation_deadline: str | None
    activation_days: int
    agent: NameAndId | None
    application_id: int | None


class ReadyCard(Out):
    card_id: int
    person_id: int
    card_number: str
    name: str
    reason: str
    ready_at: str | None


class BatchRow(Out):
    code: str
    status: str
    cards: int
    due_date: str
    created_at: str
    completed_at: str | None


class CounterQueueOut(Out):
    center: CenterRef
    ready: list[ReadyCard]
    applied: int
    batches: list[BatchRow]


class ClerkDay(Out):
    staff_id: str
    username: str
    name: str
    operations: dict[str, int]
    total: int
    refused: int


class FeesByMethod(Out):
    count: int
    amount_fen: int
    due_fen: int


class FeesRefunded(Out):
    count: int
    amount_fen: int


class DayFees(Out):
    by_method: dict[str, FeesByMethod]
    collected_fen: int  # the day's receipts, refunded or not
    waived_fen: int
    receipts: int
    refunds: int  # fees refunded the same day by a supervisor's reversal (RULES R6.15)
    refunded_fen: int
    refunded_by_method: dict[str, FeesRefunded]
    net_fen: int  # collected_fen - refunded_fen: what the day kept


class DayCards(Out):
    applied: int
    in_production: int
    awaiting_collection: int


class DayReversal(Out):
    at: str
    operation: str
    clerk: str
    supervisor: str
    reason: str


class ReportsCenterDayOut(Out):
    day: str
    center: CenterRef
    clerks: list[ClerkDay]
    reversals: list[DayReversal]
    fees: DayFees
    cards: DayCards


class ReversibleAction(Out):
    audit_record_id: int
    at: str
    operation: str
    undo: Reminder  # what reversing it does, in both languages
    clerk: str
    object_type: str
    object_id: str  # a card number masked, or a power of attorney's id
    before: str
    after: str
    why_not: str | None  # None: it can be reversed; else why not (core.reversal.WHY)
    why_not_words: Reminder | None


class ReversalCandidatesOut(Out):
    center: CenterRef
    day: str
    actions: list[ReversibleAction]


class FeeRefund(Out):
    receipt_no: str  # the fee's receipt, kept as it was
    refund_receipt_no: str  # the refund's number: the receipt's with "R"
    amount_fen: int
    method: str  # cash | card: the way it was paid, and goes back
    transfer_id: str


class ReversalReverseOut(Out):
    audit_record_id: int
    operation: str
    object_type: str
    object_id: str
    state_before: str
    state_after: str
    reversed_at: str
    reason: str
    refund: FeeRefund | None  # a replacement's fee refunded; None when no money moved


class AgentRequestRow(Out):
    id: int
    line: str
    status: str
    node: str
    topic: str
    lang: str
    requested_at: str
    waiting_minutes: int
    identified: bool
    person: PersonRef | None
    card: CardSummary | None
    taken_by: str | None


class HotlineAgentQueueOut(Out):
    requests: list[AgentRequestRow]
    open: int


class AgentRequestOut(AgentRequestRow):  # one request taken or closed: the queue's row
    pass


class BankExtendActivationOut(Out):
    pan: str
    activation_deadline: str | None
    days: int


class VoidPaymentOut(Out):
    transfer_id: str
    kind: str
    pending_transfer_id: str
    amount_fen: int
    at: str


class ReplacementApplyOut(Out):
    issued = frozenset({"card_number"})
    application_id: int
    card_number: str
    ss_status: SsState
    reason: str
    old_card_number: str
    old_card_status: SsState
    formal_loss_recorded: bool
    fee_fen: int
    fee_status: str
    fee_method: str | None
    receipt_no: str | None
    bank: str
    pan_kept: bool
    pan_last4: str
    collect_center: str
    reminder: Reminder | None = None  # only when a formal loss was recorded in the same visit


class ReplacementCompleteBatchOut(ProductionCompleteBatchOut):
    routed_to_other_centers: int


class CounterCollectOut(CardCollectOut):
    collected_by: str
    bank_status: BankState
    activation_required: bool
    bank: BankRef
    pan: str


PDF = {200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
             "description": "a PDF document"}}
TWIML = {200: {"content": {"application/xml": {"schema": {"type": "string"}}},
               "description": "TwiML (Twilio's voice markup)"}}
CSV_OR_JSON = {200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                     "description": "the report as JSON, or as CSV with format=csv"}}
