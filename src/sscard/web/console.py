"""The service-center window console: /console pages for clerks and center supervisors (issue 6).

Every page calls a service; none touches the database. Who may see it: clerks and center supervisors
signed in here (channel window). Other staff signed in see a refusal page; nobody signed in (or a
forged, ended or idle session) is sent to /console/login.

A visit starts with the identity check (the cardholder's ID, presented by the cardholder or by an agent
with a power of attorney and their own ID); the visit's actions then use the checked IDs on the server,
so no full citizen ID or card number is ever put into a page or a URL: pages carry person, card and
visit ids, and search terms travel in POST bodies. Every POST carries the session's CSRF token; action
forms carry a one-time key used as the idempotency key, so a double click does the work once.
"""

from __future__ import annotations

import logging
import secrets as pysecrets
from collections.abc import Callable
from datetime import date, timedelta
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..core.errors import SscardError
from ..core.identifiers import normalise, whole_number
from ..core.money import yuan_in_capitals
from ..core.override import require_reason
from ..core.roles import BANK_STAFF, CENTER_STAFF, Actor, Channel, Role
from ..http import RouteBook, language
from ..i18n import label_pair
from ..services import (
    attorney,
    cards,
    loss,
    operation,
    passwords,
    production,
    replacement,
    reports,
    reversal,
    window,
)
from ..services.app import App
from ..services.staff import banks_and_places
from . import confirming, security, staff_accounts
from .forms import Form
from .pages import Refusal, render

router = RouteBook(prefix="/console", include_in_schema=False)
log = logging.getLogger("sscard.console")
STAFF_COOKIE = security.COOKIE["staff"]

# Labels for values that come from data; the templates pass them through _() (console.po has them).
SCOPE_LABELS = {k: v[0] for k, v in attorney.SCOPES.items()}
POA_LABELS = {"valid": "有效", "expired": "已过期", "not_yet_valid": "未生效", "revoked": "已撤销"}
# What a 12333 caller was doing when they asked for an agent (the menu's node or its topic), in words.
TOPIC_LABELS = {
    "query_password_reset": "重置信息查询密码", "forgot_query_password": "重置信息查询密码",
    "main": "社会保障卡综合咨询", "language": "社会保障卡综合咨询", "status": "卡片状态与补换卡进度",
    "loss": "社会保障卡临时挂失", "unloss": "解除临时挂失", "pw": "修改社保卡应用密码", "id": "身份验证",
    "goodbye": "社会保障卡综合咨询", "too_many": "多次输入错误",
}


def topic_label(topic: str) -> str:
    """A menu id ("loss_confirm") as the topic a clerk reads; an unknown one as a general enquiry."""
    topic = topic or ""
    if not topic.isascii():  # already words (a topic a menu gave in Chinese)
        return topic
    return TOPIC_LABELS.get(topic) or TOPIC_LABELS.get(topic.split("_")[0]) or "社会保障卡综合咨询"


class Window(security.StaffDesk):
    """The signed-in clerk (or supervisor) at this center, and their session row (CSRF token)."""

    SUPERVISOR = Role.CENTER_SUPERVISOR


def _app(request: Request) -> App:
    return request.app.state.sscard


def _refusal(role: Role, lang: str) -> str:
    if role in BANK_STAFF:
        return "Bank staff sign in at the bank-outlet console (/bank)" if lang == "en" else \
            "银行工作人员请从银行网点柜台（/bank）登录"
    return "The window console is for service-center clerks and supervisors only" if lang == "en" else \
        "窗口服务系统仅限服务网点经办人员和主管登录"


WINDOW = security.StaffConsole(
    path="/console", channel=Channel.WINDOW, roles=CENTER_STAFF, desk=Window, login_kind="staff", folder="console",
    desk_name="w", not_staff="not_center_staff", throttle_scope="console", refusal=_refusal,
    admins=frozenset({Role.OPERATOR}),  # the staff accounts page and their own password (session 28)
)


def _key() -> str:
    return pysecrets.token_urlsafe(18)


def _message(err: SscardError, lang: str) -> str:
    if err.code == "illegal_transition":
        state, event = str(err.params.get("state", "")), str(err.params.get("event", ""))
        words = SscardError("illegal_transition", state=label_pair("ss_status", state),
                            event=label_pair("window_event", event))
        return Refusal(err, lang, words.message(lang))
    if err.code == "replacement_not_allowed":
        state = str(err.params.get("state", ""))
        return Refusal(err, lang, SscardError(err.code, state=label_pair("ss_status", state)).message(lang))
    return Refusal(err, lang)


def _place_namer(app: App, lang: str) -> Callable[[dict | str | None], str]:
    """A center or bank by its name in the page's language (English pages: name_en when there is one),
    found by its code or Chinese name; never only a code."""
    places = banks_and_places(app)
    known = {}
    for p in places["centers"] + places["banks"]:
        known[p["code"]] = known[p["name"]] = p

    def name(place: dict | str | None) -> str:
        if not place:
            return ""
        key = place if isinstance(place, str) else place.get("code") or place.get("name", "")
        found = known.get(key) or (place if isinstance(place, dict) else {"name": place})
        return (found.get("name_en") or found.get("name", "")) if lang == "en" else found.get("name", "")
    return name


