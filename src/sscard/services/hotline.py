"""The hotline area's services: call state, identification on the bank line, the agent-transfer queue.

Call state (which menu a caller is in, who they proved to be) is kept in `hotline_calls` so any server
process can take a call's next turn. It is channel bookkeeping, not a business change, so loading and
saving it writes no audit record; everything the caller *does* goes through the business operations
(and their audit) with the caller as a cardholder on the hotline channel.

No entered secret is ever stored: a password is checked at the step it is typed and only the outcome
is kept. The one exception in shape is the new SS password between "new" and "new again": what is kept
is a keyed HMAC bound to the call (as the card's own password is kept), never the digits.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.orm import Session

from ..core.clock import as_utc
from ..core.errors import SscardError, register_messages
from ..core.identifiers import ascii_digits, mask_citizen_id, mask_name, validate_citizen_id
from ..core.passwords import check_new_pin, constant_time_equal
from ..core.roles import BANK_STAFF, CENTER_STAFF, Actor, Channel, Role
from ..core.states import BankStatus, SsStatus, effective_bank_status, effective_ss_status
from ..models.foundation import Bank, BankAccount, Card, Person
from ..models.hotline import HotlineAgentRequest, HotlineCall
from . import access, lookup
from . import passwords as pw
from .access import Scope
from .app import App
from .operation import Op, jsonable, operation, query

register_messages(
    {
        "call_conflict": (409, "通话状态已被更新，请重试", "The call was updated by another request: try again"),
        "call_not_found": (404, "未找到该通话", "Call not found"),
        "no_callback_number": (
            409,
            "来电未显示号码，无法登记回拨",
            "The caller's number is not shown: no call-back can be queued",
        ),
        "hotline_not_found": (404, "未找到该服务热线", "No such hotline"),
        "agent_request_taken": (
            409,
            "该来电已由其他坐席受理：只有受理人或主管可以办结",
            "Another agent took this call back: only they or a supervisor may close it",
        ),
        "step_not_verified": (
            409,
            "原密码尚未验证或验证已过期",
            "The old password has not been verified in this call, or that was too long ago",
        ),
    }
)

LINE_12333 = "12333"
GATEWAY_12333 = Actor(kind="channel", id="hotline_12333", role=Role.SYSTEM, name="12333 IVR",
                      channel=Channel.HOTLINE_12333)
GATEWAY_BANK = Actor(kind="channel", id="hotline_bank", role=Role.SYSTEM, name="bank hotline IVR",
                     channel=Channel.HOTLINE_BANK)
PENDING_PURPOSE = "hotline_pending_new_password"
VERIFIED_FOR = timedelta(minutes=10)  # an old password verified in a call is good for this long
SEAL_PURPOSE = "hotline_verified_secret"
CALL_FIELDS = ("call_sid", "line", "caller", "status", "node", "lang", "turn", "timeouts", "invalid", "attempts",
               "person_id", "identified_by", "after_identify", "slots", "started_at", "updated_at", "ended_at",
               "version")


def gateway(line: str) -> Actor:
    return GATEWAY_12333 if line == LINE_12333 else GATEWAY_BANK


def channel_of(line: str) -> Channel:
    return Channel.HOTLINE_12333 if line == LINE_12333 else Channel.HOTLINE_BANK


INITIAL_PASSWORD = "initial_password"
"""How a call says its caller was identified with the initial query password (`HotlineCall.identified_by`)."""
PERSONAL_DATA = "personal_data"
"""How a bank line call says its caller was identified by the citizen ID and the mobile number on record."""


def holder(person_id: int, name: str, line: str, identified_by: str = "") -> Actor:
    """The caller, once identified, acting for themselves on the hotline's channel. A caller identified with
    the initial query password acts as a cardholder who must change it first (`Actor.must_change_password`):
    the frame lets them do what every channel lets such a cardholder do (access.BEFORE_FIRST_CHANGE)."""
    actor = pw.cardholder_actor(person_id, name, channel_of(line), place=line)
    if identified_by == INITIAL_PASSWORD:
        return replace(actor, must_change_password=True)
    if identified_by == PERSONAL_DATA:  # the bank line's citizen ID + mobile number: no secret of the account's
        return replace(actor, personal_data_only=True)
    return actor


# ---------------------------------------------------------------- call state (no audit: bookkeeping)


def _call_dict(call: HotlineCall) -> dict[str, Any]:
    out = {f: getattr(call, f) for f in CALL_FIELDS}
    out["slots"] = dict(call.slots or {})
    return out


def load_call(app: App, call_sid: str) -> dict[str, Any] | None:
    def work(session: Session) -> dict[str, Any] | None:
        call = session.scalar(select(HotlineCall).where(HotlineCall.call_sid == call_sid))
        return _call_dict(call) if call else None

    return app.db.run(work)


def create_call(app: App, state: dict[str, Any]) -> dict[str, Any]:
    """Insert a new call's state; a twin request that inserted first wins (and this one is refused)."""
    now = app.clock.now()

    def work(session: Session) -> dict[str, Any]:
        if session.scalar(select(HotlineCall.id).where(HotlineCall.call_sid == state["call_sid"])) is not None:
            raise SscardError("call_conflict")
        call = HotlineCall(**{k: v for k, v in state.items() if k in CALL_FIELDS and k != "version"})
        call.slots = jsonable(kept_slots(state))
        call.started_at = now
        call.updated_at = now
        session.add(call)
        session.flush()
        return _call_dict(call)

    return app.db.run(work)


