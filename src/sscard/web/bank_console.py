"""The bank-outlet console: /bank pages for tellers and bank supervisors (issue 6, bank half).

Every page calls a service (services.loss, services.banking); none touches the database. Who may see
the console: tellers and bank supervisors signed in here (channel bank_outlet). Anyone else signed in
as staff sees a refusal page; nobody signed in (or a forged, ended or idle session) is sent to
/bank/login. Cards of another bank are refused by the services with `wrong_bank`, shown in words.

Card numbers, citizen IDs and PINs travel only in POST bodies (never in a URL, so never in an access
log); every POST carries the session's CSRF token; a PIN is never put back into a page and never logged.
A withdrawal is keyed like a deposit (the idempotency record's request hash is an HMAC under the server
key, so it keeps no trace of the PIN): one form, one withdrawal, however often it is sent.

Issue 17: the teller reads the card once (the lookup, or the first form of a visit) and every page then
works on that customer, showing the holder's full name and both states, until 结束办理 or sign-out;
deposits, withdrawals, the written loss and closing pass a confirm step naming the card's last four
digits, the holder and the amount in figures and 大写; cash movements get a slip (回单) with a short
reference (core.txn_ref) on screen and as a PDF (bank_slips). The reads behind it are services.bank_counter.
"""

from __future__ import annotations

import secrets as pysecrets
from collections.abc import Callable
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ..core import sealing
from ..core.clock import in_shanghai, parse_time
from ..core.errors import SscardError
from ..core.identifiers import MAX_BIG_ID, ascii_digits, mask_pan, normalise, whole_number
from ..core.money import format_yuan, require_fen, yuan_in_capitals, yuan_to_fen
from ..core.roles import BANK_STAFF, Channel, Role
from ..core.txn_ref import short_ref
from ..http import RouteBook, language
from ..i18n import label, label_pair
from ..services import bank_counter, banking, batching, loss
from ..services.app import App
from ..services.staff import banks_and_places
from . import confirming, security, staff_accounts
from .forms import Form
from .hardening import delete_cookie, set_cookie
from .pages import Refusal, render, templates

router = RouteBook(prefix="/bank", include_in_schema=False)

STAFF_COOKIE = security.COOKIE["staff"]



class Desk(security.StaffDesk):
    """The signed-in teller (or supervisor) at this outlet, and their session row (CSRF token)."""

    SUPERVISOR = Role.BANK_SUPERVISOR


def _app(request: Request) -> App:
    return request.app.state.sscard


def _refusal(role: Role, lang: str) -> str:
    return ("This console is for bank tellers and bank supervisors only" if lang == "en"
            else "银行网点柜台仅限银行柜员和银行主管登录")


CUSTOMER_COOKIE = "sscard_bank_customer"
BANK = security.StaffConsole(
    path="/bank", channel=Channel.BANK_OUTLET, roles=BANK_STAFF, desk=Desk, login_kind="bank", folder="bank",
    desk_name="desk", not_staff="not_bank_staff", throttle_scope="bank", refusal=_refusal,
    end_cookies=(CUSTOMER_COOKIE,),
)
LOGIN_COOKIE = BANK.login_cookie


def _desk(request: Request, *, supervisor: bool = False) -> Desk:
    """The teller at the desk (LoginRequired, or PageRefused with the refusal page)."""
    return BANK.desk_of(request, supervisor=supervisor)  # type: ignore[return-value]


async def _posted(request: Request, desk: Desk) -> dict[str, str]:
    await security.check_csrf(request, desk.row)
    form = await request.form()
    return Form((k, str(v).strip()) for k, v in form.items() if isinstance(v, str))


def _key() -> str:
    return pysecrets.token_urlsafe(18)


def _htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


def _page(request: Request, desk: Desk, page: str, ctx: dict | None = None, status: int = 200,
          customer_pan: str | None = None) -> HTMLResponse:
    """A bank page (or, for htmx, only its working area `bank/_<page>.html` and the customer bar, swapped
    out of band), with the customer at the desk (or the one whose card was just used)."""
    full = {"desk": desk, "page": page, "op_key": _key(), **(ctx or {})}
    if "customer" not in full:
        full["customer"] = _customer(request, desk, customer_pan or None)
    full["outlet_name"] = name_in(bank_counter.outlets(_app(request)).get(desk.actor.place), language(request))
    if _htmx(request):
        # htmx swaps only 2xx answers: a refusal is still a 200 for the fragment, shown in words.
        return render(request, f"bank/_{page}.html", {**full, "oob": True}, 200)
    return render(request, f"bank/{page}.html", full, status)


