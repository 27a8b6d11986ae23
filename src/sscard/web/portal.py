"""The cardholder portal (issue 7): /portal pages, Jinja2 + htmx, zh by default and en.

Login by SS number (citizen ID) or card number + information query password; an initial password must
be changed before anything else. Pages: my card (both sides in plain words), insurance records (table,
yearly totals, an SVG chart of pension per year, CSV), medical personal account, online temporary loss
of the SS side and its cancellation, progress of a replacement, password changes, and who looked at or
changed my record (PIPL's right to know: role and place from the audit log, never a staff member's name).

No portal URL or form takes a person id or a card number: who and which card always come from the
signed-in session (services.insurance.own_card picks the card on the server). Every POST carries the
session's CSRF token; the login form a pre-session double-submit token.
"""

from __future__ import annotations

import hmac
import secrets as pysecrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool

from ..core.errors import SscardError
from ..core.identifiers import ascii_digits, whole_number
from ..core.money import format_yuan
from ..core.roles import Actor
from ..http import RouteBook, client_address, language
from ..services import access, audit, cards, certificates, insurance, loss, passwords, throttle, websession
from ..services.app import App
from . import security
from .forms import Form
from .hardening import delete_cookie, set_cookie, throttled
from .pages import Refusal, render

router = RouteBook(prefix="/portal", include_in_schema=False)
KIND = "cardholder"
WRONG_LOGIN = "wrong"  # the login page words it (with the lock rule from the policy)
PRE_COOKIE = "sscard_portal_pre"


def N_(text: str) -> str:
    """Mark a string for the portal catalog; templates translate it with _()."""
    return text


MOVEMENT_WORDS = {"credit": N_("按月划入"), "settlement": N_("就医购药支付"), "refund": N_("退费")}
SETTLEMENT_WORDS = {"settlement": N_("结算"), "refund": N_("退费")}
STEPS = (("applied", N_("已申请")), ("in_production", N_("制卡中")), ("ready", N_("待领取")), ("issued", N_("已领卡")))
ISSUED = {"normal", "temporary_loss", "formal_loss", "cancelled"}
# Each page of the menu with the operations it runs: a session opened with the initial query password sees
# and opens only the pages whose every operation the frame lets it run (access.BEFORE_FIRST_CHANGE: hear the
# card's state, report it lost, change the password); the rule is the frame's, read here, not restated.
PAGES = (
    ("card", "/portal/card", N_("我的卡"), ("person.cards", "query_password.status")),
    ("insurance", "/portal/insurance", N_("参保缴费"), ("insurance.records",)),
    ("medical", "/portal/medical", N_("医保个人账户"), ("medical.personal_account", "medical.person_settlements")),
    ("loss", "/portal/loss", N_("挂失"), ("person.cards",)),
    ("progress", "/portal/progress", N_("补换卡进度"), ("person.cards",)),
    ("certificate", "/portal/certificate", N_("参保证明"), ("certificates.list", "insurance.records")),
    ("password", "/portal/password", N_("修改密码"), ("query_password.change", "query_password.status")),
    ("access", "/portal/access", N_("查询记录"), ("audit.about_me",)),
)
RUNS = {key: runs for key, _href, _label, runs in PAGES}
NAV = tuple((key, href, label) for key, href, label, _runs in PAGES)
# The access log in words: what was done (core.labels.OPERATION_CARDHOLDER, the `label` filter), by whom
# (role), and how it ended.
ROLE_WORDS = {
    "clerk": N_("社保卡服务网点工作人员"), "center_supervisor": N_("社保卡服务网点主管"),
    "teller": N_("银行柜员"), "bank_supervisor": N_("银行主管"), "operator": N_("系统管理员"),
    "system": N_("系统自动处理"), "terminal": N_("自助终端"), "terminal_atm": N_("ATM自助柜员机"),
    "terminal_pos": N_("POS机"), "terminal_hospital": N_("定点医院"), "terminal_pharmacy": N_("定点药店"),
    "terminal_kiosk": N_("自助服务终端"),
    "login_portal": N_("网上服务大厅登录"), "login_api": N_("移动应用登录"),
    "login_hotline_12333": N_("12333电话登录"), "login_hotline_bank": N_("银行客服热线身份验证"),
}
ACCESS_KIND_WORDS = {"viewed": N_("查阅"), "changed": N_("办理"), "refused": N_("被拒绝"),
                     "login": N_("登录成功"), "login_failed": N_("登录失败")}


