"""The staff pages both consoles share (session 28): "change my password" for every staff member, and the
supervisors' "Staff" page (their own center's clerks at /console/staff, their own bank's tellers at /bank/staff):
each account's state (active or disabled, locked until when, must change), and disable, enable, reset the password
and lift the lock, each through its declared operation (services.staff) after the console's confirm step (what it
does, sealed with the session: web.confirming), under the first form's one-time key.

A reset shows the one-time password it made once, on the answer to the confirmation (pages are never cached:
web.hardening's no-store); it is kept nowhere but as the account's hash. It is drawn from a keyed digest of the
session and the confirmation's one-time key: a double click or a reload of the confirmation is the same request,
answered by the first reset (the operation's idempotency) with the same password shown, never a second reset
whose password nobody saw. Every page calls a service; none touches
the database."""

from __future__ import annotations

import secrets as pysecrets
from collections.abc import Callable

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ..core.errors import SscardError
from ..core.passwords import one_time_staff_password
from ..http import language
from ..i18n import gettext
from ..services import staff, websession
from ..services.app import App
from . import confirming, security
from .forms import Form
from .pages import Refusal, render

ACTIONS = ("disable", "enable", "reset", "unlock")
RUNS = {"disable": staff.disable, "enable": staff.enable, "unlock": staff.unlock}  # (reset: with its one-time password)
STEP = "staff_account"

# words of the page's values (common.po has their English)
ROLE_WORDS = {"clerk": "窗口经办人", "center_supervisor": "服务网点主管", "teller": "银行柜员",
              "bank_supervisor": "银行主管", "operator": "系统管理员"}
ACTION_WORDS = {"disable": "停用账号", "enable": "启用账号", "reset": "重置密码", "unlock": "解除锁定"}
ACTION_SAYS = {  # the confirm step's question
    "disable": "停用后该员工不能登录，已登录的页面和API令牌立即失效。",
    "enable": "启用后该员工可以用原密码登录（原API令牌仍作废，须由系统管理员重新发放）。",
    "reset": "将生成一次性密码，只显示一次；该员工下次登录后须先修改密码。其已登录的页面立即退出。",
    "unlock": "解除登录锁定后该员工可以立即登录，错误次数重新计算。",
}


def _app(request: Request) -> App:
    return request.app.state.sscard


def _key() -> str:
    return pysecrets.token_urlsafe(18)


async def _posted(request: Request, desk: security.StaffDesk) -> Form:
    await security.check_csrf(request, desk.row)
    form = await request.form()
    return Form((k, str(v)) for k, v in form.items() if isinstance(v, str))


def mount(console: security.StaffConsole, router, context: Callable[[Request, security.StaffDesk], dict]) -> None:
    """GET/POST {path}/password (every staff member), GET {path}/staff and POST {path}/staff/{username}/{action}
    (the console's supervisors and admins: the operator at /console) on the console's router. `context`: what the console's layout needs."""
    path = console.path

    def page(request: Request, desk: security.StaffDesk, template: str, ctx: dict, status: int = 200) -> HTMLResponse:
        full = {**context(request, desk), "me": desk, "area": path, "layout": f"{console.folder}/layout.html",
                "op_key": _key(), "role_words": ROLE_WORDS, "action_words": ACTION_WORDS, "action_says": ACTION_SAYS,
                **ctx}
        return render(request, template, full, status)

    # ------------------------------------------------------------ change my password

    def password_page(request: Request) -> Response:
        desk = console.password_change(request)
        return page(request, desk, "staff/password.html", {"page": "password"})

    async def change_password(request: Request) -> Response:
        desk = console.password_change(request)
        form = await _posted(request, desk)
        app, lang = _app(request), language(request)
        keep = websession.session_key(app, request.cookies.get(security.COOKIE["staff"], ""))
        try:
            await run_in_threadpool(staff.change_password, app, desk.actor, form.get("old", "")[:128],
                                    form.get("new", "")[:129], form.get("new_again", "")[:129], keep_session=keep)
        except SscardError as err:
            return page(request, desk, "staff/password.html", {"page": "password", "error": Refusal(err, lang)},
                        err.status)
        if desk.actor.must_change_password:  # the forced change is done: everything opens
            return RedirectResponse(path, status_code=303)
        return page(request, desk, "staff/password.html", {"page": "password", "done": True})

    router.add_api_route("/password", password_page, methods=["GET"], response_class=HTMLResponse)
    router.add_api_route("/password", change_password, methods=["POST"], response_class=HTMLResponse)

    # ------------------------------------------------------------ the supervisors' staff page

    def listed(request: Request, desk: security.StaffDesk, ctx: dict | None = None, status: int = 200) -> HTMLResponse:
        try:
            accounts = staff.list_staff(_app(request), desk.actor)["staff"]
        except SscardError as err:
            accounts, ctx = [], {**(ctx or {}), "error": Refusal(err, language(request))}
        return page(request, desk, "staff/accounts.html", {"page": "staff", "accounts": accounts, **(ctx or {})},
                    status)

    def accounts_page(request: Request) -> Response:
        return listed(request, console.staff_admin(request))

    async def account_action(username: str, action: str, request: Request) -> Response:
        desk = console.staff_admin(request)
        form = await _posted(request, desk)
        app, lang = _app(request), language(request)
        if action not in ACTIONS:
            err = SscardError("invalid_request")
            return listed(request, desk, {"error": Refusal(err, lang)}, err.status)
        named = {"username": username, "action": action}
        if form.get("confirmed") != "1":
            return listed(request, desk, {"confirm": {**named, "op_key": form.get("op_key", "") or _key(),
                                                      "sealed": confirming.seal_named(app, desk, STEP, named)}})
        if not confirming.named_as_sealed(app, desk, STEP, form.get("sealed", ""), named):
            err = SscardError("invalid_request")  # a confirmation not of the step shown
            return listed(request, desk, {"error": Refusal(err, lang)}, err.status)
        key = form.get("op_key") or None
        one_time = None
        if action == "reset":  # a retry of this confirmation (same session, same key) resets once, shows the same
            one_time = one_time_staff_password(app.secrets.token_digest(
                "\x00".join(("staff-one-time", desk.csrf, username, key or _key()))))
        try:
            if one_time is not None:
                await run_in_threadpool(staff.reset_password, app, desk.actor, username, one_time,
                                        idempotency_key=key)
            else:
                await run_in_threadpool(RUNS[action], app, desk.actor, username, idempotency_key=key)
        except SscardError as err:
            err = confirming.after_confirm(err, True)
            return listed(request, desk, {"error": Refusal(err, lang)}, err.status)
        done = gettext(lang, "已办理：{what}（{user}）", what=gettext(lang, ACTION_WORDS[action]), user=username)
        return listed(request, desk, {"done": done, "one_time": one_time, "done_user": username})

    router.add_api_route("/staff", accounts_page, methods=["GET"], response_class=HTMLResponse)
    router.add_api_route("/staff/{username}/{action}", account_action, methods=["POST"], response_class=HTMLResponse)