def _reminder(result: dict, request: Request) -> str | None:
    reminder = result.get("reminder")
    if not reminder:
        return None
    return reminder.get(language(request)) or reminder.get("zh")


def _entered(form: dict[str, str], *names: str) -> dict[str, str]:
    """What the teller typed, to show again after a refusal (never a PIN)."""
    return {n: form.kept(n) if isinstance(form, Form) else form.get(n, "") for n in names}


# ---------------------------------------------------------------- login / logout


BANK.mount(router)
staff_accounts.mount(BANK, router, lambda request, desk: {
    "desk": desk, "customer": None,
    "outlet_name": name_in(bank_counter.outlets(_app(request)).get(desk.actor.place), language(request))})


# ---------------------------------------------------------------- home


@router.get("", response_class=HTMLResponse)
def home(request: Request, desk: Desk = Depends(BANK.signed_in)) -> Response:
    ctx: dict[str, Any] = {"desk": desk, "page": "home", "form": {}}
    pan = _session_pan(request, desk)
    if pan:  # the customer at the desk: their account at a glance
        try:
            ctx.update(_account(_app(request), desk, pan, language(request)))
            ctx["today"] = _app(request).clock.today()
        except SscardError as err:
            ctx.update(error=_message(err, language(request)), error_code=err.code)
    ctx["customer"] = _customer(request, desk)
    ctx["outlet_name"] = name_in(bank_counter.outlets(_app(request)).get(desk.actor.place), language(request))
    return render(request, "bank/home.html", ctx)


# ---------------------------------------------------------------- the customer at the desk
#
# The teller reads or types the card number once (the account lookup, or the first form of a visit);
# from then on every page works on that customer until the teller ends the visit (结束办理) or signs
# out. The card number is kept in a cookie as seal_pan's reference: encrypted and keyed to this
# staff session, so it is useless to anyone else and dies with the session.


def _session_pan(request: Request, desk: Desk) -> str:
    ref = request.cookies.get(CUSTOMER_COOKIE, "")
    if not ref:
        return ""
    try:
        return open_pan(_app(request), desk, ref)
    except SscardError:  # another session's reference, or tampered: no customer
        return ""


def _customer(request: Request, desk: Desk, pan: str | None = None) -> dict | None:
    """The customer at the desk (holder's name, both states), read for each page: a view that is audited."""
    pan = pan if pan is not None else _session_pan(request, desk)
    if not pan:
        return None
    try:
        found = bank_counter.customer(_app(request), desk.actor, pan)
    except SscardError:
        return None
    # `ref`: the card sealed, for the desk's forms (pan_field's desk_ref): a form names the customer it was
    # shown for, and _pan_of refuses it once another window has changed the customer at the desk
    return {**found, "ref": seal_pan(_app(request), desk, pan)}


def _keep_customer(response: Response, request: Request, desk: Desk, pan: str) -> Response:
    """Start (or keep) the visit of the customer with this card number."""
    if pan and pan != _session_pan(request, desk):
        set_cookie(response, request, CUSTOMER_COOKIE, seal_pan(_app(request), desk, pan), path="/bank")
    return response


@router.post("/customer/end")
async def end_customer(request: Request, desk: Desk = Depends(BANK.signed_in)) -> Response:
    """结束办理: the next customer starts from the lookup; nothing of this one stays on the desk."""
    await security.check_csrf(request, desk.row)
    response = RedirectResponse("/bank", status_code=303)
    delete_cookie(response, request, CUSTOMER_COOKIE, path="/bank")
    return response


# ---------------------------------------------------------------- the working pages

# State-machine refusals in words, so a teller reads "written loss" rather than "report_written_loss" (the
# states and events are core.labels' bank_status / bank_event; closing refused for money still in the
# account names the balance).
BALANCE_WORDS = ("账户尚有余额或未完成交易", "the account still holds money or pending items")
PIN_ERRORS = ("wrong_pin",)  # a refusal that sends the cardholder back to the PIN pad, amount kept