# ---------------------------------------------------------------- session plumbing


@dataclass
class Me:
    actor: Actor | None = None
    csrf: str = ""
    token: str = ""
    must_change: bool = False
    redirect: Response | None = None


def _app(request: Request) -> App:
    return request.app.state.sscard


def _me(request: Request, *, runs: tuple[str, ...] = (), own_session: bool = False) -> Me:
    """The signed-in cardholder, or a redirect: to the login page, or to the forced password change when
    the session holds the initial password and the page runs an operation the frame refuses to such a
    session (`runs`, the page's operations; `own_session`: signing in or out, whatever the password)."""
    try:
        actor, row = security.page_session(request, KIND)
    except security.LoginRequired:
        return Me(redirect=security.to_login(request, KIND, _redirect(request, security.login_target(request, KIND))))
    me = Me(actor, row.csrf, request.cookies.get(security.COOKIE[KIND], ""), bool(row.must_change_password))
    if me.must_change and not own_session and not open_to(actor, runs):
        me.redirect = _redirect(request, "/portal/password")
    return me


def open_to(actor: Actor, runs: tuple[str, ...]) -> bool:
    """Whether a page that runs these operations is open to this session as far as how it signed in goes
    (the frame's own rule, `access.allowed_before_first_change`; a page that names none is not)."""
    return bool(runs) and all(access.allowed_before_first_change(actor, op) for op in runs)


def _nav(me: Me) -> tuple[tuple[str, str, str], ...]:
    """The menu this session may follow: every page, or with the initial password the pages open to it."""
    if me.actor is None or not me.must_change:
        return NAV
    return tuple((key, href, label) for key, href, label, runs in PAGES if open_to(me.actor, runs))


def _redirect(request: Request, target: str) -> Response:
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _posted(request: Request, *, runs: tuple[str, ...] = (), own_session: bool = False) -> tuple[Me, dict]:
    """A POST from a signed-in page: session, then CSRF (403 when missing or wrong), then the form."""
    me = _me(request, runs=runs, own_session=own_session)
    if me.redirect is not None and me.actor is None:
        return me, {}
    await security.check_csrf(request, _CsrfRow(me.csrf))
    form = await request.form()
    return me, Form((k, v) for k, v in form.items() if isinstance(v, str))