def _page(request: Request, w: Window, template: str, ctx: dict | None = None, status: int = 200) -> HTMLResponse:
    en = language(request) == "en"
    if status >= 400 and request.headers.get("HX-Request") == "true" and request.headers.get("HX-Target") == "main":
        status = 200  # htmx swaps only a 2xx answer: a refusal must still reach the clerk's screen
    full = {
        "place_name": _place_namer(_app(request), language(request)), "confirm_actions": CONFIRM,
        "topic_label": topic_label,
        "lp": " (" if en else "（", "rp": ")" if en else "）",
        "w": w, "op_key": _key(), "scope_labels": SCOPE_LABELS, "poa_labels": POA_LABELS,
        "sep": ": " if language(request) == "en" else "：", "list_sep": ", " if language(request) == "en" else "、",
        **(ctx or {}),
    }
    return render(request, template, full, status)


async def _form(request: Request, w: Window) -> dict[str, str]:
    await security.check_csrf(request, w.row)
    form = await request.form()
    return Form([*((k, str(v).strip()) for k, v in form.multi_items() if isinstance(v, str) and k != "scope"),
                 ("scope", ",".join(str(v) for v in form.getlist("scope")))])


async def window_form(request: Request, w: Window = Depends(WINDOW.signed_in)) -> dict[str, str]:
    """A console POST's form, CSRF checked, read on the event loop; the page itself is a plain `def`, so
    FastAPI runs it (the services it calls, the template) in a worker thread, never on the event loop."""
    return await _form(request, w)


def _reminder(result: dict, lang: str) -> str | None:
    reminder = result.get("reminder")
    return (reminder.get(lang) or reminder.get("zh")) if reminder else None


# ---------------------------------------------------------------- login / logout


WINDOW.mount(router)
staff_accounts.mount(WINDOW, router, lambda request, desk: {
    "w": desk, "place_name": _place_namer(_app(request), language(request))})


# ---------------------------------------------------------------- home: the center's queue, the 12333 queue, search


def _hotline_queue(app: App, actor: Actor) -> dict | None:
    try:
        from ..services import hotline
    except ImportError:  # the hotline area is optional
        return None
    agent_queue = getattr(hotline, "agent_queue", None)
    if agent_queue is None:
        return None
    try:
        return agent_queue(app, actor)
    except (SscardError, TypeError):  # another area's service: its refusal or a changed signature
        log.warning("12333 agent queue unavailable on the window console", exc_info=True)
        return None


def _home(request: Request, w: Window, ctx: dict | None = None, status: int = 200) -> HTMLResponse:
    app = _app(request)
    return _page(request, w, "console/home.html", {
        "queue": window.queue(app, w.actor), "hotline": _hotline_queue(app, w.actor), **(ctx or {}),
    }, status)


@router.get("", response_class=HTMLResponse)
def home(request: Request, w: Window = Depends(WINDOW.signed_in)) -> Response:
    return _home(request, w)


@router.post("/hotline/{request_id}/{action}", response_class=HTMLResponse)
def hotline_action(request_id: int, action: str, request: Request, w: Window = Depends(WINDOW.signed_in),
                   form: dict[str, str] = Depends(window_form)) -> Response:
    from ..services import hotline

    if action not in ("take", "close"):
        return _home(request, w, {"error": _message(SscardError("invalid_request"), language(request))}, 422)
    try:
        key = form.get("op_key") or None
        if action == "take":  # 回拨: this clerk calls the caller back (recorded, with who and when)
            hotline.take_agent_request(_app(request), w.actor, request_id, idempotency_key=key)
        else:  # 已处理: done, with what was done; the number is erased
            hotline.close_agent_request(_app(request), w.actor, request_id, form.get("note", ""), idempotency_key=key)
    except SscardError as err:
        return _home(request, w, {"error": _message(err, language(request))}, err.status)
    return RedirectResponse("/console", status_code=303)


@router.post("/find", response_class=HTMLResponse)
def find(request: Request, w: Window = Depends(WINDOW.signed_in),
         form: dict[str, str] = Depends(window_form)) -> Response:
    """By citizen ID, card number, or name + birth date; one match opens the person's page."""
    app, lang = _app(request), language(request)
    query = normalise(form.get("query", ""))
    try:
        if form.get("name"):
            try:
                birth = date.fromisoformat(form.get("birth_date", ""))
            except ValueError:
                raise SscardError("invalid_request") from None
            found = window.find_by_name(app, w.actor, form["name"], birth)["persons"]
        elif len(query) == 18:
            found = [cards.find_person(app, w.actor, citizen_id=query)]
        elif query:
            found = [cards.find_person(app, w.actor, card_number=query)]
        else:
            raise SscardError("invalid_request")
    except SscardError as err:
        return _home(request, w, {"error": _message(err, lang), "find": {"name": form.get("name", ""),
                                                                         "birth_date": form.get("birth_date", ""),
                                                                         "query": form.get("query", "")}},
                     err.status)
    if len(found) == 1:
        return RedirectResponse(f"/console/persons/{found[0]['id']}", status_code=303)
    return _home(request, w, {"results": found, "find": {"name": form.get("name", ""),
                                                          "birth_date": form.get("birth_date", "")}})