def _message(err: SscardError, lang: str) -> str:
    if err.code == "illegal_transition":
        state, event = str(err.params.get("state", "")), str(err.params.get("event", ""))
        words = SscardError("illegal_transition",
                            state=BALANCE_WORDS if state == "balance" else label_pair("bank_status", state),
                            event=label_pair("bank_event", event))
        return Refusal(err, lang, words.message(lang))
    return Refusal(err, lang)


def _clean_pan(form: dict[str, str]) -> str:
    return normalise(form.get("pan", "")).replace("-", "")


def _clean_id(form: dict[str, str]) -> str:
    return normalise(form.get("citizen_id", ""))


def _masked_pan_hint(form: dict[str, str]) -> str:
    pan = _clean_pan(form)
    return mask_pan(pan) if len(pan) >= 10 and ascii_digits(pan) else ""


def _pan_of(request: Request, desk: Desk, form: dict[str, str]) -> str:
    """The card number typed (or swiped) in this form, carried over as a sealed reference, or the card
    of the customer at the desk, still the one the form was shown for (a supervisor's freeze on a page naming
    one holder froze the next holder's account, looked up in another window: this brief's probe)."""
    if form.get("pan"):
        return _clean_pan(form)
    if form.get("pan_ref"):
        return open_pan(_app(request), desk, form["pan_ref"])
    pan = _session_pan(request, desk)
    if not form.get("desk_ref"):  # every desk form names its customer (pan_field): one that does not, a
        if pan:                   # hand-made or out-of-date page, acts on nobody rather than on whoever is here
            raise SscardError("desk_customer_unnamed")
        return pan
    shown = open_pan(_app(request), desk, form["desk_ref"])
    if shown != pan:  # another window changed the customer, or ended the visit: act on nobody
        raise SscardError("desk_customer_changed", last4=shown[-4:])
    return pan


Handler = Callable[[App, Desk, dict[str, str], str, str | None, Request], dict]
Confirm = Callable[[App, Desk, dict[str, str], str, Request], dict | None]


def _confirmation(app: App, desk: Desk, pan: str, amount_fen: int | None) -> dict:
    """What the confirm step names: the card's last four digits, the holder, the amount and its 大写, and
    for an amount the card's cash movements of the last half hour (bank_counter.confirmation)."""
    who: Any = (bank_counter.confirmation(app, desk.actor, pan) if amount_fen is not None
                else bank_counter.customer(app, desk.actor, pan))
    out = {"last4": who["last4"], "holder_name": who["holder_name"], "status": who["status"],
           "amount_fen": amount_fen, "capitals": yuan_in_capitals(amount_fen) if amount_fen is not None else "",
           "recent": who.get("recent", [])}
    return out


def _confirmed_pan(request: Request, desk: Desk, form: dict[str, str]) -> str:
    """The card a confirm step named, from its sealed reference, and still the customer at the desk: another
    window that changed the customer, or ended the visit, must not redirect the confirmed act to whoever is at
    the desk now (session 22's browser probe: a withdrawal confirmed for one holder debited the next)."""
    if form.get("pan"):  # the card typed in the request itself: named, not implied
        return _clean_pan(form)
    if not form.get("pan_ref"):  # a confirmation naming no card would act on whoever is at the desk
        raise SscardError("invalid_request")
    pan = open_pan(_app(request), desk, form["pan_ref"])
    if _session_pan(request, desk) != pan:
        raise SscardError("desk_customer_changed", last4=pan[-4:])
    return pan


