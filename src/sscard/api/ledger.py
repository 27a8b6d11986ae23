"""/api/v1 routes of the ledger area: the terminal API and the bank-outlet (teller) routes.

Terminal routes (/api/v1/terminal/...) take a terminal's bearer token; every write needs an
Idempotency-Key header (a retry answers the first answer; another body is idempotency_key_reused).
Every terminal route but the PIN change is group-committed (services/batching); those routes are async,
so a request waiting for its batch holds no thread. Amounts are integer fen.
"""

from __future__ import annotations

from fastapi import Query
from pydantic import Field, StrictInt

from ..http import RouteBook
from ..services import banking, batching, ledger
from . import responses as r
from .deps import ActorDep, AppDep, KeyDep, TerminalDep
from .schemas import Strict

router = RouteBook(prefix="/api/v1", tags=["bank account"])
# The terminals' routes, in a router of their own that the app includes before every other: FastAPI
# tries an app's routes in order (twice per request), and a payment should not first be compared with
# every foundation route (a quarter of a payment's time on the event loop went to routing).
terminal_router = RouteBook(prefix="/api/v1/terminal", tags=["bank account"])


TRANSFER_ID_PATTERN = "^" + ledger.TRANSFER_ID.pattern + "$"  # one path segment: captured and voided by it
Pan = Field(min_length=19, max_length=19, pattern=r"^\d{19}$")
Pin = Field(max_length=12)
Fen = Field(gt=0, le=10**12)


class CardPin(Strict):
    pan: str = Pan
    pin: str = Pin


class CardAmount(Strict):
    pan: str = Pan
    amount_fen: StrictInt = Fen


class CardAmountPin(CardAmount):
    pin: str = Pin


class Authorize(CardAmountPin):
    timeout_seconds: StrictInt | None = Field(None, gt=0, le=int(banking.MAX_PENDING_TIMEOUT.total_seconds()),
                                              description="how long the hold lasts before it expires (at most 30 days)")
    transfer_id: str | None = Field(None, min_length=1, max_length=64, pattern=TRANSFER_ID_PATTERN)


class Purchase(CardAmountPin):
    transfer_id: str | None = Field(None, min_length=1, max_length=64, pattern=TRANSFER_ID_PATTERN)


class Capture(Strict):
    amount_fen: StrictInt | None = Field(None, gt=0, le=10**12)


class TerminalTransfer(Strict):
    from_pan: str = Pan
    to_pan: str = Pan
    amount_fen: StrictInt = Fen
    pin: str = Pin
    transfer_id: str | None = Field(None, min_length=1, max_length=64, pattern=TRANSFER_ID_PATTERN)


class TerminalReversal(Strict):
    original_idempotency_key: str = Field(min_length=1, max_length=80,
                                          description="the Idempotency-Key this terminal sent with the withdrawal or "
                                                      "one-step payment it reverses")
    dispensed_fen: StrictInt = Field(0, ge=0, le=10**12,
                                     description="what was really dispensed or paid (0: nothing); the rest goes back")


class ChangePin(Strict):
    pan: str = Pan
    old: str = Pin
    new: str = Pin
    new_again: str = Pin


InPerson = Field(description="the teller confirms the cardholder is here in person with the card and original ID "
                            "(RULES: no agent); false or missing is refused")


class Activate(Strict):
    presented_citizen_id: str = Field(max_length=32)
    pin: str = Pin
    pin_again: str = Pin
    cardholder_in_person: bool = InPerson


class Extend(Strict):
    days: StrictInt | None = None
    reason: str = Field("", max_length=200)


class Amount(Strict):
    amount_fen: StrictInt = Fen


class AmountPin(Amount):
    pin: str = Pin


class OutletTransfer(Strict):
    to_pan: str = Pan
    amount_fen: StrictInt = Fen
    pin: str = Pin


class ResetPin(Strict):
    presented_citizen_id: str = Field(max_length=32)
    new: str = Pin
    new_again: str = Pin
    cardholder_in_person: bool = InPerson


class Reason(Strict):
    reason: str = Field("", max_length=200)


class CloseAccount(Strict):
    presented_citizen_id: str = Field(max_length=32)


class Pension(Strict):
    amount_fen: StrictInt = Fen
    period: str = Field("", max_length=32)