# ---------------------------------------------------------------- a person: cards, powers of attorney, identity check


def _person(request: Request, w: Window, person_id: int, ctx: dict | None = None, status: int = 200) -> HTMLResponse:
    app = _app(request)
    today = app.clock.today()
    return _page(request, w, "console/person.html", {
        "overview": window.person_overview(app, w.actor, person_id),
        "attorneys": attorney.list_for_person(app, w.actor, person_id)["attorneys"],
        "today": today, "in_a_month": today + timedelta(days=30), **(ctx or {}),
    }, status)


@router.get("/persons/{person_id}", response_class=HTMLResponse)
def person_page(person_id: int, request: Request, w: Window = Depends(WINDOW.signed_in)) -> Response:
    try:
        return _person(request, w, person_id)
    except SscardError as err:
        return _home(request, w, {"error": _message(err, language(request))}, err.status)


@router.post("/persons/{person_id}/identity-check", response_class=HTMLResponse)
def identity_check(person_id: int, request: Request, w: Window = Depends(WINDOW.signed_in),
                   form: dict[str, str] = Depends(window_form)) -> Response:
    agent = form.get("presenter") == "agent"
    try:
        attorney_id = whole_number(form.get("attorney_id")) if agent else None
        if agent and attorney_id is None:
            raise SscardError("attorney_not_valid")
        visit = attorney.identity_check(
            _app(request), w.actor, person_id, form.get("citizen_id", "").upper(), attorney_id,
            form.get("agent_citizen_id", "").upper() or None, idempotency_key=form.get("op_key") or None,
        )
    except SscardError as err:
        keep = {k: form.get(k, "") for k in ("citizen_id", "attorney_id", "agent_citizen_id")}
        return _person(request, w, person_id, {"error": _message(err, language(request)), "id_form": keep,
                                               "presenter": "agent" if agent else "cardholder"}, err.status)
    return RedirectResponse(f"/console/visits/{visit['id']}", status_code=303)


@router.post("/persons/{person_id}/attorneys", response_class=HTMLResponse)
def record_attorney(person_id: int, request: Request, w: Window = Depends(WINDOW.signed_in),
                    form: dict[str, str] = Depends(window_form)) -> Response:
    lang = language(request)
    try:
        try:
            start, end = date.fromisoformat(form.get("valid_from", "")), date.fromisoformat(form.get("valid_to", ""))
        except ValueError:
            raise SscardError("attorney_dates_invalid") from None
        scope = [s for s in form.get("scope", "").split(",") if s]
        poa = attorney.record(_app(request), w.actor, person_id, form.get("agent_name", ""),
                              form.get("agent_citizen_id", "").upper(), scope, start, end,
                              form.get("document_ref", ""), idempotency_key=form.get("op_key") or None)
    except SscardError as err:
        keep = {k: form.get(k, "") for k in ("agent_name", "agent_citizen_id", "document_ref", "valid_from", "valid_to",
                                              "citizen_id", "scope")}
        return _person(request, w, person_id, {"error": _message(err, lang), "poa_form": keep,
                                               "poa_open": True}, err.status)
    holder_id = form.get("citizen_id", "").upper()
    if not holder_id:
        return _person(request, w, person_id, {"done": {"kind": "poa_recorded", "id": poa["id"]}})
    # The agent is at the window now: the IDs just typed (the agent's, the cardholder's) start the visit,
    # so neither is typed a second time.
    try:
        key = form.get("op_key")
        visit = attorney.identity_check(_app(request), w.actor, person_id, holder_id, poa["id"],
                                        form.get("agent_citizen_id", "").upper(),
                                        idempotency_key=f"{key}-visit" if key else None)
    except SscardError as err:
        return _person(request, w, person_id, {"done": {"kind": "poa_recorded", "id": poa["id"]},
                                               "error": _message(err, lang), "presenter": "agent"}, err.status)
    return RedirectResponse(f"/console/visits/{visit['id']}", status_code=303)


@router.post("/attorneys/{attorney_id}/revoke", response_class=HTMLResponse)
def revoke_attorney(attorney_id: int, request: Request, w: Window = Depends(WINDOW.signed_in),
                    form: dict[str, str] = Depends(window_form)) -> Response:
    app = _app(request)
    try:
        person_id = attorney.view(app, w.actor, attorney_id)["person_id"]
    except SscardError as err:
        return _home(request, w, {"error": _message(err, language(request))}, err.status)
    try:
        attorney.revoke(app, w.actor, attorney_id, form.get("reason", ""), idempotency_key=form.get("op_key") or None)
    except SscardError as err:
        return _person(request, w, person_id, {"error": _message(err, language(request))}, err.status)
    return _person(request, w, person_id, {"done": {"kind": "poa_revoked", "id": attorney_id}})