async def _submit(request: Request, page: str, handler: Handler, *, keep: tuple[str, ...] = (),
                  supervisor: bool = False, keyed: bool = True, confirm: Confirm | None = None) -> Response:
    """Run one counter operation from a posted form and show its page with the outcome.

    keyed: the form's one-time op_key is the idempotency key, so a double click or a replayed form does
    the work once (the request's fingerprint is keyed with the server key, so a PIN leaves no trace).
    confirm: an irreversible act first shows a confirm step (step=confirmed to do it); the confirm
    step carries the same op_key. After a refusal the page keeps what was typed, never a PIN."""
    desk = _desk(request, supervisor=supervisor)
    form = await _posted(request, desk)
    app, lang = _app(request), language(request)
    key = (form.get("op_key") or None) if keyed else None
    step = form.get("step", "")
    kept = _entered(form, "pan", "citizen_id", *keep)
    pan = ""
    try:
        pan = _confirmed_pan(request, desk, form) if confirm is not None and step == "confirmed" else \
            _pan_of(request, desk, form)
        if step == "edit":
            return _page(request, desk, page, {"form": kept, "op_key": form.get("op_key") or _key()})
        if confirm is not None and step != "confirmed":
            shown = await run_in_threadpool(confirm, app, desk, form, pan, request)
            if shown is not None:
                ctx = {"form": kept, "confirm": shown, "op_key": form.get("op_key") or _key(),
                       "pan_ref": seal_pan(app, desk, pan)}  # the confirmed act is for this card, none other
                return _keep_customer(_page(request, desk, page, ctx, customer_pan=pan), request, desk, pan)
        # in a worker thread: the operation's database work (or its wait for a group commit) must not
        # hold up the event loop that serves every other request
        done = await run_in_threadpool(handler, app, desk, form, pan, key, request)
    except SscardError as err:
        ctx = {"form": kept, "last_pan": _masked_pan_hint(form), "error": _message(err, lang),
               "error_code": err.code}
        used = confirming.after_confirm(err, step == "confirmed")
        if used is not err:  # the form's key was used: its first submission was done (its answer lost)
            err = used
            ctx.update(error=_message(err, lang), error_code=err.code,
                       recent=(await run_in_threadpool(bank_counter.confirmation, app, desk.actor, pan))["recent"])
        if err.code == "wrong_bank":
            ctx["card_bank"] = _bank_name(app, pan, lang)
        if err.code in PIN_ERRORS and confirm is not None and step == "confirmed":
            try:  # back to the PIN pad with the amount kept, under a fresh key (the refusal used the old)
                ctx["confirm"] = await run_in_threadpool(confirm, app, desk, form, pan, request)
                ctx["pan_ref"] = seal_pan(app, desk, pan)
            except SscardError:
                pass
        return _page(request, desk, page, ctx, err.status)
    response = _page(request, desk, page, {"form": {}, "done": done}, customer_pan=pan)
    return _keep_customer(response, request, desk, pan)


def _show(request: Request, page: str, *, supervisor: bool = False, **ctx: Any) -> Response:
    desk = _desk(request, supervisor=supervisor)
    return _page(request, desk, page, {"form": {}, **ctx})


def _counter_page(path: str, page: str, handler: Handler, *, supervisor: bool = False, **options: Any) -> None:
    """GET `path` shows the counter page's empty form; POST `path` runs `handler` on it (see _submit)."""

    def show(request: Request) -> Response:
        return _show(request, page, supervisor=supervisor)

    async def submit(request: Request) -> Response:
        return await _submit(request, page, handler, supervisor=supervisor, **options)

    show.__name__, submit.__name__ = f"{page}_page", f"{page}_submit"
    router.add_api_route(path, show, methods=["GET"], response_class=HTMLResponse)
    router.add_api_route(path, submit, methods=["POST"], response_class=HTMLResponse)


def seal_pan(app: App, desk: Desk, pan: str) -> str:
    """An opaque reference to a card number for a follow-up form (PDF, older entries), so the page never
    carries the full number; keyed per session, it dies with it (core.sealing)."""
    return sealing.seal(_pan_ref_key(app, desk), pan)


def open_pan(app: App, desk: Desk, ref: str) -> str:
    """The card number behind seal_pan's reference, or invalid_request for anything else."""
    return sealing.open_sealed(_pan_ref_key(app, desk), ref)


def _pan_ref_key(app: App, desk: Desk) -> bytes:
    return confirming.session_key(app, desk, "bank-pan-ref")


def _bank_name(app: App, pan: str, lang: str) -> str:
    """The issuing bank's name, from the card number's BIN."""
    for bank in banks_and_places(app)["banks"]:
        if pan.startswith(bank["bin"]):
            if lang == "en":
                return bank.get("name_en") or bank["name"]
            return bank["name"]
    return ""