def form_page(*, runs: tuple[str, ...]) -> Callable[[Callable[[Request, Me, dict], Response]],
                                                            Callable[[Request], Awaitable[Response]]]:
    """A signed-in page's POST: the session, CSRF and form read on the event loop (`_posted`), then the
    page's body, which calls services (a password hash, a PDF), in a worker thread, as a GET page is run."""
    def decorate(body: Callable[[Request, Me, dict], Response]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            me, form = await _posted(request, runs=runs)
            if me.redirect:
                return me.redirect
            return await run_in_threadpool(body, request, me, form)

        # its name and doc for the route (no __wrapped__: FastAPI would read the body's parameters)
        endpoint.__name__, endpoint.__qualname__, endpoint.__doc__ = body.__name__, body.__qualname__, body.__doc__
        return endpoint

    return decorate


@dataclass
class _CsrfRow:
    csrf: str


def _page(request: Request, name: str, me: Me, active: str, ctx: dict | None = None, status_code: int = 200):
    base = {
        "me": me,
        "nav": _nav(me),
        "active": active,
        "csrf_token": me.csrf,
        "yuan": format_yuan,
        "idem_key": lambda: pysecrets.token_urlsafe(16),
        "policy": _app(request).policy.query_password,
        "ss_max": _app(request).policy.ss_password.max_failures,
        "tel": tel_href,
        "center_name": _center_name(language(request)),
    }
    return render(request, f"portal/{name}", {**base, **(ctx or {})}, status_code=status_code)


def _center_name(lang: str):
    """The service center a card is collected at, in the page's language (name_en on English pages)."""
    def name(card: dict) -> str:
        if lang == "en":
            return card.get("ready_center_en") or card.get("ready_center") or ""
        return card.get("ready_center") or ""
    return name


def tel_href(number: str | None) -> str:
    """A hotline number as a tel: URL a phone dials on a tap (digits and + only)."""
    return "tel:" + "".join(ch for ch in (number or "") if ascii_digits(ch) or ch == "+")


def _error_text(request: Request, err: SscardError) -> str:
    return Refusal(err, language(request))


# ---------------------------------------------------------------- login, logout


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def portal_home(request: Request) -> Response:
    me = _me(request)
    return me.redirect or RedirectResponse("/portal/card", status_code=303)


def _login_page(request: Request, error: str = "", status_code: int = 200, login_value: str = "",
                next_path: str | None = None) -> Response:
    """The login form, with the password rules shown before the first attempt. After a refusal the ID
    that was typed stays in its field (the person's own, on their own screen; never the password)."""
    pre = request.cookies.get(PRE_COOKIE) or pysecrets.token_urlsafe(24)
    policy = _app(request).policy.query_password
    response = render(request, "portal/login.html", {
        "pre_token": pre, "error": error, "initial_source": policy.initial_source,
        "max_failures": policy.max_failures, "lock_minutes": policy.lock_minutes, "login_value": login_value,
        "next_path": security.next_for_login(request, KIND, next_path),
    }, status_code=status_code)
    set_cookie(response, request, PRE_COOKIE, pre, path="/portal")
    return response


def _login_refusal(request: Request, err: SscardError, status: int, login: str, back: str = "") -> Response:
    """A refused login in words that never tell whether the login exists: no count of tries left (a
    count exists only for a known login); the page states the lock rule in general words instead."""
    if err.code == "password_locked":
        return _login_page(request, _error_text(request, err), status, login, back)
    return _login_page(request, WRONG_LOGIN, status, login, back)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    if request.cookies.get(security.COOKIE[KIND]):
        me = _me(request, own_session=True)
        if me.actor is not None:  # already signed in
            return RedirectResponse("/portal/password" if me.must_change else "/portal/card", status_code=303)
    return _login_page(request)


@router.post("/login", response_class=HTMLResponse)
async def login_submit(request: Request) -> Response:
    form = await request.form()
    sent, cookie = str(form.get("pre_token", "")), request.cookies.get(PRE_COOKIE, "")
    if not sent or not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
        raise security.CsrfFailed()
    login = str(form.get("login", ""))[:32].strip()
    password = str(form.get("password", ""))[:64]
    back = security.safe_next(str(form.get("next", "")), security.area_of(KIND)) or ""
    if not login or not password:
        return _login_refusal(request, SscardError("wrong_password"), 401, login, back)
    app = _app(request)
    try:
        session = await run_in_threadpool(  # the password hash: a worker thread's CPU, not the event loop's
            throttle.guarded_login, app, client_address(request), "portal", login,
            lambda: websession.cardholder_login(app, login, password))
    except SscardError as err:
        if err.code == "too_many_attempts":  # refused before the password is checked
            return throttled(_login_page(request, _error_text(request, err), err.status, login, back), err)
        status = err.status if err.status in (401, 423) else 401
        if err.code not in ("wrong_password", "password_locked"):  # never say which field was wrong
            err = SscardError("wrong_password")
        return _login_refusal(request, err.without_count(), status, login, back)
    target = "/portal/password" if session.must_change_password else (back or "/portal/card")
    response = RedirectResponse(target, status_code=303)
    delete_cookie(response, request, security.NEXT_COOKIE, path=security.LOGIN_PAGE[KIND])
    security.set_session_cookie(response, KIND, session.token, request)
    delete_cookie(response, request, PRE_COOKIE, path="/portal")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    me, _form = await _posted(request, own_session=True)
    if me.actor is not None:
        websession.logout(_app(request), me.token)
    response = RedirectResponse("/portal/login", status_code=303)
    security.clear_session_cookie(response, KIND, request)
    return response


# ---------------------------------------------------------------- my card, progress


def _my_cards(request: Request, me: Me) -> dict:
    return cards.person_cards(_app(request), me.actor, me.actor.person_id)


def _current(cards_list: list[dict]) -> dict | None:
    """The card a person thinks of as 'my card': the newest issued one (else the newest at all)."""
    issued = [c for c in cards_list if c["ss_status"] in ("normal", "temporary_loss", "formal_loss")]
    if issued:
        return issued[-1]
    pending = [c for c in cards_list if c["ss_status"] != "cancelled"]
    return pending[-1] if pending else (cards_list[-1] if cards_list else None)


def _in_progress(cards_list: list[dict]) -> list[dict]:
    return [c for c in cards_list if c["ss_status"] in ("applied", "in_production", "ready", "sealed")]


@router.get("/card", response_class=HTMLResponse)
def card_page(request: Request) -> Response:
    me = _me(request, runs=RUNS["card"])
    if me.redirect:
        return me.redirect
    data = _my_cards(request, me)
    return _page(request, "card.html", me, "card", {
        "person": data["person"], "card": _current(data["cards"]), "pending": _in_progress(data["cards"]),
        "query_pw": passwords.query_password_status(_app(request), me.actor),
    })


def _steps(card: dict) -> list[dict]:
    status = "issued" if card["ss_status"] in ISSUED else card["ss_status"]
    order = [s for s, _ in STEPS]
    reached = order.index(status) if status in order else (order.index("ready") if status == "sealed" else 0)
    when = {"applied": card["applied_at"], "ready": card["ready_at"], "issued": card["collected_at"]}
    return [{"key": key, "label": label, "done": i <= reached, "current": i == reached, "at": when.get(key)}
            for i, (key, label) in enumerate(STEPS)]


@router.get("/progress", response_class=HTMLResponse)
def progress_page(request: Request) -> Response:
    me = _me(request, runs=RUNS["progress"])
    if me.redirect:
        return me.redirect
    data = _my_cards(request, me)
    history = [{"card": c, "steps": _steps(c)} for c in reversed(data["cards"])]
    return _page(request, "progress.html", me, "progress", {
        "history": history, "pending": _in_progress(data["cards"]),
    })


# ---------------------------------------------------------------- insurance records


def _filters(request: Request) -> tuple[int | None, str | None]:
    year_text = request.query_params.get("year", "")
    year = whole_number(year_text) if len(year_text) == 4 else None
    kind = request.query_params.get("type") or None
    return year, kind if kind in insurance.INSURANCE_TYPES else None


@router.get("/insurance", response_class=HTMLResponse)
def insurance_page(request: Request) -> Response:
    me = _me(request, runs=RUNS["insurance"])
    if me.redirect:
        return me.redirect
    year, kind = _filters(request)
    app = _app(request)
    data = insurance.contribution_records(app, me.actor, me.actor.person_id, insurance_type=kind)
    if year is None and "year" not in request.query_params and data["years"]:
        year = data["years"][0]  # the latest year by default; ?year= (empty) shows all
    rows = [r for r in data["rows"] if year is None or r["year"] == year]
    lang = language(request)
    return _page(request, "insurance.html", me, "insurance", {
        "data": data, "rows": rows, "year": year, "kind": kind,
        "chart": pension_chart_svg(data["pension_by_year"], lang),
        "csv_query": _csv_query(year, kind),
    })


def _csv_query(year: int | None, kind: str | None) -> str:
    parts = [f"year={year}"] if year else ["year="]
    if kind:
        parts.append(f"type={kind}")
    return "?" + "&".join(parts)


@router.get("/insurance.csv")
def insurance_csv(request: Request) -> Response:
    me = _me(request, runs=RUNS["insurance"])
    if me.redirect:
        return me.redirect
    year, kind = _filters(request)
    text = insurance.contributions_csv(_app(request), me.actor, me.actor.person_id, year=year, insurance_type=kind,
                                       lang=language(request))
    name = f"contributions-{year or 'all'}.csv"
    return Response("\ufeff" + text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


def pension_chart_svg(points: list[dict], lang: str = "zh") -> Markup:
    """Pension contributions per year as stacked bars (personal + employer), server-rendered SVG with
    a title, a description listing every value, year labels and total labels (readable without colour)."""
    en = lang == "en"
    title = "Pension contributions per year" if en else "每年养老保险缴费"
    if not points:
        return Markup("")
    width, height, left, right, top, bottom = 400, 250, 60, 8, 24, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(p["total_fen"] for p in points) or 1
    step = _nice_step(peak)
    top_value = ((peak + step - 1) // step) * step
    unit = chart_unit(top_value)
    # axis labels: as few decimals as the gridline step needs (a step of 2,500 yuan needs 0.25万)
    per_unit = 100_000 if en else 1_000_000  # fen in 1k (en) / 1万 (zh)
    gridlines = [top_value * i // 4 for i in range(5)]
    axis_decimals = next((d for d in (0, 1, 2) if all(v % (per_unit // 10 ** d) == 0 for v in gridlines)), 2)
    slot = plot_w / len(points)
    bar_w = min(56.0, slot * 0.6)
    value_class = "value" if slot >= 48 else "value narrow"  # many years: smaller labels that do not touch
    yuan_word = "yuan" if en else "元"
    desc_items = [
        (f"{p['year']}: {format_yuan(p['total_fen'])} {yuan_word} (personal {format_yuan(p['personal_fen'])}, "
         f"employer {format_yuan(p['employer_fen'])}, {p['months']} month{'' if p['months'] == 1 else 's'})") if en else
        (f"{p['year']}年：合计{format_yuan(p['total_fen'])}元（个人{format_yuan(p['personal_fen'])}元，"
         f"单位{format_yuan(p['employer_fen'])}元，{p['months']}个月）")
        for p in points
    ]
    desc = ("; " if en else "；").join(desc_items)
    out = [
        f'<svg class="pension-chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="pension-chart-title pension-chart-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="pension-chart-title">{escape(title)}</title>',
        f'<desc id="pension-chart-desc">{escape(desc)}</desc>',
    ]
    for value in gridlines:
        y = top + plot_h - plot_h * value / top_value
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" class="grid"/>')
        label = "0" if value == 0 else _short_yuan(value, en, unit, axis_decimals)
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
                   f'{escape(label)}</text>')
    for i, p in enumerate(points):
        x = left + slot * i + (slot - bar_w) / 2
        personal_h = plot_h * p["personal_fen"] / top_value
        employer_h = plot_h * p["employer_fen"] / top_value
        base_y = top + plot_h
        out.append(f'<rect x="{x:.1f}" y="{base_y - personal_h:.1f}" width="{bar_w:.1f}" height="{personal_h:.1f}" '
                   f'class="personal"/>')
        out.append(f'<rect x="{x:.1f}" y="{base_y - personal_h - employer_h:.1f}" width="{bar_w:.1f}" '
                   f'height="{employer_h:.1f}" class="employer"/>')
        cx = x + bar_w / 2
        out.append(f'<text x="{cx:.1f}" y="{base_y - personal_h - employer_h - 6:.1f}" text-anchor="middle" '
                   f'class="{value_class}">{escape(_short_yuan(p["total_fen"], en, unit))}</text>')
        out.append(f'<text x="{cx:.1f}" y="{base_y + 18:.1f}" text-anchor="middle" class="axis">{p["year"]}</text>')
    legend_y = height - 8
    out.append(f'<rect x="{left}" y="{legend_y - 10}" width="12" height="12" class="personal"/>')
    out.append(f'<text x="{left + 16}" y="{legend_y}" class="axis">{"Personal" if en else "个人缴纳"}</text>')
    out.append(f'<rect x="{left + 100}" y="{legend_y - 10}" width="12" height="12" class="employer"/>')
    out.append(f'<text x="{left + 116}" y="{legend_y}" class="axis">{"Employer" if en else "单位缴纳"}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def _nice_step(peak_fen: int) -> int:
    """A round gridline step (1, 2 or 5 × 10^n fen) giving about four lines under the peak."""
    raw = max(1, peak_fen // 4)
    magnitude = 1
    while magnitude * 10 <= raw:
        magnitude *= 10
    for m in (1, 2, 5, 10):
        if m * magnitude >= raw:
            return m * magnitude
    return 10 * magnitude


def chart_unit(peak_fen: int) -> str:
    """One unit for every label of a chart, from its largest value: yuan below 10,000 yuan, else 万 (zh)
    / thousands (en). Mixing them (3568 beside 4.5万) made bars hard to compare."""
    return "wan" if peak_fen >= 1_000_000 else "yuan"


def _short_yuan(fen: int, en: bool, unit: str = "yuan", decimals: int = 1) -> str:
    """A chart label in the chart's one unit: 3,568 / 45,000 in yuan, or 0.4万 / 4.5万 (0.4k... in en)."""
    step = Decimal(1).scaleb(-decimals)  # integer fen to Decimal: no float ever touches the amount
    if unit == "yuan":
        return f"{Decimal(fen).scaleb(-2).quantize(Decimal(1), ROUND_HALF_UP):,}"
    if en:
        return f"{Decimal(fen).scaleb(-5).quantize(step, ROUND_HALF_UP):,}k"
    return f"{Decimal(fen).scaleb(-6).quantize(step, ROUND_HALF_UP)}万"


# ---------------------------------------------------------------- medical personal account


def _medical_account(app: App, actor: Actor) -> dict | None:
    """The medical area's personal account view, when that service offers one."""
    try:
        from ..services import medical
    except ImportError:
        return None
    reader = getattr(medical, "personal_account", None)
    if reader is None:
        return None
    account = reader(app, actor, actor.person_id)
    settlements = getattr(medical, "person_settlements", None)
    if settlements is not None:
        account["settlements"] = settlements(app, actor, actor.person_id, limit=20)["settlements"]
    return account


@router.get("/medical", response_class=HTMLResponse)
def medical_page(request: Request) -> Response:
    me = _me(request, runs=RUNS["medical"])
    if me.redirect:
        return me.redirect
    account = _medical_account(_app(request), me.actor)
    return _page(request, "medical.html", me, "medical", {"account": account, "movement_words": MOVEMENT_WORDS,
                                                            "settlement_words": SETTLEMENT_WORDS})


# ---------------------------------------------------------------- loss


def _loss_context(request: Request, me: Me) -> dict:
    data = _my_cards(request, me)
    card = _current(data["cards"])
    return {"card": card, "replacement_applied": bool(_in_progress(data["cards"]))
            and card is not None and card["ss_status"] in ("temporary_loss", "formal_loss")}


@router.get("/loss", response_class=HTMLResponse)
def loss_page(request: Request) -> Response:
    me = _me(request, runs=RUNS["loss"])
    if me.redirect:
        return me.redirect
    return _page(request, "loss.html", me, "loss", _loss_context(request, me))


@router.post("/loss/report", response_class=HTMLResponse)
@form_page(runs=("portal.own_card", "ss_loss.report_temporary", "person.cards"))
def loss_report(request: Request, me: Me, form: dict) -> Response:
    return _loss_action(request, me, form, "report")


@router.post("/loss/cancel", response_class=HTMLResponse)
@form_page(runs=("portal.own_card", "ss_loss.cancel", "person.cards"))
def loss_cancel(request: Request, me: Me, form: dict) -> Response:
    return _loss_action(request, me, form, "cancel")


def _loss_action(request: Request, me: Me, form: dict, action: str) -> Response:
    """Two steps, for htmx and plain forms alike: a POST without `confirm` only shows what will happen to
    which card (its last digits); the confirming POST carries an idempotency key made with that page, so
    a double tap or a resent form applies the loss once (the service answers a repeated key with the
    first answer)."""
    app = _app(request)
    done, error, status = None, "", 200
    if form.get("confirm") != "yes":
        ctx = _loss_context(request, me)
        ctx.update(confirm=True, action=action)
        return _page(request, "loss.html", me, "loss", ctx)
    try:
        card_number = insurance.own_card(app, me.actor, "loss")["card_number"]
        key = _form_key(form)
        if action == "report":
            done = loss.report_temporary_loss(app, me.actor, card_number, idempotency_key=key)
        else:
            done = loss.cancel_ss_loss(app, me.actor, card_number, idempotency_key=key)
    except SscardError as err:
        error, status = _error_text(request, err), err.status
        if request.headers.get("hx-request"):
            status = 200  # htmx swaps only 2xx answers; the message is in the panel
    ctx = _loss_context(request, me)
    ctx.update(done=done, action=action, error=error)
    return _page(request, "loss.html", me, "loss", ctx, status_code=status)


# ---------------------------------------------------------------- passwords


def _form_key(form: dict) -> str | None:
    """The one-time key a form page put in its form (`idem_key`): a double tap or a resent form is the same
    request, answered once (the frame's idempotency), not a second change refused with the old password."""
    return str(form.get("idempotency_key") or "")[:80] or None


@router.get("/password", response_class=HTMLResponse)
def password_page(request: Request) -> Response:
    me = _me(request, runs=RUNS["password"])
    if me.redirect:
        return me.redirect
    return _page(request, "password.html", me, "password", {})


@router.post("/password/query", response_class=HTMLResponse)
@form_page(runs=("query_password.change",))
def change_query_password(request: Request, me: Me, form: dict) -> Response:
    app = _app(request)
    try:
        passwords.change_query_password(app, me.actor, form.get("old", "")[:64], form.get("new", "")[:64],
                                        form.get("new_again", "")[:64],
                                        keep_session=websession.session_key(app, me.token),
                                        idempotency_key=_form_key(form))
    except SscardError as err:
        return _page(request, "password.html", me, "password", {"query_error": _error_text(request, err)},
                     status_code=err.status)
    if me.must_change:
        websession.password_changed(app, me.token)
        return RedirectResponse("/portal/card?changed=1", status_code=303)
    return _page(request, "password.html", me, "password", {"query_done": True})


@router.post("/password/ss", response_class=HTMLResponse)
@form_page(runs=("portal.own_card", "ss_password.change"))
def change_ss_password(request: Request, me: Me, form: dict) -> Response:
    app = _app(request)
    try:
        card_number = insurance.own_card(app, me.actor, "password")["card_number"]
        passwords.change_ss_password(app, me.actor, card_number, form.get("old", "")[:16],
                                     form.get("new", "")[:16], form.get("new_again", "")[:16],
                                     idempotency_key=_form_key(form))
    except SscardError as err:
        return _page(request, "password.html", me, "password", {"ss_error": _error_text(request, err)},
                     status_code=err.status)
    return _page(request, "password.html", me, "password", {"ss_done": True})


# ---------------------------------------------------------------- who looked at or changed my record (PIPL)


@router.get("/access", response_class=HTMLResponse)
def access_page(request: Request) -> Response:
    me = _me(request, runs=RUNS["access"])
    if me.redirect:
        return me.redirect
    data = audit.about_me(_app(request), me.actor)
    return _page(request, "access.html", me, "access", {
        "records": data["records"], "role_words": ROLE_WORDS,
        "access_kind_words": ACCESS_KIND_WORDS,
    })


# ---------------------------------------------------------------- proof of insurance (参保证明) and its public check


def verify_url(request: Request) -> str:
    """The public check page's address, as printed on the certificate and carried by its QR code: under the
    configured public URL (SSCARD_PUBLIC_URL), never a Host header's choice when one is set."""
    base = _app(request).settings.public_url or str(request.base_url)
    return base.rstrip("/") + "/portal/verify"


def _certificate_page(request: Request, me: Me, error: str = "", status_code: int = 200, form: dict | None = None):
    app = _app(request)
    records = insurance.contribution_records(app, me.actor, me.actor.person_id)
    issued = certificates.my_certificates(app, me.actor)["certificates"]
    form = form or {}
    return _page(request, "certificate.html", me, "certificate", {
        "records": records, "issued": issued, "error": error, "verify_url": verify_url(request),
        "period_from": form.get("period_from") or records["first_month"] or "",
        "period_to": form.get("period_to") or records["last_month"] or "",
    }, status_code=status_code)


@router.get("/certificate", response_class=HTMLResponse)
def certificate_page(request: Request) -> Response:
    me = _me(request, runs=RUNS["certificate"])
    if me.redirect:
        return me.redirect
    return _certificate_page(request, me)


@router.post("/certificate")
@form_page(runs=("certificates.issue",))
def certificate_issue(request: Request, me: Me, form: dict) -> Response:
    """Issue and download at once: the PDF is the answer (the code is in it and nowhere else in clear)."""
    app = _app(request)
    try:
        issued = certificates.issue_certificate(app, me.actor, form.get("period_from", "")[:7] or None,
                                                form.get("period_to", "")[:7] or None)
    except SscardError as err:
        return _certificate_page(request, me, _error_text(request, err), err.status, form)
    from ..documents.certificate import render_certificate  # reportlab: imported by the first certificate

    pdf = render_certificate(issued, verify_url(request))
    name = f"certificate-{issued['period_from']}-{issued['period_to']}-{issued['code'][-4:]}.pdf"
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


def _verify_page(request: Request, code: str = "", result: dict | None = None, error: str = "",
                 status_code: int = 200) -> Response:
    me = _me(request) if request.cookies.get(security.COOKIE[KIND]) else Me()
    if me.redirect is not None:
        me = Me()  # a stale or half-finished session: the public page shows no portal menu
    return render(request, "portal/verify.html", {
        "me": me, "nav": _nav(me), "active": "", "csrf_token": me.csrf, "code": code, "result": result,
        "error": error,
    }, status_code=status_code)


def _check(request: Request, code: str) -> Response:
    code = code[:64]
    if not code.strip():
        return _verify_page(request)
    try:
        result = certificates.check_code(_app(request), client_address(request), code)
    except SscardError as err:
        if err.code == "too_many_attempts":
            return throttled(_verify_page(request, code, error=_error_text(request, err), status_code=429), err)
        if err.code != "certificate_not_found":
            raise
        return _verify_page(request, code, error=_error_text(request, err), status_code=404)
    return _verify_page(request, code, result)


@router.get("/verify", response_class=HTMLResponse)
def verify_page(request: Request) -> Response:
    """The public check (no login): empty, or with ?code= from the certificate's QR code."""
    return _check(request, request.query_params.get("code", ""))


@router.post("/verify", response_class=HTMLResponse)
async def verify_submit(request: Request) -> Response:
    """The typed code, posted (not put in the address, so it stays out of browser history and logs).
    No CSRF token: nobody is signed in here and the answer changes nothing."""
    form = await request.form()
    return await run_in_threadpool(_check, request, str(form.get("code", "")))


# ---------------------------------------------------------------- a GET of a form's target (language switch, reload)

_FORM_TARGETS = {
    "/loss/report": "/portal/loss",
    "/loss/cancel": "/portal/loss",
    "/password/query": "/portal/password",
    "/password/ss": "/portal/password",
    "/logout": "/portal/card",
}


def _back_to(target: str):
    def go(request: Request) -> Response:
        return RedirectResponse(target, status_code=303)

    return go


for _path, _target in _FORM_TARGETS.items():
    # The language switch goes back to the referring URL: after a form was posted, that is the form's
    # target; a GET there shows the page the form was on (it never repeats the action).
    router.add_api_route(_path, _back_to(_target), methods=["GET"], include_in_schema=False)