# ---------------------------------------------------------------- a visit: the actions after the identity check


def _visit(request: Request, w: Window, visit_id: int, ctx: dict | None = None, status: int = 200) -> HTMLResponse:
    app = _app(request)
    visit = attorney.get_visit(app, w.actor, visit_id)
    places = banks_and_places(app)
    return _page(request, w, "console/visit.html", {
        "visit": visit, "overview": window.person_overview(app, w.actor, visit["person_id"]),
        "allowed": attorney.visit_actions(app, w.actor, visit_id),
        "centers": places["centers"], "banks": places["banks"], "my_center": w.actor.place,
        "fee_fen": app.policy.fee.replacement_fen, "activation_days": app.policy.activation.window_days, "fee_reasons": sorted(replacement.FEE_REASONS), **(ctx or {}),
    }, status)


@router.get("/visits/{visit_id}", response_class=HTMLResponse)
def visit_page(visit_id: int, request: Request, w: Window = Depends(WINDOW.signed_in)) -> Response:
    try:
        return _visit(request, w, visit_id)
    except SscardError as err:
        return _home(request, w, {"error": _message(err, language(request))}, err.status)


Action = Callable[[App, Window, dict, dict, str | None], dict]


def _card_number(app: App, w: Window, ident: dict, form: dict) -> str:
    card_id = whole_number(form.get("card_id"))
    if card_id is None:
        raise SscardError("card_not_found")
    return window.card_number_of(app, w.actor, ident["person_id"], card_id)["card_number"]


# What a refused replacement form keeps, so the clerk does not choose it all again (the PIN is typed again).
KEPT_ON_REFUSAL = ("reason", "payment", "collect_center", "bank_code", "record_formal_loss", "waive_reason")

def _refused_action(request: Request, w: Window, visit_id: int, action: str, form: dict, err: SscardError) -> HTMLResponse:
    """The visit again with the refusal beside the refused action's card, the form's choices kept (never the PIN)."""
    kept = {k: form.get(k, "") for k in KEPT_ON_REFUSAL}
    return _visit(request, w, visit_id, {"error": _message(err, language(request)), "failed_action": action,
                                         "failed_card": form.get("card_id"), "kept": kept}, err.status)


# Irreversible acts ask once more, naming the person and the card (issue 17, point 2): the first POST
# shows the confirmation; only a POST with confirmed=1 (and the same one-time key) does the work.
CONFIRM = frozenset({"formal-loss", "collect"})

# A replacement that takes a fee (in cash, or from the old card's account with the holder's PIN) asks once
# more too, naming the card, the reason, the fee in figures and in 大写 and how it is paid: nothing is
# taken before the clerk confirms. The confirm step is the counters' shared one (web.confirming): what it
# names is sealed into it, and it carries the first form's one-time key, so a double click or a reload
# takes the fee once, and a confirmation changed after it was done is confirmation_already_used.
FEE_STEP = "window-replacement-fee"
NAMED_BY_FEE_STEP = ("card_id", "reason", "payment", "collect_center", "bank_code", "record_formal_loss")
PIN_ERRORS = ("wrong_pin",)  # back to the confirm step's PIN pad, under a fresh key


def _fee_due(app: App, action: str, form: dict) -> int:
    """The fee the replacement form would take (0: nothing taken, or waived by the supervisor: no fee step)."""
    if action != "replace" or form.get("payment") not in ("cash", "card"):
        return 0
    return replacement.fee_due(app.policy, form.get("reason", ""))


def _fee_named(form: dict, fee_fen: int) -> dict:
    """What the fee step names: the visit and card it is for, the choices, the fee (its seal covers them)."""
    return {"visit": form.get("for_visit", ""), "tail": form.get("tail", ""), "fee_fen": fee_fen,
            **{k: form.get(k, "") for k in NAMED_BY_FEE_STEP}}


def _check_fee_step(app: App, w: Window, visit_id: int, form: dict, fee_fen: int) -> None:
    """The confirmed replacement is the one its step named, for this visit (else nothing is done)."""
    if not confirming.named_as_sealed(app, w, FEE_STEP, form.get("sealed", ""), _fee_named(form, fee_fen)):
        raise SscardError("invalid_request")
    if form.get("for_visit") != str(visit_id):  # a step of another visit (another cardholder) posted here
        raise SscardError("desk_customer_changed", last4=form.get("tail", ""))


def _formal_loss(app: App, w: Window, ident: dict, form: dict, key: str | None) -> dict:
    out = loss.report_formal_loss(app, w.actor, _card_number(app, w, ident, form), ident["presented_citizen_id"],
                                  ident["attorney_id"], ident["agent_citizen_id"], idempotency_key=key)
    return {"kind": "formal_loss", **out}