def claim_turn(app: App, state: dict[str, Any], slots: dict[str, Any]) -> bool:
    """Take the call's next turn before running it: the call's version moves on, and its slots become
    `slots` (the state's with a mark of the turn taken, which a request reading the call meanwhile sees),
    only if nobody moved the call since `state` was read; `state` then carries the new version, for
    save_call. False: another request took the turn first, and this one must run nothing."""

    def work(session: Session) -> bool:
        moved = session.execute(
            update(HotlineCall)
            .where(HotlineCall.call_sid == state["call_sid"], HotlineCall.version == state["version"])
            .values(version=state["version"] + 1, slots=jsonable(slots))
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(moved, "rowcount", 0) == 1)

    if not app.db.run(work):
        return False
    state["version"] += 1
    return True


def save_call(app: App, state: dict[str, Any]) -> dict[str, Any]:
    """Write a call's new state if nobody else moved it since it was read (optimistic, by version)."""
    now = app.clock.now()

    def work(session: Session) -> dict[str, Any]:
        call = session.scalar(select(HotlineCall).where(HotlineCall.call_sid == state["call_sid"]))
        if call is None:
            raise SscardError("call_not_found")
        if call.version != state["version"]:
            raise SscardError("call_conflict")
        for f in ("status", "node", "lang", "turn", "timeouts", "invalid", "attempts", "person_id",
                  "identified_by", "after_identify"):
            setattr(call, f, state[f])
        call.slots = jsonable(kept_slots(state))
        call.updated_at = now
        if state["status"] != "active" and call.ended_at is None:
            call.ended_at = now
        session.flush()
        return _call_dict(call)

    return app.db.run(work)


def pending_digest(app: App, call_sid: str, value: str) -> str:
    """A new password between its two entries: a keyed digest bound to this call, never the digits."""
    return app.secrets.pin_digest(PENDING_PURPOSE, call_sid, value)


# ---------------------------------------------------------------- what the caller's card looks like


@query("hotline.my_cards", roles={Role.CARDHOLDER}, scope=Scope.OWN)
def my_cards(op: Op) -> dict[str, Any]:
    """The caller's own cards, newest first, with the numbers the hotline needs to act on them."""
    assert op.actor.person_id is not None  # a cardholder actor always carries its person id
    person = lookup.person_by_id(op.session, op.actor.person_id, op.actor)
    cards = op.session.scalars(select(Card).where(Card.person_id == person.id).order_by(Card.id.desc())).all()
    out = []
    for card in cards:
        account = op.session.scalar(select(BankAccount).where(BankAccount.card_id == card.id))
        out.append({
            "card_number": card.card_number,
            "ss_status": effective_ss_status(card.ss_status, card.loss_expires_at, op.now),
            "bank_status": effective_bank_status(account.status, account.loss_expires_at, op.now) if account else None,
            "replaces": card.replaces_card_id is not None,
        })
    return {"person_id": person.id, "cards": out}


