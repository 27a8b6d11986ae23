"""What the menus' actions do: each calls the business services as the channel or as the caller.

An action gets the call's context and, for an input node, what was typed; it answers an Outcome (a
route name and lines to say). A secret typed by the caller is passed to the service that checks it and
then dropped: it is never put in the call's slots, a line, an audit detail or a log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from ..core.clock import local_text
from ..core.errors import SscardError
from ..core.identifiers import is_valid_citizen_id, mask_name
from ..core.money import format_yuan, spoken_yuan
from ..i18n import label
from ..services import access, banking, cards, loss, throttle
from ..services import hotline as svc
from ..services import passwords as pw
from .script import Ctx, Outcome, condition, handler

# A new card on its way (replacement progress): a formally lost card beside one is being replaced.
REPLACEMENT_ON_ITS_WAY = ("applied", "in_production", "ready", "sealed")
# Transient slots of the SS password change: cleared whenever the change starts over or ends.
PASSWORD_SLOTS = ("old_ok", "old_ok_at", "old_ok_seal", "pending_new")


def _holder(ctx: Ctx):
    return svc.holder(ctx.state["person_id"], ctx.slots.get("name", ""), ctx.line, ctx.state.get("identified_by", ""))


def _local(ctx: Ctx, iso: str | None) -> str:
    return local_text(iso, ctx.lang)


def _day(ctx: Ctx, iso: str | None) -> str:
    return local_text(iso, ctx.lang, day=True)


def _identify_failed(ctx: Ctx, err: SscardError) -> Outcome:
    """A refused identification: counted across the whole call, whichever step it came back to."""
    ctx.slots["id_failures"] = int(ctx.slots.get("id_failures", 0)) + 1
    if ctx.slots["id_failures"] >= ctx.menu.max_attempts:
        return Outcome("too_many", [ctx.error(err)])
    return Outcome("wrong", [ctx.error(err)])


# ---------------------------------------------------------------- identification (both lines)


def _guarded(ctx: Ctx, login: str, attempt: Callable[[], dict]) -> dict:
    """An identification under the login throttle, the caller's number as its client (as the web doors count
    an address): failures on both hotlines count with those of every door, so calling again and again does
    not test more logins than a browser could (session 21's probe: 12 failed identifications in a minute
    left the caller's budget untouched). A withheld number is throttled by each call's tries and each
    account's lock only: every withheld caller sharing one budget would let one of them lock out the rest."""
    caller = svc.callback_number_of(ctx.state.get("callback_number") or "")
    if not caller:  # withheld ("", "anonymous", Twilio's +266696687...): not one client
        return attempt()
    door = "12333" if ctx.line == svc.LINE_12333 else "bank_hotline"
    return throttle.guarded_login(ctx.app, f"tel:{caller}", door, login, attempt)


def _throttled(ctx: Ctx, err: SscardError) -> Outcome:
    return Outcome("too_many", [ctx.text("caller_throttled", seconds=err.params.get("seconds", 60))])


@handler("capture_citizen_id")
def capture_citizen_id(ctx: Ctx, value: str | None) -> Outcome:
    """18 characters; an ID ending in X is typed with * as its last key."""
    number = (value or "").replace("*", "X").upper()
    if not is_valid_citizen_id(number):
        return Outcome("invalid", [ctx.text("bad_citizen_id")])
    ctx.slots[ctx.node.slot or "citizen_id"] = number
    return Outcome("ok")


@handler("identify_12333")
def identify_12333(ctx: Ctx, value: str | None) -> Outcome:
    """SS number + information query password (RULES §5): the 5-strikes lock is the service's."""
    login = ctx.slots.get("login")
    if not login:
        return Outcome("restart")
    try:
        out = _guarded(ctx, login, lambda: pw.login_with_query_password(ctx.app, svc.GATEWAY_12333, login, value or ""))
    except SscardError as err:
        if err.code == "too_many_attempts":
            ctx.slots.pop("login", None)
            return _throttled(ctx, err)
        if err.code == "password_locked":
            ctx.slots.pop("login", None)
            return Outcome("locked", [ctx.error(err), ctx.text("locked_help")])
        if err.code != "wrong_password":
            raise
        # counted across the whole call, as on the bank line: backing out with * and typing another ID
        # started the count again (session 22's probe: 24 wrong passwords over 12 IDs in one call)
        return _identify_failed(ctx, err)
    ctx.slots.pop("login", None)
    ctx.slots.pop("id_failures", None)
    # the initial query password is printed on the card: such a caller may report a loss and hear the state,
    # nothing else (access.BEFORE_FIRST_CHANGE; docs/RULES.md gap 16), and is told so now
    initial = bool(out["must_change_password"])
    ctx.state.update(person_id=out["person_id"], identified_by=svc.INITIAL_PASSWORD if initial else "query_password")
    ctx.slots["name"] = mask_name(out["name"])
    return Outcome("ok", [ctx.text("identified")] + ([ctx.text("initial_password_limits")] if initial else []))


def _bank_identified(ctx: Ctx, out: dict, method: str) -> Outcome:
    ctx.slots.pop("citizen_id", None)
    ctx.slots.pop("id_failures", None)
    ctx.state.update(person_id=out["person_id"], identified_by=method)
    ctx.slots["name"] = mask_name(out["name"])
    ctx.slots["pan"] = out["pan"]  # the caller's card at this bank, found from the citizen ID
    ctx.slots["pan_tail"] = out["pan"][-4:]
    return Outcome("ok", [ctx.text("identified"), ctx.text("card_found", pan_tail=out["pan"][-4:])])


def _identify_bank(ctx: Ctx, **secret: str) -> Outcome:
    if not ctx.slots.get("citizen_id"):
        return Outcome("restart")
    citizen_id = ctx.slots["citizen_id"]
    try:
        out = _guarded(ctx, citizen_id, lambda: svc.bank_identify(ctx.app, svc.GATEWAY_BANK, ctx.info["bank"]["code"],
                                                                  citizen_id, **secret))
    except SscardError as err:
        if err.code == "too_many_attempts":
            ctx.slots.pop("citizen_id", None)
            return _throttled(ctx, err)
        if err.code == "pin_locked":  # said as a wrong PIN: a lock tells the caller the ID has a card here,
            err = SscardError("wrong_pin")  # which an unknown ID never hears (R5.4; session 22's probe)
        if err.code not in ("wrong_pin", "wrong_password"):
            raise
        outcome = _identify_failed(ctx, err)
        if "phone" in secret:  # not a password: say what did not match, never which of the two
            outcome.lines[:] = [ctx.text("id_not_matched")]
        return outcome
    return _bank_identified(ctx, out, "pin" if "pin" in secret else svc.PERSONAL_DATA)


@handler("identify_bank_phone")
def identify_bank_phone(ctx: Ctx, value: str | None) -> Outcome:
    """Citizen ID + the mobile number on record: personal data RULES §5 accepts that the ID does not reveal
    (the birth date is inside the ID number the caller has just typed)."""
    return _identify_bank(ctx, phone=(value or "").strip())


@handler("identify_bank_pin")
def identify_bank_pin(ctx: Ctx, value: str | None) -> Outcome:
    """Citizen ID + bank PIN; a wrong PIN counts toward the PIN's lock (bank_pin.max_failures)."""
    return _identify_bank(ctx, pin=value or "")


# ---------------------------------------------------------------- 12333: the card


@handler("pick_card")
def pick_card(ctx: Ctx, value: str | None) -> Outcome:
    """Find the caller's issued card; the route is its SS state (normal, temporary_loss, formal_loss) or none."""
    for key in PASSWORD_SLOTS:
        ctx.slots.pop(key, None)
    mine = svc.my_cards(ctx.app, _holder(ctx))
    card = svc.issued_card(mine["cards"])
    if card is None:
        return Outcome("none", [ctx.text("no_card")])
    ctx.slots["card_number"] = card["card_number"]
    ctx.slots["card_tail"] = card["card_number"][-4:]
    return Outcome(str(card["ss_status"]))


def _pick_card_to(ctx: Ctx, operation: str) -> Outcome:
    """pick_card, for a change the caller is about to confirm (`operation`): a caller identified with the
    initial query password, whom the frame will not let make it, hears why at once (route initial_password)."""
    if not access.allowed_before_first_change(_holder(ctx), operation):
        return Outcome("initial_password", [ctx.text("initial_password_refused")])
    return pick_card(ctx, None)


@handler("pick_card_to_cancel_loss")
def pick_card_to_cancel_loss(ctx: Ctx, value: str | None) -> Outcome:
    return _pick_card_to(ctx, "ss_loss.cancel")


@handler("pick_card_to_change_password")
def pick_card_to_change_password(ctx: Ctx, value: str | None) -> Outcome:
    return _pick_card_to(ctx, "hotline.ss_password_change")


@handler("read_status")
def read_status(ctx: Ctx, value: str | None) -> Outcome:
    """Every card the caller has that matters now: the issued one and any replacement on its way."""
    holder = _holder(ctx)
    mine = svc.my_cards(ctx.app, holder)["cards"]
    lines: list[str] = []
    replacing = any(entry["ss_status"] in REPLACEMENT_ON_ITS_WAY for entry in mine)
    for entry in mine:
        if entry["ss_status"] == "cancelled":
            continue
        view = cards.card_status(ctx.app, holder, entry["card_number"])
        lines.append(_card_line(ctx, entry["card_number"][-4:], view, replacing))
    if not lines:
        return Outcome("none", [ctx.text("no_card")])
    return Outcome("ok", lines)


def _card_line(ctx: Ctx, tail: str, view: dict, replacing: bool = False) -> str:
    """One card's state on both sides. A lost card's application password is not spoken of (it cannot be
    changed while lost, and the portal says nothing of it either), and a formally lost card whose replacement
    is on its way is not sent to apply for one (session 27's probe: both were said, after the new card's line)."""
    ss = view["ss_status"]
    bank = view["bank"]
    bank_name = bank["name"] if ctx.lang == "zh" else (bank["name_en"] or bank["name"])
    params = {"tail": tail, "bank": bank_name, "hotline": bank["hotline"]}
    if ss in ("applied", "in_production"):
        return ctx.text(f"card_{ss}", applied=_local(ctx, view["applied_at"]), **params)
    if ss in ("ready", "sealed"):
        return ctx.text(f"card_{ss}", center=_center_name(ctx, view["ready_center"] or ""), **params)
    said = "card_formal_loss_replacing" if ss == "formal_loss" and replacing else f"card_{ss}"
    head = ctx.text(said, lapses=_local(ctx, view["ss_loss_expires_at"]), **params)
    password = ctx.text("ss_password_initial" if view["ss_password"]["initial"] else "ss_password_set")
    if view["ss_password"]["locked"]:
        password = ctx.text("ss_password_locked")
    if ss != "normal":
        password = ""
    status = bank["status"] or "not_activated"
    deadline = bank["activation_deadline"]
    if status == "not_activated" and deadline and date.fromisoformat(str(deadline)[:10]) < ctx.app.clock.today():
        status = "activation_passed"  # the window is over: a date in the past is no deadline (R3: extend first)
    bank_line = ctx.text(f"bank_{status}", deadline=_day(ctx, deadline), **params)
    return " ".join(part for part in (head, password, bank_line) if part)


def _center_name(ctx: Ctx, name: str) -> str:
    """A center as the caller's language names it (an English caller hears its English name)."""
    if ctx.lang == "zh" or not name:
        return name
    from ..services.staff import banks_and_places

    return next((c["name_en"] for c in banks_and_places(ctx.app)["centers"] if c["name"] == name and c["name_en"]),
                name)


@handler("ss_temporary_loss")
def ss_temporary_loss(ctx: Ctx, value: str | None) -> Outcome:
    try:
        out = loss.report_temporary_loss(ctx.app, _holder(ctx), ctx.slots["card_number"])
    except SscardError as err:
        return Outcome("refused", [ctx.error(err)])
    return Outcome("ok", [ctx.text("loss_done", lapses=_local(ctx, out["lapses_at"])), out["reminder"][ctx.lang]])


@handler("ss_cancel_loss")
def ss_cancel_loss(ctx: Ctx, value: str | None) -> Outcome:
    try:
        loss.cancel_ss_loss(ctx.app, _holder(ctx), ctx.slots["card_number"])
    except SscardError as err:
        return Outcome("refused", [ctx.error(err)])
    return Outcome("ok", [ctx.text("unloss_done")])


# ---------------------------------------------------------------- 12333: SS application password


@handler("ss_password_old")
def ss_password_old(ctx: Ctx, value: str | None) -> Outcome:
    """The old password, checked now (ss_password.verify: 3 wrong in a row lock it until a reset)."""
    card_number = ctx.slots.get("card_number")
    if not card_number:
        return Outcome("restart")
    try:
        verified = svc.verify_ss_password_by_phone(ctx.app, _holder(ctx), card_number, value or "")
    except SscardError as err:
        if err.code == "password_locked":
            return Outcome("locked", [ctx.error(err)])
        if err.code == "wrong_password":
            return Outcome("wrong", [ctx.error(err)])
        return Outcome("refused", [ctx.error(err)])
    ctx.slots["old_ok"] = card_number
    ctx.slots["old_ok_at"] = ctx.app.clock.now().isoformat()
    ctx.slots["old_ok_seal"] = verified["seal"]  # what the change step checks the password against
    return Outcome("ok")


@handler("ss_password_new")
@handler("bank_pin_new")
def new_six_digits(ctx: Ctx, value: str | None) -> Outcome:
    """The new SS password or bank PIN (same rules): weak ones refused at once; only a keyed digest
    bound to this call is kept until it is typed again."""
    try:
        svc.check_new_six_digits(ctx.app, _holder(ctx), value or "")
    except SscardError as err:
        if err.code != "weak_password":
            raise
        return Outcome("weak", [ctx.error(err)])
    ctx.slots["pending_new"] = svc.pending_digest(ctx.app, ctx.state["call_sid"], value or "")
    return Outcome("ok")


@handler("ss_password_again")
def ss_password_again(ctx: Ctx, value: str | None) -> Outcome:
    return _new_secret_again(ctx, "password_changed", lambda: svc.change_ss_password_by_phone(
        ctx.app, _holder(ctx), ctx.state["call_sid"], ctx.slots.get("card_number", ""), value or ""))


def _new_secret_again(ctx: Ctx, changed: str, change: Callable[[], object]) -> Outcome:
    """The new SS password or PIN typed a second time: changed, asked again (a mismatch), or refused; the
    entries of this change are forgotten unless the caller is asked again."""
    try:
        change()
    except SscardError as err:
        ctx.slots.pop("pending_new", None)
        if err.code == "password_mismatch":
            return Outcome("mismatch", [ctx.error(err)])
        for key in PASSWORD_SLOTS:
            ctx.slots.pop(key, None)
        return Outcome("refused", [ctx.error(err)])
    for key in PASSWORD_SLOTS:
        ctx.slots.pop(key, None)
    return Outcome("ok", [ctx.text(changed)])


# ---------------------------------------------------------------- bank line


@handler("bank_oral_loss")
def bank_oral_loss(ctx: Ctx, value: str | None) -> Outcome:
    try:
        out = loss.report_oral_loss(ctx.app, _holder(ctx), ctx.slots["pan"])
    except SscardError as err:
        if err.code == "illegal_transition":
            return Outcome("refused", [ctx.text("oral_refused", state=label("bank_status", err.params["state"], ctx.lang))])
        return Outcome("refused", [ctx.error(err)])
    return Outcome("ok", [ctx.text("oral_done", lapses=_local(ctx, out["lapses_at"])), out["reminder"][ctx.lang]])


@handler("bank_cancel_oral_loss")
def bank_cancel_oral_loss(ctx: Ctx, value: str | None) -> Outcome:
    try:
        loss.cancel_bank_loss(ctx.app, _holder(ctx), ctx.slots["pan"])
    except SscardError as err:
        if err.code == "forbidden":
            return Outcome("refused", [ctx.text("cancel_at_outlet")])
        return Outcome("refused", [ctx.error(err)])
    return Outcome("ok", [ctx.text("cancel_oral_done")])


@handler("bank_balance")
def bank_balance(ctx: Ctx, value: str | None) -> Outcome:
    """The balance needs the PIN, typed at this step (bank.balance counts a wrong one toward the lock)."""
    try:
        out = banking.balance_inquiry(ctx.app, _holder(ctx), ctx.slots["pan"], value or "")
    except SscardError as err:
        if err.code == "wrong_pin":
            return Outcome("wrong", [ctx.error(err)])
        if err.code == "pin_locked":
            return Outcome("locked", [ctx.error(err)])
        return Outcome("refused", [ctx.error(err)])
    fen = out["available_fen"]  # said in words in Chinese: a zh-CN voice reads "1,234.56" badly
    return Outcome("ok", [ctx.text("balance", amount=spoken_yuan(fen) if ctx.lang == "zh" else format_yuan(fen))])


def _account_status(ctx: Ctx) -> str | None:
    """The state in effect now of the caller's account this call is about (an oral loss past its days
    reads as active again); None when it is not found."""
    holder = _holder(ctx)
    for entry in svc.my_cards(ctx.app, holder)["cards"]:
        view = cards.card_status(ctx.app, holder, entry["card_number"])
        if view["bank"]["pan"] and view["bank"]["pan"][-4:] == ctx.slots.get("pan_tail"):
            return str(view["bank"]["status"])
    return None


@handler("bank_status")
def bank_status(ctx: Ctx, value: str | None) -> Outcome:
    """The account's state, in effect now (an oral loss past its days reads as active again)."""
    status = _account_status(ctx)
    if status is None:
        return Outcome("ok", [ctx.text("no_card")])
    return Outcome("ok", [ctx.text("bank_state", state=label("bank_status", status, ctx.lang))])


@handler("bank_loss_state")
def bank_loss_state(ctx: Ctx, value: str | None) -> Outcome:
    """Before a cancellation is offered: the account's loss in effect now (oral_loss, written_loss) or none."""
    status = _account_status(ctx)
    if status == "oral_loss" and not access.allowed_before_first_change(_holder(ctx), "bank_loss.cancel"):
        return Outcome("needs_pin", [ctx.text("cancel_needs_pin")])  # said before any confirmation
    return Outcome(status if status in ("oral_loss", "written_loss") else "none")


@condition("oral_loss_in_force")
def oral_loss_in_force(ctx: Ctx) -> bool:
    """The bank line offers to cancel an oral loss to a caller whose account has one in force (and to a
    caller not identified yet, whose account is not known)."""
    return not ctx.state.get("person_id") or _account_status(ctx) == "oral_loss"


@condition("temporary_loss_in_force")
def temporary_loss_in_force(ctx: Ctx) -> bool:
    """12333 offers to cancel a temporary loss to a caller whose card has one in force (and to a caller
    not identified yet)."""
    if not ctx.state.get("person_id"):
        return True
    card = svc.issued_card(svc.my_cards(ctx.app, _holder(ctx))["cards"])
    return card is not None and card["ss_status"] == "temporary_loss"


# ---------------------------------------------------------------- bank line: PIN change (old, new, new again)


@handler("bank_pin_old")
def bank_pin_old(ctx: Ctx, value: str | None) -> Outcome:
    try:
        verified = svc.verify_bank_pin(ctx.app, _holder(ctx), ctx.slots["pan"], value or "")
    except SscardError as err:
        if err.code == "pin_locked":
            return Outcome("locked", [ctx.error(err)])
        if err.code in ("wrong_pin", "wrong_password"):
            return Outcome("wrong", [ctx.error(err)])
        return Outcome("refused", [ctx.error(err)])
    ctx.slots["old_ok"] = ctx.slots["pan"]
    ctx.slots["old_ok_at"] = ctx.app.clock.now().isoformat()
    ctx.slots["old_ok_seal"] = verified["seal"]  # what the change step checks the PIN against
    return Outcome("ok")


@handler("bank_pin_again")
def bank_pin_again(ctx: Ctx, value: str | None) -> Outcome:
    return _new_secret_again(ctx, "pin_changed", lambda: svc.change_pin_by_phone(
        ctx.app, _holder(ctx), ctx.state["call_sid"], ctx.slots.get("pan", ""), value or ""))