def _cancel_loss(app: App, w: Window, ident: dict, form: dict, key: str | None) -> dict:
    out = loss.cancel_ss_loss(app, w.actor, _card_number(app, w, ident, form), ident["presented_citizen_id"],
                              ident["attorney_id"], ident["agent_citizen_id"], idempotency_key=key)
    return {"kind": "loss_cancelled", **out}


def _replace(app: App, w: Window, ident: dict, form: dict, key: str | None) -> dict:
    number = _card_number(app, w, ident, form)
    common = dict(collect_center_code=form.get("collect_center") or None, bank_code=form.get("bank_code") or None,
                  record_formal_loss=form.get("record_formal_loss") == "1", attorney_id=ident["attorney_id"],
                  agent_citizen_id=ident["agent_citizen_id"], idempotency_key=key)
    reason = form.get("reason", "")
    if reason != "bank_change":
        common["bank_code"] = None
    if form.get("payment") == "waived":
        out = replacement.apply_waived(app, w.actor, number, reason, ident["presented_citizen_id"],
                                       form.get("waive_reason", ""), **common)
    else:
        pin = form.get("pin") or None if form.get("payment") == "card" else None
        out = replacement.apply(app, w.actor, number, reason, ident["presented_citizen_id"],
                                form.get("payment") or None, pin=pin, **common)
    return {"kind": "replacement", **out}


def _check_replacement(app: App, w: Window, ident: dict, form: dict) -> None:
    """`replacement.check`: the replacement `_replace` would ask for is admitted (else its refusal)."""
    reason = form.get("reason", "")
    replacement.check(app, w.actor, _card_number(app, w, ident, form), reason, ident["presented_citizen_id"],
                      form.get("payment") or None, collect_center_code=form.get("collect_center") or None,
                      bank_code=(form.get("bank_code") or None) if reason == "bank_change" else None,
                      record_formal_loss=form.get("record_formal_loss") == "1", attorney_id=ident["attorney_id"],
                      agent_citizen_id=ident["agent_citizen_id"])


def _collect(app: App, w: Window, ident: dict, form: dict, key: str | None) -> dict:
    out = cards.collect_card(app, w.actor, _card_number(app, w, ident, form), ident["presented_citizen_id"],
                              ident["attorney_id"], ident["agent_citizen_id"], idempotency_key=key)
    return {"kind": "collected", "card_id": whole_number(form.get("card_id")), **out}


def _ss_password(app: App, w: Window, ident: dict, form: dict, key: str | None) -> dict:
    number = _card_number(app, w, ident, form)
    if ident["attorney_id"] is not None:
        out = passwords.reset_ss_password_by_agent(app, w.actor, number, ident["presented_citizen_id"],
                                                     ident["attorney_id"], ident["agent_citizen_id"],
                                                     idempotency_key=key)
    else:
        out = passwords.reset_ss_password(app, w.actor, number, ident["presented_citizen_id"], idempotency_key=key)
    return {"kind": "ss_password_reset", **out}


def _query_password(app: App, w: Window, ident: dict, form: dict, key: str | None) -> dict:
    out = passwords.reset_query_password(app, w.actor, ident["person_id"], ident["presented_citizen_id"],
                                         ident["attorney_id"], ident["agent_citizen_id"], idempotency_key=key)
    return {"kind": "query_password_reset", **out}


ACTIONS: dict[str, Action] = {
    "formal-loss": _formal_loss,
    "cancel-loss": _cancel_loss,
    "replace": _replace,
    "collect": _collect,
    "ss-password": _ss_password,
    "query-password": _query_password,
}


@router.post("/visits/{visit_id}/show-id", response_class=HTMLResponse)
def show_citizen_id(visit_id: int, request: Request, w: Window = Depends(WINDOW.signed_in),
                    form: dict[str, str] = Depends(window_form)) -> Response:
    """The full citizen ID, on the clerk's explicit request (audited as a viewed record)."""
    app = _app(request)
    try:
        visit = attorney.get_visit(app, w.actor, visit_id)
        shown = window.reveal_citizen_id(app, w.actor, visit["person_id"])["citizen_id"]
    except SscardError as err:
        return _home(request, w, {"error": _message(err, language(request))}, err.status)
    return _visit(request, w, visit_id, {"shown_id": shown})


@router.post("/visits/{visit_id}/end")
def end_visit(visit_id: int, request: Request, w: Window = Depends(WINDOW.signed_in),
              form: dict[str, str] = Depends(window_form)) -> Response:
    try:
        attorney.end_visit(_app(request), w.actor, visit_id, idempotency_key=form.get("op_key") or None)
    except SscardError as err:
        return _home(request, w, {"error": _message(err, language(request))}, err.status)
    return RedirectResponse("/console", status_code=303)