def name_in(names: dict | None, lang: str) -> str:
    """A bank's or outlet's name in the page's language (the code when nothing better is known)."""
    if not names:
        return ""
    if lang == "en":
        return names.get("name_en") or names.get("name") or names.get("code", "")
    return names.get("name") or names.get("code", "")


# ---------------------------------------------------------------- account lookup (home page panel)


def _account(app: App, desk: Desk, pan: str, lang: str) -> dict:
    data = bank_counter.statement(app, desk.actor, pan, limit=5)
    return {"account": data, "lines": statement_lines(data, lang, bank_counter.outlets(app))}


@router.post("/account", response_class=HTMLResponse)
async def account_lookup(request: Request, desk: Desk = Depends(BANK.signed_in)) -> Response:
    """The account at a glance (holder, state, balance, activation deadline, last movements); it starts the
    customer's visit: every page after works on this card until 结束办理."""
    form = await _posted(request, desk)
    pan = _clean_pan(form)
    ctx: dict[str, Any] = {"desk": desk, "page": "home", "last_pan": _masked_pan_hint(form)}
    status, found = 200, False
    try:
        ctx.update(await run_in_threadpool(_account, _app(request), desk, pan, language(request)))
        ctx["today"] = _app(request).clock.today()
        found = True
    except SscardError as err:
        ctx.update(error=_message(err, language(request)), error_code=err.code, form={"pan": pan})
        if err.code == "wrong_bank":
            ctx["card_bank"] = _bank_name(_app(request), pan, language(request))
        status = err.status
    if found:
        ctx["customer"] = _customer(request, desk, pan)
    else:
        ctx["customer"] = _customer(request, desk)
    if _htmx(request):
        response = render(request, "bank/_account.html", {**ctx, "oob": True})
    elif found:  # to the home page, which shows the customer at the desk: a reload sends nothing again
        response = RedirectResponse("/bank", status_code=303)
    else:
        ctx["outlet_name"] = name_in(bank_counter.outlets(_app(request)).get(desk.actor.place), language(request))
        response = render(request, "bank/home.html", ctx, status)
    return _keep_customer(response, request, desk, pan) if found else response


# ---------------------------------------------------------------- activation (PIN pad)


def _activate(app: App, desk: Desk, form: dict[str, str], pan: str, key: str | None, request: Request) -> dict:
    out = banking.activate(app, desk.actor, pan, _clean_id(form), form.get("pin", ""),
                           form.get("pin_again", ""), cardholder_in_person=form.get("in_person") == "yes")
    return {"pan": out["pan"], "status": out["status"], "balance_fen": out["balance_fen"],
            "moved": out.get("moved_from_old_account")}


# The cardholder in person with card and ID, within the window; sets the PIN twice on the pad.
_counter_page("/activate", "activate", _activate, keep=("in_person",), keyed=False)


# ---------------------------------------------------------------- supervisor: window extension, freeze


def _supervise(app: App, desk: Desk, form: dict[str, str], pan: str, key: str | None, request: Request) -> dict:
    task, reason = form.get("task", "extend"), form.get("reason", "")[:200]
    if task == "extend":
        days_text = form.get("days", "")
        days = whole_number(days_text)
        if days_text and days is None:
            raise SscardError("invalid_request")
        out = banking.extend_activation(app, desk.actor, pan, days, reason,
                                        idempotency_key=key)
        return {"task": task, "pan": out["pan"], "deadline": out["activation_deadline"], "days": out["days"]}
    if task in ("freeze", "unfreeze"):
        fn = banking.freeze if task == "freeze" else banking.unfreeze
        out = fn(app, desk.actor, pan, reason, idempotency_key=key)
        return {"task": task, "pan": out["pan"], "status": out["status"]}
    raise SscardError("invalid_request")


_counter_page("/supervisor", "supervisor", _supervise, keep=("task", "days", "reason"), supervisor=True)


# ---------------------------------------------------------------- bank-side loss


def _loss(app: App, desk: Desk, form: dict[str, str], pan: str, key: str | None, request: Request) -> dict:
    action = form.get("action", "written")
    if action == "cancel":
        out = loss.cancel_bank_loss(app, desk.actor, pan, _clean_id(form), idempotency_key=key)
    elif action == "written":
        out = loss.report_written_loss(app, desk.actor, pan, _clean_id(form), idempotency_key=key)
    else:
        raise SscardError("invalid_request")
    return {"action": action, "pan": mask_pan(out["pan"]), "status": out["status"],
            "linked_ss_status": out.get("linked_ss_status"), "reminder": _reminder(out, request)}