def issued_card(cards: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The card the caller holds (or has lost): the newest issued one that is not cancelled."""
    for card in cards:
        if card["ss_status"] in (SsStatus.NORMAL, SsStatus.TEMPORARY_LOSS, SsStatus.FORMAL_LOSS):
            return card
    return None


@query("hotline.line_info", roles={Role.SYSTEM}, scope=Scope.CITY)
def line_info(op: Op, line: str) -> dict[str, Any]:
    """What a hotline number means: 12333, or a bank's line by `bank:<code>` or by its printed number."""
    if line == LINE_12333:
        return {"line": LINE_12333, "bank": None}
    code = line.split(":", 1)[1] if line.startswith("bank:") else None
    q = select(Bank).where(Bank.code == code) if code else select(Bank).where(Bank.hotline == line)
    bank = op.session.scalar(q.order_by(Bank.id).limit(1))
    if bank is None:
        raise SscardError("hotline_not_found")
    return {"line": f"bank:{bank.code}", "bank": {"id": bank.id, "code": bank.code, "name": bank.name,
                                                  "name_en": bank.name_en or bank.name, "hotline": bank.hotline}}


# ---------------------------------------------------------------- bank line identification


@operation("hotline.bank_identify", roles={Role.SYSTEM}, scope=Scope.CITY, keyed=False, secrets=('pin',))
def bank_identify(op: Op, bank_code: str, citizen_id: str, *, pin: str | None = None,
                  phone: str | None = None) -> dict[str, Any]:
    """Citizen ID first, then the bank PIN (with its lockout) or the mobile number on record, RULES §5.

    Someone who has just lost the card rarely knows its 19 digits, but knows their ID number: the
    caller's card at this bank is found from the ID. The second item must be something the ID does not
    reveal (a birth date is printed inside the ID): the card's PIN, or the mobile number the cardholder
    registered (银行预留手机号), which a finder of a lost wallet with the ID card in it does not know.
    An unknown ID, an ID with no card at this bank, a card with no PIN yet and a wrong second item all
    answer the same refusal (nothing to enumerate) and leave an audit record; a wrong PIN counts toward
    the PIN's lock."""
    from . import banking

    method = "pin" if pin is not None else "personal_data"
    wrong = "wrong_pin" if pin is not None else "wrong_password"
    bank = lookup.bank_by_code(op.session, bank_code)
    account, person = _caller_account(op, bank, citizen_id)
    if account is None or person is None:
        op.audit("bank", bank.code, method=method)
        raise SscardError(wrong, commit=True)
    op.audit("bank_account", account.pan, person_id=account.person_id, method=method)
    if pin is not None:
        try:
            banking.check_pin(op, account, pin)
        except SscardError as err:
            if err.code == "pin_not_set":  # not activated: said like any other miss
                raise SscardError(wrong, commit=True) from None
            raise err.without_count() from None
    elif not (person.phone and constant_time_equal(_phone_digits(phone or ""), _phone_digits(person.phone))):
        raise SscardError(wrong, commit=True)
    op.audit("bank_account", account.pan, person_id=person.id, after="identified", method=method)
    return {"person_id": person.id, "name": person.name, "pan": account.pan}


def _phone_digits(text: str) -> str:
    """A mobile number as its 11 digits (+86, spaces and dashes dropped)."""
    digits = "".join(c for c in text if ascii_digits(c))
    return digits[2:] if len(digits) == 13 and digits.startswith("86") else digits


def _caller_account(op: Op, bank: Bank, citizen_id: str) -> tuple[BankAccount | None, Person | None]:
    """The caller's account at this bank that a card can move money from: the current card's when it is
    activated, else the newest activated one (after a renewal or replacement, the old card's account stays
    active, and usable, until the new card is activated: RULES §6; session 22's hotline probe found it could
    not be reported lost, the line picking the new card's account, not activated yet). With none activated,
    the current card's, else the newest not closed."""
    try:
        person = lookup.person_by_citizen_id(op.session, validate_citizen_id(citizen_id))
    except SscardError:
        return None, None
    accounts = [a for a in op.session.scalars(
        select(BankAccount).where(BankAccount.person_id == person.id, BankAccount.bank_id == bank.id)
        .order_by(BankAccount.id.desc())).all() if a.status != BankStatus.CLOSED]
    if not accounts:
        return None, person
    current = lookup.current_card(op.session, person.id)
    in_use = [a for a in accounts if a.status != BankStatus.NOT_ACTIVATED] or accounts
    chosen = next((a for a in in_use if current is not None and a.card_id == current.id), in_use[0])
    return chosen, person


@operation("hotline.bank_pin_verify", roles={Role.CARDHOLDER}, scope=Scope.OWN, keyed=False, secrets=('pin',))
def verify_bank_pin(op: Op, pan: str, pin: str) -> dict[str, Any]:
    """The old PIN of a PIN change, checked at the step it is typed (3 wrong lock it, RULES §4)."""
    from . import banking

    account = lookup.account_by_pan(op.session, pan, op.actor)
    banking.require_pin_changeable(op, account)  # told at the first prompt, not after the new PIN twice
    banking.check_pin(op, account, pin)
    op.audit("bank_account", account.pan, person_id=account.person_id, after="pin_verified")
    return {"verified": True, "seal": secret_seal(op.app, account.pan, account.pin_digest)}


def secret_seal(app: App, subject: str, digest: str | None) -> str:
    """What a call keeps of the old secret it verified: a keyed digest of that secret's stored digest (never
    the digits), read in the verification's transaction, so that the last step of a change can tell the
    secret is still the one verified."""
    return app.secrets.pin_digest(SEAL_PURPOSE, subject, digest or "")


@operation("hotline.bank_pin_change", roles={Role.CARDHOLDER}, scope=Scope.OWN, secrets=('new_again',))
def change_pin_by_phone(op: Op, call_sid: str, pan: str, new_again: str) -> dict[str, Any]:
    """The bank hotline's PIN change (old, new, new again at three prompts), like the SS one below."""
    from . import banking

    call = _verified_step(op, call_sid, pan)
    account = lookup.account_by_pan(op.session, pan, op.actor)
    banking.require_pin_changeable(op, account)
    _still_the_secret_verified(op, call, account.pan, account.pin_digest)
    lock = banking.pin_lock(account)
    if lock.is_locked(op.now):  # locked since it was verified: only a reset lifts it
        raise lock.refusal("pin_locked").without_count()
    _second_entry_matches(op, call_sid, new_again)
    person = lookup.person_by_id(op.session, account.person_id)
    check_new_pin(new_again, person.citizen_id, person.birth_date)
    banking.set_pin(op, account, new_again)
    op.audit("bank_account", account.pan, person_id=account.person_id, after="pin_changed")
    return {"changed": True}


def _verified_step(op: Op, call_sid: str, subject: str) -> HotlineCall:
    """This call (the caller's own, still going) verified the old secret of `subject`, and recently."""
    call = op.session.scalar(select(HotlineCall).where(HotlineCall.call_sid == call_sid))
    if call is None or call.person_id != op.actor.person_id or call.status != "active":
        raise SscardError("call_not_found")
    slots = call.slots or {}
    verified_at = slots.get("old_ok_at")
    if slots.get("old_ok") != subject or not verified_at or \
            op.now - as_utc(datetime.fromisoformat(verified_at)) > VERIFIED_FOR:
        raise SscardError("step_not_verified")
    return call


def _still_the_secret_verified(op: Op, call: HotlineCall, subject: str, digest: str | None) -> None:
    """The secret verified at its prompt has not been reset or changed since (session 24's timing probe: a
    caller who knew the old PIN finished the change after the cardholder had reset it at the outlet, and
    the caller's PIN replaced the one just chosen there; the same with the SS password reset at a window)."""
    if not constant_time_equal((call.slots or {}).get("old_ok_seal", ""), secret_seal(op.app, subject, digest)):
        raise SscardError("step_not_verified")


def _second_entry_matches(op: Op, call_sid: str, new_again: str) -> None:
    call = op.session.scalar(select(HotlineCall).where(HotlineCall.call_sid == call_sid))
    assert call is not None  # both callers ran _verified_step(op, call_sid, ...) first, which refuses a missing call
    if not constant_time_equal((call.slots or {}).get("pending_new", ""), pending_digest(op.app, call_sid, new_again)):
        raise SscardError("password_mismatch")


# ---------------------------------------------------------------- SS password change by phone


@operation("hotline.ss_password_verify", roles={Role.CARDHOLDER}, scope=Scope.OWN, keyed=False, secrets=('password',))
def verify_ss_password_by_phone(op: Op, card_number: str, password: str) -> dict[str, Any]:
    """12333's old SS password, checked at its prompt (3 wrong in a row lock it, RULES §4), as
    ss_password.verify checks it; the answer also carries the seal the change's last step checks."""
    card = pw.card_in_use(op, card_number)
    pw.check_ss_password(op, card, password)
    return {"card_number": card.card_number, "verified": True,
            "seal": secret_seal(op.app, card.card_number, card.ss_pw_digest)}


@operation("hotline.ss_password_change", roles={Role.CARDHOLDER}, scope=Scope.OWN, secrets=('new_again',))
def change_ss_password_by_phone(op: Op, call_sid: str, card_number: str, new_again: str) -> dict[str, Any]:
    """The last step of 12333's change (old, new, new again), each typed at its own prompt.

    The old password was verified at its step (hotline.ss_password_verify, with its 3-strikes lock), and
    is still the one verified and not locked since (the seal it handed the call); the new
    one checked for weakness at its step; here, in one transaction, the call's record must show both,
    and the second entry must match the first."""
    call = _verified_step(op, call_sid, card_number)
    card = lookup.card_by_number(op.session, card_number, op.actor)
    if effective_ss_status(card.ss_status, card.loss_expires_at, op.now) != SsStatus.NORMAL:
        raise SscardError("card_not_usable", state=card.ss_status)
    _still_the_secret_verified(op, call, card.card_number, card.ss_pw_digest)
    if card.ss_pw_locked:  # locked since it was verified: only a reset at a window lifts it
        raise pw.ss_lock(card).refusal("password_locked")
    _second_entry_matches(op, call_sid, new_again)
    person = lookup.person_by_id(op.session, card.person_id)
    check_new_pin(new_again, person.citizen_id, person.birth_date)
    card.ss_pw_digest = op.secrets.pin_digest(pw.SS_PURPOSE, card.card_number, new_again)
    card.ss_pw_failures = 0
    op.audit("card", card.card_number, person_id=card.person_id, after="ss_password_changed")
    return {"card_number": card.card_number, "changed": True}


# ---------------------------------------------------------------- agent-transfer queue


@operation("hotline.agent_request", roles={Role.SYSTEM}, scope=Scope.CITY)
def request_agent(op: Op, call_sid: str, node: str, topic: str = "", callback_number: str = "") -> dict[str, Any]:
    """The caller pressed 0: queue them for a human agent (the console shows the queue), keeping the
    number the agent calls back on (digits and a leading +; nothing else is kept).

    An agent calls the caller back, so a request needs a number to call (`no_callback_number`: a withheld
    one is not queued, the caller is told what to do instead), and a number waits once on a line: asked
    again while its request is open, the answer is that request (`queued` false, with its time and
    position), and nothing is added.

    Only a line's own gateway queues its calls: the request names the caller as the call identified them
    and the number the agent will call back, so a call of another line (or any other caller of the
    operation) is answered call_not_found, as if it did not exist."""
    call = op.session.scalar(select(HotlineCall).where(HotlineCall.call_sid == call_sid))
    if call is None or op.actor.kind != "channel" or op.actor.channel != channel_of(call.line):
        raise SscardError("call_not_found")
    number = callback_number_of(callback_number)
    if not number:
        raise SscardError("no_callback_number")
    req = op.session.scalar(
        select(HotlineAgentRequest)
        .where(HotlineAgentRequest.line == call.line, HotlineAgentRequest.status == "open",
               HotlineAgentRequest.callback_number == number)
        .order_by(HotlineAgentRequest.id).limit(1)
    )
    queued = req is None
    if req is None:
        req = HotlineAgentRequest(call_id=call.id, line=call.line, person_id=call.person_id, node=node,
                                  topic=topic[:64], lang=call.lang, status="open", requested_at=op.now, note="",
                                  callback_number=number)
        op.session.add(req)
        op.session.flush()
    position = op.session.scalar(
        select(func.count()).select_from(HotlineAgentRequest)
        .where(HotlineAgentRequest.line == call.line, HotlineAgentRequest.status == "open",
               HotlineAgentRequest.id <= req.id)
    )
    if queued:
        op.audit("hotline_agent_request", req.id, after="open", person_id=call.person_id, line=call.line, node=node)
    else:  # nothing changed: the record says the number asked again, and which request it already has
        op.audit("hotline_agent_request", req.id, before="open", after="open", person_id=call.person_id,
                 line=call.line, node=node, asked_again=True)
    return {"id": req.id, "line": call.line, "position": position, "queued": queued,
            "requested_at": as_utc(req.requested_at)}


WITHHELD_NUMBERS = frozenset({"+266696687", "+86282452253", "+8656696", "+7378742833", "+2562533"})
"""What Twilio sends as `From` when the caller's number is not shown: ANONYMOUS, UNAVAILABLE, UNAVAIL,
RESTRICTED and BLOCKED spelt on a keypad. They look like numbers (one of them like a Chinese one) but are
every withheld caller at once: no agent can call one back, and as a login throttle's client they would let
one withheld caller lock out all the others."""


def callback_number_of(raw: str) -> str:
    """A caller's number in E.164 ("+8613800138000"), or "" if it is not one (the terminal's `sscard phone`
    says "terminal"; a withheld number: "anonymous" or WITHHELD_NUMBERS). The one test of a caller's number:
    the agent queue calls it back, the hotlines' login throttle counts by it. One caller is one number
    however the network writes it ("13800138000", "+86 138 0013 8000", "008613800138000"): the throttle
    keyed on the text as given counted each spelling as another caller (session 24's probe). Parsed by
    phonenumbers (Google's libphonenumber rules), a number without a country code read as China's."""
    import phonenumbers  # here, not at import: 50 ms that a server's start does not need

    raw = (raw or "").strip()
    digits = raw[1:] if raw.startswith("+") else raw
    if raw in WITHHELD_NUMBERS or f"+{digits}" in WITHHELD_NUMBERS:
        return ""
    try:
        number = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_possible_number(number):
        return ""
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return "" if e164 in WITHHELD_NUMBERS else e164


def _own_line(op: Op) -> str | None:
    """The line an agent answers: center staff 12333, bank staff their own bank's line; None for anyone
    else (an operator, who oversees every line and answers none)."""
    if op.actor.role in CENTER_STAFF:
        return LINE_12333
    if op.actor.role in BANK_STAFF:
        bank = op.session.get(Bank, op.actor.bank_id) if op.actor.bank_id else None
        return f"bank:{bank.code}" if bank else ""
    return None


SUPERVISORS = frozenset({Role.CENTER_SUPERVISOR, Role.BANK_SUPERVISOR})


def _customers_only(op: Op) -> ColumnElement[bool] | None:
    """On a bank's line, the bank's staff handle callers who are its customers (or not identified): a caller
    identified on the line holds an account there, and one whose accounts there are all gone is not
    the bank's any longer (services.lookup.person_in_scope's rule)."""
    if not access.is_bank_side(op.actor):
        return None
    req = HotlineAgentRequest
    return or_(req.person_id.is_(None),
               exists().where(Card.person_id == req.person_id, Card.bank_id == op.actor.bank_id))


def _request_view(op: Op, req: HotlineAgentRequest) -> dict[str, Any]:
    person = op.session.get(Person, req.person_id) if req.person_id else None
    waited = op.now - as_utc(req.requested_at)
    return {
        "id": req.id,
        "line": req.line,
        "status": req.status,
        "node": req.node,
        "topic": req.topic,
        "lang": req.lang,
        "requested_at": req.requested_at,
        "waiting_minutes": max(0, int(waited.total_seconds() // 60)),
        "identified": person is not None,
        "person": {"id": person.id, "name": mask_name(person.name), "citizen_id": mask_citizen_id(person.citizen_id)}
        if person else None,
        "card": _card_summary(op, person.id) if person else None,
        "taken_by": req.taken_by,
        "callback_number": req.callback_number or None,  # erased once done
        "call_status": call.status if (call := op.session.get(HotlineCall, req.call_id)) else "ended",
        "taken_at": req.taken_at,
        "note": req.note,
    }


def _card_summary(op: Op, person_id: int) -> dict[str, Any] | None:
    """The caller's current card as the agent sees it (masked): both sides' states in effect now."""
    from .cards import card_view

    card = lookup.current_card(op.session, person_id)
    if card is None:
        return None
    view = card_view(op.session, card, op.now, masked=True)
    return {"card_number": view["card_number"], "ss_status": view["ss_status"],
            "ss_loss_expires_at": view["ss_loss_expires_at"], "bank": view["bank"]["code"],
            "bank_status": view["bank"]["status"]}


@query("hotline.agent_queue", roles=CENTER_STAFF | BANK_STAFF | {Role.OPERATOR}, scope=Scope.OWN)
def agent_queue(op: Op, include_taken: bool = True) -> dict[str, Any]:
    """Callers waiting for (or talking to) a human agent, oldest first; masked like every list. Each agent
    sees what they may act on: their own line's open requests (a bank's: its customers' or unidentified
    callers') and those they took; a supervisor also those their colleagues took (to close them); the
    operator every line's, to oversee."""
    statuses = ["open", "taken"] if include_taken else ["open"]
    req = HotlineAgentRequest
    q = select(req).where(req.status.in_(statuses))
    line = _own_line(op)
    if line is not None:
        access.require_own_line(op.actor, line, line)  # the filter below keeps to it
        q = q.where(req.line == line)
        if op.actor.role not in SUPERVISORS:
            q = q.where(or_(req.status == "open", req.taken_by == str(op.actor.id)))
    customers = _customers_only(op)
    if customers is not None:
        q = q.where(customers)
    rows = op.session.scalars(q.order_by(req.id)).all()
    return {"requests": [_request_view(op, r) for r in rows], "open": sum(r.status == "open" for r in rows)}


def _own_request(op: Op, request_id: int) -> HotlineAgentRequest:
    """A request of the agent's own line (and, on a bank's line, about the bank's customer), locked for the
    change; anything else answers not_found, as if it did not exist."""
    req = op.session.get(HotlineAgentRequest, request_id, with_for_update=True)
    if req is None:
        raise SscardError("not_found", what=("转人工请求", "agent request"))
    access.require_own_line(op.actor, _own_line(op), req.line)
    if req.person_id is not None and access.is_bank_side(op.actor):
        try:
            lookup.person_in_scope(op.rows, op.actor, req.person_id)
        except SscardError:
            raise SscardError("not_found", what=("转人工请求", "agent request")) from None
    return req


@operation("hotline.agent_take", roles=CENTER_STAFF | BANK_STAFF, scope=Scope.OWN)
def take_agent_request(op: Op, request_id: int) -> dict[str, Any]:
    """An agent of the request's line calls the caller back: an open request becomes theirs."""
    req = _own_request(op, request_id)
    if req.status != "open":
        raise SscardError("illegal_transition", state=req.status, event="take")
    req.status, req.taken_by, req.taken_at = "taken", str(op.actor.id), op.now
    op.audit("hotline_agent_request", req.id, before="open", after="taken", person_id=req.person_id)
    return _request_view(op, req)


@operation("hotline.agent_close", roles=CENTER_STAFF | BANK_STAFF, scope=Scope.OWN)
def close_agent_request(op: Op, request_id: int, note: str = "") -> dict[str, Any]:
    """Done: an open request by any agent of its line (the caller hung up, or was helped at once), a taken
    one only by the agent who took it or a supervisor of the line (`agent_request_taken`)."""
    req = _own_request(op, request_id)
    if req.status == "closed":
        raise SscardError("illegal_transition", state=req.status, event="close")
    if req.status == "taken" and req.taken_by != str(op.actor.id) and op.actor.role not in SUPERVISORS:
        raise SscardError("agent_request_taken")
    before = req.status
    req.status, req.closed_at, req.note = "closed", op.now, (note or "").strip()[:128]
    req.taken_by = req.taken_by or str(op.actor.id)
    req.callback_number = ""  # the number was kept to call back; done, it is not kept any longer
    op.audit("hotline_agent_request", req.id, before=before, after="closed", person_id=req.person_id)
    return _request_view(op, req)


@query("hotline.check_new_pin", roles={Role.CARDHOLDER}, scope=Scope.CITY, secrets=('new',))
def check_new_six_digits(op: Op, new: str) -> dict[str, Any]:
    """Refuse a weak new SS password or bank PIN at the step it is typed (RULES §4), before it is asked again."""
    assert op.actor.person_id is not None  # a cardholder actor always carries its person id
    person = lookup.person_by_id(op.session, op.actor.person_id, op.actor)
    check_new_pin(new, person.citizen_id, person.birth_date)
    return {"acceptable": True}


KEPT_AFTER_END = ("name", "card_tail", "pan_tail")  # what an ended call keeps of its slots: nothing personal


def kept_slots(state: dict[str, Any]) -> dict[str, Any]:
    """The slots a call's row may hold: all of them while the call goes on (the next step needs the ID
    typed, the card found), only the masked ones (KEPT_AFTER_END) once it has ended, however it ended (a
    goodbye, the provider's status callback, an apology, the idle sweep): every write of a call goes
    through here (create_call, save_call, sweep_idle_calls)."""
    slots = dict(state.get("slots") or {})
    if state.get("status", "active") == "active":
        return slots
    return {k: v for k, v in slots.items() if k in KEPT_AFTER_END}


@operation("hotline.sweep_idle_calls", roles={Role.SYSTEM, Role.OPERATOR}, scope=Scope.CITY)
def sweep_idle_calls(op: Op, idle_minutes: int = 10) -> dict[str, Any]:
    """End calls nobody has touched for a while (the caller hung up unseen) and drop their personal slots.

    `idle_minutes` is a whole number of at least 1: anything else is refused `invalid_request` (until session 29
    -1 or 0 was taken as 1, ending calls the operator had not asked to end)."""
    if isinstance(idle_minutes, bool) or not isinstance(idle_minutes, int) or idle_minutes < 1:
        raise SscardError("invalid_request")
    cutoff = op.now - timedelta(minutes=idle_minutes)
    calls = op.session.scalars(
        select(HotlineCall).where(HotlineCall.status == "active", HotlineCall.updated_at < cutoff)
    ).all()
    for call in calls:
        call.status = "ended"
        call.ended_at = op.now
        call.slots = kept_slots({"status": call.status, "slots": call.slots})
    op.audit("sweep", "idle_calls", ended=len(calls))
    return {"ended": len(calls)}