@router.post("/visits/{visit_id}/{action}", response_class=HTMLResponse)
def visit_action(visit_id: int, action: str, request: Request, w: Window = Depends(WINDOW.signed_in),
                 form: dict[str, str] = Depends(window_form)) -> Response:
    app, lang = _app(request), language(request)
    handler = ACTIONS.get(action)
    try:
        if handler is None:
            raise SscardError("invalid_request")
        ident = attorney.visit_identity(app, w.actor, visit_id)
    except SscardError as err:
        return _home(request, w, {"error": _message(err, lang)}, err.status)
    if action in CONFIRM and form.get("confirmed") != "1":
        return _confirm(request, w, visit_id, action, form)
    fee_fen = _fee_due(app, action, form)
    if fee_fen and form.get("confirmed") != "1":
        try:  # the replacement's own checks first: a refusal comes before the fee is asked for, not after
            _check_replacement(app, w, ident, form)
        except SscardError as err:
            return _refused_action(request, w, visit_id, action, form, err)
        return _shown_after_post(request, w, f"/console/visits/{visit_id}/fee", FEE_PAGE,
                                 {k: form.get(k, "") for k in FEE_PAGE_NAMES})
    try:
        if fee_fen:
            _check_fee_step(app, w, visit_id, form, fee_fen)
        done = handler(app, w, ident, form, form.get("op_key") or None)
    except SscardError as err:
        err = confirming.after_confirm(err, bool(fee_fen))
        if fee_fen and err.code in PIN_ERRORS:  # the holder types the PIN again on the same step
            return _confirm_fee(request, w, visit_id, form, fee_fen, error=_message(err, lang), status=err.status)
        return _refused_action(request, w, visit_id, action, form, err)
    if not form.get("op_key"):  # no one-time key (not a form of ours): no answer kept to show after a redirect
        done["reminder_text"] = _reminder(done, lang)
        return _visit(request, w, visit_id, {"done": done})
    return _shown_after_post(request, w, f"/console/visits/{visit_id}/done", RESULT, {
        "kind": done["kind"], "key": form.get("op_key", ""), "card_id": done.get("card_id")})


# Redirect-after-POST (a 303 to a GET page): what a non-htmx form's POST answers with, the fee step and an
# action's result, is a page of its own address, so Back and Reload never ask to send the form again. The
# address carries what the page shows sealed under the staff session (web.confirming's keys): only this
# session opens it, and a result is read back by its one-time key from the operation's own kept answer
# (services.operation.kept_answer, this staff member's keyed request), never done again.
RESULT, FEE_PAGE = "window-result", "window-fee-step"


def _shown_after_post(request: Request, w: Window, path: str, purpose: str, what: dict) -> Response:
    named = {k: "" if v is None else str(v) for k, v in what.items()}
    named["s"] = confirming.seal_named(_app(request), w, purpose, named)
    return RedirectResponse(f"{path}?{urlencode(named)}", status_code=303)


def _opened(request: Request, w: Window, purpose: str, names: tuple[str, ...]) -> dict[str, str]:
    """What `_shown_after_post` named in this page's address, as it was sealed (invalid_request otherwise:
    a changed address, another session's or another page's)."""
    named = {k: request.query_params.get(k, "") for k in names}
    if not confirming.named_as_sealed(_app(request), w, purpose, request.query_params.get("s", ""), named):
        raise SscardError("invalid_request")
    return named


RESULT_NAMES = ("kind", "key", "card_id")
FEE_PAGE_NAMES = (*NAMED_BY_FEE_STEP, "op_key")


@router.get("/visits/{visit_id}/done", response_class=HTMLResponse)
def visit_result(visit_id: int, request: Request, w: Window = Depends(WINDOW.signed_in)) -> Response:
    """An action's result, by its one-time key: what the operation answered, read back, nothing done."""
    app, lang = _app(request), language(request)
    try:
        attorney.get_visit(app, w.actor, visit_id)  # whose visit it is first: another's is refused as the visit is
        what = _opened(request, w, RESULT, RESULT_NAMES)
        out = operation.kept_answer(app, w.actor, str(what.get("key", "")))
        if not isinstance(out, dict):  # an action done without a key keeps no answer: the visit as it is
            return _visit(request, w, visit_id)
        done = {**out, "kind": what["kind"], "card_id": whole_number(what["card_id"])}
        done["reminder_text"] = _reminder(done, lang)
        return _visit(request, w, visit_id, {"done": done})
    except SscardError as err:
        return _home(request, w, {"error": _message(err, lang)}, err.status)