class OldNewPin(Strict):
    old: str = Pin
    new: str = Pin
    new_again: str = Pin


# ---------------------------------------------------------------- terminals


@terminal_router.post("/withdrawal")
async def terminal_withdrawal(body: CardAmountPin, call: TerminalDep) -> r.BankMovementOut:
    """Cash out at an ATM (group-committed, like payments)."""
    return await batching.acall(call.app, banking.withdraw, call.actor, body.pan, body.amount_fen, body.pin,
                                idempotency_key=call.key)


@terminal_router.post("/deposit")
async def terminal_deposit(body: CardAmount, call: TerminalDep) -> r.BankMovementOut:
    return await batching.acall(call.app, banking.deposit, call.actor,
                                body.pan, body.amount_fen, idempotency_key=call.key)


@terminal_router.post("/balance")
async def terminal_balance(body: CardPin, call: TerminalDep) -> r.BankBalanceOut:
    """A balance inquiry (needs the PIN); the key is optional here, as nothing but the PIN count changes."""
    return await batching.acall(call.app, banking.balance_inquiry, call.actor,
                                body.pan, body.pin, idempotency_key=call.key)


@terminal_router.post("/payments")
async def terminal_purchase(body: Purchase, call: TerminalDep) -> r.BankPurchaseOut:
    """A one-step payment (group-committed)."""
    return await batching.acall(call.app, banking.purchase, call.actor, body.pan, body.amount_fen, body.pin,
                                transfer_id=body.transfer_id, idempotency_key=call.key)


@terminal_router.post("/payments/authorize")
async def terminal_authorize(body: Authorize, call: TerminalDep) -> r.BankAuthorizePaymentOut:
    return await batching.acall(call.app, banking.authorize_payment, call.actor,
                                body.pan, body.amount_fen, body.pin, timeout_seconds=body.timeout_seconds,
                                transfer_id=body.transfer_id, idempotency_key=call.key)


@terminal_router.post("/payments/{transfer_id}/capture")
async def terminal_capture(transfer_id: str, body: Capture, call: TerminalDep) -> r.BankCapturePaymentOut:
    return await batching.acall(call.app, banking.capture_payment, call.actor,
                                transfer_id, body.amount_fen, idempotency_key=call.key)


@terminal_router.post("/payments/{transfer_id}/void")
async def terminal_void(transfer_id: str, call: TerminalDep) -> r.VoidPaymentOut:
    return await batching.acall(call.app, banking.void_payment, call.actor,
                                transfer_id, idempotency_key=call.key)


@terminal_router.post("/transfers")
async def terminal_transfer(body: TerminalTransfer, call: TerminalDep) -> r.BankTransferOut:
    return await batching.acall(call.app, banking.transfer, call.actor,
                                body.from_pan, body.to_pan, body.amount_fen, body.pin,
                                transfer_id=body.transfer_id, idempotency_key=call.key)


@terminal_router.post("/reversals")
async def terminal_reversal(body: TerminalReversal, call: TerminalDep) -> r.TerminalReversalOut:
    """An ATM's withdrawal whose cash did not (all) come out, or a POS's one-step payment not completed,
    reversed by the terminal that made it (RULES R10.13): found by its Idempotency-Key, the amount not
    dispensed goes back to the card once, whatever the reversal's own key. An original this terminal did
    not make (or not yet: it is then refused when it comes) answers 404 `reversal_original_not_found`."""
    return await batching.acall(call.app, banking.reverse_terminal, call.actor, body.original_idempotency_key,
                                body.dispensed_fen, idempotency_key=call.key)


@terminal_router.post("/pin/change")
def terminal_change_pin(body: ChangePin, call: TerminalDep) -> r.BankChangePinOut:
    return banking.change_pin(call.app, call.actor, body.pan, body.old, body.new, body.new_again,
                              idempotency_key=call.key)


# ---------------------------------------------------------------- bank outlets (tellers, supervisors)


@router.post("/bank-accounts/{pan}/activate")
def activate(pan: str, body: Activate, app: AppDep, actor: ActorDep, key: KeyDep) -> r.BankActivateOut:
    return banking.activate(app, actor, pan, body.presented_citizen_id, body.pin, body.pin_again,
                            cardholder_in_person=body.cardholder_in_person, idempotency_key=key)