def _confirm_loss(app: App, desk: Desk, form: dict[str, str], pan: str, request: Request) -> dict | None:
    """The formal (written) loss stops the account's payments: confirm it; lifting a loss needs no step."""
    if form.get("action", "written") != "written":
        return None
    if not _clean_id(form):
        raise SscardError("invalid_request")
    return {**_confirmation(app, desk, pan, None), "action": "written"}


# Written loss (an oral loss becomes written) or cancel, at the counter with the cardholder's ID.
_counter_page("/loss", "loss", _loss, keep=("action",), confirm=_confirm_loss)


# ---------------------------------------------------------------- cash at the counter


def _slip_of(app: App, desk: Desk, pan: str, out: dict) -> dict:
    ref = short_ref(out["transfer_id"], parse_time(out["at"])) if out.get("at") else ""
    try:
        return bank_counter.slip(app, desk.actor, pan, ref)
    except SscardError:  # the movement is committed; a slip that cannot be read is not a refusal
        return {"ref": ref, "amount_fen": out["amount_fen"], "balance_after_fen": out["balance_fen"]}


def _deposit(app: App, desk: Desk, form: dict[str, str], pan: str, key: str | None, request: Request) -> dict:
    amount = parse_yuan(form.get("amount", ""))
    out = batching.call(app, banking.deposit, desk.actor, pan, amount, idempotency_key=key)
    return {"pan": out["pan"], "amount_fen": out["amount_fen"], "balance_fen": out["balance_fen"],
            "status": out["status"], "slip": _slip_of(app, desk, pan, out)}


def _withdraw(app: App, desk: Desk, form: dict[str, str], pan: str, key: str | None, request: Request) -> dict:
    amount = parse_yuan(form.get("amount", ""))
    out = batching.call(app, banking.withdraw, desk.actor, pan, amount, form.get("pin", ""), idempotency_key=key)
    return {"pan": out["pan"], "amount_fen": out["amount_fen"], "balance_fen": out["balance_fen"],
            "status": out["status"], "slip": _slip_of(app, desk, pan, out)}


def _confirm_amount(app: App, desk: Desk, form: dict[str, str], pan: str, request: Request) -> dict:
    """An amount the service would refuse (0, over the most a sum may be) is refused here, before the teller
    reads it out to the customer for confirmation (session 21's probe: ¥0.00 reached the confirm step)."""
    return _confirmation(app, desk, pan, require_fen(parse_yuan(form.get("amount", ""))))


_counter_page("/deposit", "deposit", _deposit, keep=("amount",), confirm=_confirm_amount)


# Cash out: the teller types the amount, the confirm step names card, holder and amount, and there the
# cardholder types the bank PIN on the pad. Keyed like a deposit: one form, one withdrawal.
_counter_page("/withdraw", "withdraw", _withdraw, keep=("amount",), confirm=_confirm_amount)


# ---------------------------------------------------------------- the slip (回单)


@router.get("/slip", response_class=HTMLResponse)
def slip_page(request: Request, ref: str = "", desk: Desk = Depends(BANK.signed_in)) -> Response:
    """A deposit's or withdrawal's slip on screen, for the customer at the desk, by its reference."""
    pan = _session_pan(request, desk)
    if not pan:  # no customer at the desk: look one up first
        return RedirectResponse("/bank", status_code=303)
    ctx: dict[str, Any] = {"form": {}}
    status = 200
    try:
        ctx["slip"] = bank_counter.slip(_app(request), desk.actor, pan, ref)
    except SscardError as err:
        ctx.update(error=_message(err, language(request)), error_code=err.code)
        status = err.status
    return _page(request, desk, "slip", ctx, status)