@router.get("/visits/{visit_id}/fee", response_class=HTMLResponse)
def fee_step(visit_id: int, request: Request, w: Window = Depends(WINDOW.signed_in)) -> Response:
    """The replacement's fee step, for the choices the replace form sent (sealed in the address)."""
    app, lang = _app(request), language(request)
    try:
        ident = attorney.visit_identity(app, w.actor, visit_id)  # whose visit it is first
        form = _opened(request, w, FEE_PAGE, FEE_PAGE_NAMES)
    except SscardError as err:
        return _home(request, w, {"error": _message(err, lang)}, err.status)
    fee_fen = _fee_due(app, "replace", form)
    try:
        if not fee_fen:
            raise SscardError("invalid_request")
        _check_replacement(app, w, ident, form)  # still admitted (a reload after it was done: under way)
    except SscardError as err:
        return _refused_action(request, w, visit_id, "replace", form, err)
    return _confirm_fee(request, w, visit_id, form, fee_fen)


def _confirm(request: Request, w: Window, visit_id: int, action: str, form: dict) -> HTMLResponse:
    """The confirmation step: who, which card (last digits), what it does; the same one-time key."""
    app = _app(request)
    overview = window.person_overview(app, w.actor, attorney.get_visit(app, w.actor, visit_id)["person_id"])
    card = next((c for c in overview["cards"] if str(c["id"]) == form.get("card_id")), None)
    if card is None:
        return _visit(request, w, visit_id, {"error": _message(SscardError("card_not_found"), language(request))}, 404)
    old = next((c for c in overview["cards"] if c["id"] != card["id"] and c["ss_status"] in
                ("normal", "temporary_loss", "formal_loss")), None) if action == "collect" else None
    return _visit(request, w, visit_id, {"confirm": {
        "action": action, "card": card, "old": old, "op_key": form.get("op_key", ""),
        "tail": _tail(card["card_number"]), "old_tail": _tail(old["card_number"]) if old else None,
    }})


def _confirm_fee(request: Request, w: Window, visit_id: int, form: dict, fee_fen: int, *, error: str | None = None,
                 status: int = 200) -> HTMLResponse:
    """The fee step: which card, why, the fee in figures and 大写, how it is paid (by card: the PIN pad is
    here), where the new card is collected; sealed, under the first form's key (a fresh one after a
    wrong PIN: the refused request used the first)."""
    app = _app(request)
    overview = window.person_overview(app, w.actor, attorney.get_visit(app, w.actor, visit_id)["person_id"])
    card = next((c for c in overview["cards"] if str(c["id"]) == form.get("card_id")), None)
    if card is None:
        return _visit(request, w, visit_id, {"error": _message(SscardError("card_not_found"), language(request))}, 404)
    fields = {k: form.get(k, "") for k in NAMED_BY_FEE_STEP}
    fields.update(for_visit=str(visit_id), tail=((card.get("bank") or {}).get("pan") or "")[-4:] or _tail(card["card_number"]))
    fields["sealed"] = confirming.seal_named(app, w, FEE_STEP, _fee_named(fields, fee_fen))
    key = _key() if error else form.get("op_key", "")
    return _visit(request, w, visit_id, {"error": error, "confirm": {
        "action": "replace", "card": card, "op_key": key, "fee_fen": fee_fen, "fields": fields,
        "capitals": yuan_in_capitals(fee_fen), "payment": form.get("payment"), "reason": form.get("reason"),
        "collect_center": form.get("collect_center") or w.actor.place,
        "record_formal_loss": form.get("record_formal_loss") == "1", "tail": _tail(card["card_number"]),
    }}, status)


def _tail(masked: str) -> str:
    """The last digits a clerk reads out: the masked number shows its last two characters."""
    return masked.replace("*", "")[-2:] if masked else ""


# ---------------------------------------------------------------- receipts (PDF)


def _pdf(content: bytes, name: str) -> Response:
    return Response(content, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}.pdf"', "Cache-Control": "no-store"})


@router.get("/receipts/{receipt_no}.pdf")
def fee_receipt(receipt_no: str, request: Request, w: Window = Depends(WINDOW.signed_in)) -> Response:
    try:
        data = window.holder_fee_receipt(_app(request), w.actor, receipt_no)
    except SscardError as err:
        return _home(request, w, {"error": _message(err, language(request))}, err.status)
    from ..documents import receipts  # reportlab: imported by the first receipt, not at start-up

    return _pdf(receipts.fee_receipt_pdf(data), data["receipt_no"])


@router.get("/persons/{person_id}/cards/{card_id}/collection-receipt.pdf")
def collection_receipt(person_id: int, card_id: int, request: Request,
                       w: Window = Depends(WINDOW.signed_in)) -> Response:
    app = _app(request)
    try:
        data = window.holder_collection_receipt(app, w.actor, person_id, card_id)
    except SscardError as err:
        return _home(request, w, {"error": _message(err, language(request))}, err.status)
    from ..documents import receipts  # reportlab: imported by the first receipt, not at start-up

    return _pdf(receipts.collection_receipt_pdf(data), data["receipt_no"])


# ---------------------------------------------------------------- production batches of this center


def _production(request: Request, w: Window, ctx: dict | None = None, status: int = 200) -> HTMLResponse:
    return _page(request, w, "console/production.html",
                 {"queue": window.queue(_app(request), w.actor), **(ctx or {})}, status)