@router.post("/bank-accounts/{pan}/activation-extension")
def extend_activation(pan: str, body: Extend, app: AppDep, actor: ActorDep, key: KeyDep) -> r.BankExtendActivationOut:
    return banking.extend_activation(app, actor, pan, body.days, body.reason, idempotency_key=key)


@router.post("/bank-accounts/{pan}/deposit")
async def deposit(pan: str, body: Amount, app: AppDep, actor: ActorDep, key: KeyDep) -> r.BankMovementOut:
    return await batching.acall(app, banking.deposit, actor, pan, body.amount_fen, idempotency_key=key)


@router.post("/bank-accounts/{pan}/withdrawal")
async def withdrawal(pan: str, body: AmountPin, app: AppDep, actor: ActorDep, key: KeyDep) -> r.BankMovementOut:
    return await batching.acall(app, banking.withdraw, actor, pan, body.amount_fen, body.pin, idempotency_key=key)


@router.post("/bank-accounts/{pan}/transfer")
async def transfer(pan: str, body: OutletTransfer, app: AppDep, actor: ActorDep, key: KeyDep) -> r.BankTransferOut:
    return await batching.acall(app, banking.transfer, actor, pan, body.to_pan, body.amount_fen, body.pin,
                                idempotency_key=key)


@router.post("/bank-accounts/{pan}/pin/reset")
def reset_pin(pan: str, body: ResetPin, app: AppDep, actor: ActorDep, key: KeyDep) -> r.BankResetPinOut:
    return banking.reset_pin(app, actor, pan, body.presented_citizen_id, body.new, body.new_again,
                             cardholder_in_person=body.cardholder_in_person, idempotency_key=key)


@router.post("/bank-accounts/{pan}/pin/change")
def change_pin(pan: str, body: OldNewPin, app: AppDep, actor: ActorDep, key: KeyDep) -> r.BankChangePinOut:
    return banking.change_pin(app, actor, pan, body.old, body.new, body.new_again, idempotency_key=key)


@router.post("/bank-accounts/{pan}/freeze")
def freeze(pan: str, body: Reason, app: AppDep, actor: ActorDep, key: KeyDep) -> r.BankAccountState:
    return banking.freeze(app, actor, pan, body.reason, idempotency_key=key)


@router.post("/bank-accounts/{pan}/unfreeze")
def unfreeze(pan: str, body: Reason, app: AppDep, actor: ActorDep, key: KeyDep) -> r.BankAccountState:
    return banking.unfreeze(app, actor, pan, body.reason, idempotency_key=key)


@router.post("/bank-accounts/{pan}/close")
def close(pan: str, body: CloseAccount, app: AppDep, actor: ActorDep, key: KeyDep) -> r.BankCloseOut:
    return banking.close(app, actor, pan, body.presented_citizen_id, idempotency_key=key)


@router.post("/bank-accounts/{pan}/pension", deprecated=True)
async def credit_pension(pan: str, body: Pension, app: AppDep, actor: ActorDep, key: KeyDep) -> r.BankMovementOut:
    """Deprecated, and refused (403 `forbidden`) to every token: pensions enter by the pension payer's batch
    job (`sscard account pension FILE`), never by a person's credential (docs/API.md, corrections within v1).
    Kept in v1 so that a client of it gets its refusal, not a missing route."""
    return await batching.acall(app, banking.credit_pension, actor, pan, body.amount_fen, body.period,
                                idempotency_key=key)


@router.get("/bank-accounts/{pan}/statement")
def statement(pan: str, app: AppDep, actor: ActorDep, limit: int = Query(20, ge=1, le=200),
              before_id: int | None = Query(None, ge=1)) -> r.BankStatementOut:
    return banking.statement(app, actor, pan, limit=limit, before_id=before_id)


@router.post("/ledger/expire-pending")
async def expire_pending(app: AppDep, actor: ActorDep, key: KeyDep) -> r.BankExpirePendingOut:
    # run by the group-commit writer in a transaction of its own (a sweep): no thread held meanwhile
    return await batching.acall(app, banking.expire_pending, actor, idempotency_key=key)


@router.get("/ledger/check")
def ledger_check(app: AppDep, actor: ActorDep) -> r.LedgerCheckOut:
    return banking.ledger_check(app, actor)