@router.post("/slip.pdf")
async def slip_pdf(request: Request, desk: Desk = Depends(BANK.signed_in)) -> Response:
    """The slip as a PDF to print and have the customer sign."""
    form = await _posted(request, desk)
    lang, app = language(request), _app(request)
    try:
        pan = _pan_of(request, desk, form)
        slip = await run_in_threadpool(bank_counter.slip, app, desk.actor, pan, form.get("ref", ""))
    except SscardError as err:
        return _page(request, desk, "slip", {"form": {}, "error": _message(err, lang), "error_code": err.code},
                     err.status)
    from ..documents.bank_slips import render_slip  # reportlab: at the first slip

    pdf = render_slip(slip, lang, printed_at=app.clock.now())
    name = f"slip-{slip['ref']}.pdf"
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


# ---------------------------------------------------------------- PIN reset (cardholder only)


def _pin_reset(app: App, desk: Desk, form: dict[str, str], pan: str, key: str | None, request: Request) -> dict:
    out = banking.reset_pin(app, desk.actor, pan, _clean_id(form), form.get("new", ""),
                            form.get("new_again", ""), cardholder_in_person=form.get("in_person") == "yes")
    return {"pan": out["pan"], "was_locked": out["was_locked"]}


_counter_page("/pin-reset", "pin_reset", _pin_reset, keep=("in_person",), keyed=False)


# ---------------------------------------------------------------- account close


def _close(app: App, desk: Desk, form: dict[str, str], pan: str, key: str | None, request: Request) -> dict:
    if form.get("confirm") != "yes":
        raise SscardError("invalid_request")
    out = banking.close(app, desk.actor, pan, _clean_id(form), idempotency_key=key)
    return {"pan": out["pan"], "status": out["status"], "paid_out_fen": out["paid_out_fen"]}


def _confirm_close(app: App, desk: Desk, form: dict[str, str], pan: str, request: Request) -> dict:
    """Closing cannot be undone: name the card, the holder and the cash to pay out (the whole balance)."""
    if form.get("confirm") != "yes" or not _clean_id(form):
        raise SscardError("invalid_request")
    who = bank_counter.customer(app, desk.actor, pan)
    return _confirmation(app, desk, pan, who["balance_fen"])


# With the cardholder's ID: holds released, the whole balance paid out in cash, the account closed.
_counter_page("/close", "close", _close, keep=("confirm",), confirm=_confirm_close)


# ---------------------------------------------------------------- statement and its PDF

STATEMENT_LIMIT = 50
PDF_LIMIT = 200
CODE_WORDS = {
    "deposit": ("现金存款", "Cash deposit"), "withdrawal": ("现金取款", "Cash withdrawal"),
    "transfer": ("转账", "Transfer"), "payment": ("消费", "Payment"), "pension": ("养老金", "Pension"),
    "replacement": ("补换卡余额转移", "Balance moved at card replacement"), "fee": ("费用", "Fee"),
    "close_payout": ("销户支取", "Paid out at closing"), "wages": ("工资", "Wages"),
    "reimbursement": ("报销", "Reimbursement"),
    "reversal": ("冲正（终端未完成交易退回）", "Reversal (returned: the terminal did not complete it)"),
    "replacement_fee": ("补换卡工本费", "Card replacement fee"),
    "replacement_fee_refund": ("补换卡工本费退回（申请已撤销）", "Card replacement fee refunded (application withdrawn)"),
}
KIND_WORDS = {"pending": ("预授权", "hold"), "void": ("撤销预授权", "hold released"),
              "expire": ("预授权过期", "hold expired"), "post": ("预授权完成", "hold completed")}


def describe(entry: dict, lang: str, outlets: dict[str, dict] | None = None) -> str:
    i = 1 if lang == "en" else 0
    code = entry.get("code", "")
    text = CODE_WORDS.get(code, (code, code))[i]
    kind = entry.get("kind", "posted")
    if kind in KIND_WORDS:
        text = f"{text}（{KIND_WORDS[kind][i]}）" if i == 0 else f"{text} ({KIND_WORDS[kind][i]})"
    counterparty = _counterparty(entry.get("counterparty") or "", i, outlets or {})
    if counterparty:
        text = f"{text} · {counterparty}"
    return text


def _counterparty(name: str, i: int, outlets: dict[str, dict]) -> str:
    """Ledger account names as words: 'cash:GSB-001' is that outlet's counter (by its name), 'atm:X' an ATM..."""
    kind, _, code = name.partition(":")
    if kind == "cash" and code in outlets:
        return name_in(outlets[code], "en" if i else "zh")
    words = {"cash": ("{code}网点柜台", "counter at {code}"), "atm": ("ATM {code}", "ATM {code}"),
             "merchant": ("商户 {code}", "merchant {code}"), "clearing": ("跨行清算", "inter-bank clearing")}
    if kind in words and code:
        return words[kind][i].format(code=code)
    if name in ("pension_payer", "agency_fee_income") or not name:
        return ""
    return name  # a masked card number (a transfer) or another named account