@router.get("/production", response_class=HTMLResponse)
def production_page(request: Request, w: Window = Depends(WINDOW.signed_in)) -> Response:
    return _production(request, w)


@router.post("/production/start", response_class=HTMLResponse)
def start_batch(request: Request, w: Window = Depends(WINDOW.signed_in),
                form: dict[str, str] = Depends(window_form)) -> Response:
    if form.get("confirmed") != "1":  # name how many cards go before they go
        queue = window.queue(_app(request), w.actor)
        if not queue["applied"]:
            none = SscardError("not_found", what=("待制卡申请", "applied cards"))
            return _production(request, w, {"error": _message(none, language(request))}, none.status)
        return _production(request, w, {"confirm": {"cards": queue["applied"], "op_key": form.get("op_key", ""),
                                                     "due_days": _app(request).policy.production.working_days}})
    try:
        out = production.start_batch(_app(request), w.actor, w.actor.place, idempotency_key=form.get("op_key") or None)
    except SscardError as err:
        return _production(request, w, {"error": _message(err, language(request))}, err.status)
    return _production(request, w, {"done": {"kind": "batch_started", **out}})


@router.post("/production/{batch_code}/complete", response_class=HTMLResponse)
def complete_batch(batch_code: str, request: Request, w: Window = Depends(WINDOW.signed_in),
                   form: dict[str, str] = Depends(window_form)) -> Response:
    try:
        out = production.complete_batch(_app(request), w.actor, batch_code,
                                         idempotency_key=form.get("op_key") or None)
    except SscardError as err:
        return _production(request, w, {"error": _message(err, language(request))}, err.status)
    return _production(request, w, {"done": {"kind": "batch_completed", **out}})


# ---------------------------------------------------------------- the supervisor's day report


def _day(request: Request, app: App) -> date | str:
    """The report's day: today when none is asked for; a day that is no date (2026-13-45) goes to the
    service as typed, which refuses it (422), instead of silently showing today's report."""
    asked = request.query_params.get("day", "").strip()
    return asked or app.clock.today()


@router.get("/report", response_class=HTMLResponse)
def day_report(request: Request, w: Window = Depends(WINDOW.supervisor)) -> Response:
    app = _app(request)
    report = reports.center_day(app, w.actor, _day(request, app))
    return _page(request, w, "console/report.html", {"report": report})


@router.get("/report.csv")
def day_report_csv(request: Request, w: Window = Depends(WINDOW.supervisor)) -> Response:
    app = _app(request)
    report = reports.center_day(app, w.actor, _day(request, app))
    return Response("\ufeff" + reports.to_csv(report, language(request)), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="day-report-{report["day"]}.csv"'})


# ---------------------------------------------------------------- the supervisor reverses a clerk's action

REVERSAL_STEP = "reversal"


def _reversals(request: Request, w: Window, ctx: dict | None = None, status: int = 200) -> HTMLResponse:
    listed = reversal.candidates(_app(request), w.actor)
    return _page(request, w, "console/reversals.html", {"listed": listed, **(ctx or {})}, status)


@router.get("/reversals", response_class=HTMLResponse)
def reversals_page(request: Request, w: Window = Depends(WINDOW.supervisor)) -> Response:
    return _reversals(request, w)


@router.post("/reversals/{audit_record_id}", response_class=HTMLResponse)
def reverse_action(audit_record_id: int, request: Request, w: Window = Depends(WINDOW.supervisor),
                   form: dict[str, str] = Depends(window_form)) -> Response:
    """Two steps: the reason is asked and shown back sealed with the action; the confirmed step reverses it
    (under the first form's one-time key: a double click or a reload reverses once)."""
    app, lang = _app(request), language(request)
    try:
        named = {"audit_record_id": audit_record_id, "reason": form.get("reason", "")}
    except SscardError as err:  # a character no channel takes (web.forms)
        return _reversals(request, w, {"error": _message(err, lang), "asked": audit_record_id}, err.status)
    if form.get("confirmed") != "1":
        try:
            require_reason(named["reason"])
        except SscardError as err:
            return _reversals(request, w, {"error": _message(err, lang), "asked": audit_record_id}, err.status)
        return _reversals(request, w, {"confirm": {**named, "op_key": form.get("op_key", ""),
                                                   "sealed": confirming.seal_named(app, w, REVERSAL_STEP, named)}})
    if not confirming.named_as_sealed(app, w, REVERSAL_STEP, form.get("sealed", ""), named):
        err = SscardError("invalid_request")  # a confirmation not of the step shown (another reason, another action)
        return _reversals(request, w, {"error": _message(err, lang)}, err.status)
    try:
        out = reversal.reverse(app, w.actor, audit_record_id, named["reason"],
                               idempotency_key=form.get("op_key") or None)
    except SscardError as err:
        return _reversals(request, w, {"error": _message(confirming.after_confirm(err, True), lang)}, err.status)
    return _reversals(request, w, {"done": out})