def statement_lines(data: dict, lang: str, outlets: dict[str, dict]) -> list[dict]:
    """The service's lines (balance after each already worked out) with words for the page."""
    return [{**x, "description": describe(x, lang, outlets)} for x in data.get("lines", [])]


def _statement(app: App, desk: Desk, form: dict[str, str], pan: str, key: str | None, request: Request) -> dict:
    before = form.get("before_id", "")
    data = bank_counter.statement(app, desk.actor, pan, limit=STATEMENT_LIMIT,
                                  before_id=whole_number(before, MAX_BIG_ID), ref=form.get("ref", ""))
    lines = statement_lines(data, language(request), bank_counter.outlets(app))
    return {"statement": data, "lines": lines, "pan_ref": seal_pan(app, desk, pan)}


@router.get("/statement", response_class=HTMLResponse)
def statement_page(request: Request, desk: Desk = Depends(BANK.signed_in)) -> Response:
    """With a customer at the desk the statement is shown at once; otherwise the card number is asked."""
    pan = _session_pan(request, desk)
    ctx: dict[str, Any] = {"form": {}}
    if pan:
        try:
            ctx["done"] = _statement(_app(request), desk, {}, pan, None, request)
        except SscardError as err:
            ctx.update(error=_message(err, language(request)), error_code=err.code)
    return _page(request, desk, "statement", ctx)


@router.post("/statement", response_class=HTMLResponse)
async def statement_submit(request: Request) -> Response:
    return await _submit(request, "statement", _statement, keep=("ref",), keyed=False)


@router.post("/statement.pdf")
async def statement_pdf(request: Request, desk: Desk = Depends(BANK.signed_in)) -> Response:
    """The statement (last 200 movements) as a PDF to print or hand over: the holder's own name in full,
    the bank and the outlet named in the page's language."""
    form = await _posted(request, desk)
    lang = language(request)
    app = _app(request)
    try:
        pan = _pan_of(request, desk, form)
        data = await run_in_threadpool(bank_counter.statement, app, desk.actor, pan, PDF_LIMIT)
    except SscardError as err:
        ctx = {"form": {}, "last_pan": _masked_pan_hint(form), "error": _message(err, lang), "error_code": err.code}
        return _page(request, desk, "statement", ctx, err.status)
    outlets = bank_counter.outlets(app)
    today = app.clock.today()
    lines = data["lines"]
    oldest = min((in_shanghai(x["at"]).date() for x in lines), default=today)
    status_word = label("bank_status", data["status"], lang)
    from ..documents.statements import Line, Statement, render_statement  # reportlab: at the first statement

    pdf = render_statement(
        Statement(
            bank_name=name_in(data["bank"], lang), pan_masked=data["pan"], name_masked=data["holder_name"],
            period_from=oldest, period_to=today, opening_fen=data["opening_fen"],
            closing_fen=data["closing_fen"], status=status_word, outlet=name_in(data["outlet"], lang),
            printed_at=app.clock.now(),
            lines=[Line(at=parse_time(x["at"]), description=f"{describe(x, lang, outlets)} · {x['ref']}",
                        debit_fen=x["debit_fen"], credit_fen=x["credit_fen"], balance_fen=x["balance_after_fen"])
                   for x in reversed(lines)],
        ),
        lang,
    )
    name = f"statement-{data['last4']}-{today.isoformat()}.pdf"
    return Response(pdf, media_type="application/pdf",
                     headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


# ---------------------------------------------------------------- helpers shared with the templates


def parse_yuan(text: str) -> int:
    """The teller types yuan ('1,000.50'); the services get fen."""
    return yuan_to_fen(text.replace(",", "").replace("，", "").replace("¥", "").strip())


amount = format_yuan  # (the templates' bank_amount and yuan filters: pages.py)
templates.env.filters.setdefault("yuan_capitals", yuan_in_capitals)
