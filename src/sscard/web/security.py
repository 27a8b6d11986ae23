"""Cookies, CSRF and the "who is this page for" dependencies shared by the consoles and the portal."""

from __future__ import annotations

import hmac
from urllib.parse import quote, unquote

from fastapi import Request
from fastapi.responses import RedirectResponse

from ..core.roles import Actor, Channel, Role
from ..services import websession
from ..services.app import App
from . import hardening

COOKIE = {"staff": "sscard_staff", "cardholder": "sscard_portal"}
LOGIN_PAGE = {"staff": "/console/login", "cardholder": "/portal/login"}


def login_target(request: Request, kind: str) -> str:
    """Where a request without a live session is sent: its login page, told (`?unsent=1`) when what it
    sent was a form, that it was not done (session 22's probe on the consoles; the portal too, where a
    card reported lost after the session ended landed on the plain login page)."""
    target = LOGIN_PAGE[kind]
    return target + "?unsent=1" if request.method == "POST" else target


# Where a sign-in goes back to (the page a session timed out on): carried from the redirect to the login page
# in a cookie of the login page's own path (the login's address stays as it was), then in the login form, and
# followed after the sign-in only when it is a path of this app in the login's own area (safe_next).
NEXT_COOKIE = "sscard_next"


def safe_next(value: str | None, area: str) -> str | None:
    """`value` if it is a path of this app under `area` ("/console", "/bank", "/portal"), else None: never
    another site ("//evil.example", "/\\evil.example", "https://evil.example", "javascript:..."), however
    encoded ("/%2F/evil.example"), never a login or logout, nothing with a control character or a space."""
    if not value or len(value) > 1024:
        return None
    text, seen = value, [value]
    for _ in range(3):  # what a server or browser may decode it to, once or twice
        text = unquote(text)
        seen.append(text)
    for form in seen:
        if not form.startswith("/") or form.startswith("//") or "\\" in form:
            return None
        if any(ord(c) < 0x21 or c == "\x7f" for c in form):
            return None
    path = unquote(value.split("?", 1)[0].split("#", 1)[0])
    if path != area and not path.startswith(area + "/"):
        return None
    if path.rstrip("/").endswith(("/login", "/logout")):
        return None
    return value


def area_of(kind: str) -> str:
    return LOGIN_PAGE[kind].rsplit("/login", 1)[0]


def page_to_return_to(request: Request) -> str:
    """The page the request came from: an htmx request's page (HX-Current-URL, when it is this site's), a
    GET's own address, a form's page (the nearest page above the address it was sent to)."""
    from .pages import nearest_page

    current = request.headers.get("hx-current-url", "")
    base = str(request.base_url).rstrip("/")
    if current.startswith(base + "/"):
        return current[len(base):]
    if request.method == "GET":
        return request.url.path + ("?" + request.url.query if request.url.query else "")
    return nearest_page(request, request.url.path)


def to_login(request: Request, kind: str, response):
    """`response` (the redirect to the login page) remembering where to come back to after the sign-in."""
    back = safe_next(page_to_return_to(request), area_of(kind))
    if back:
        hardening.set_cookie(response, request, NEXT_COOKIE, quote(back, safe="/?=&%"), path=LOGIN_PAGE[kind])
    return response


def next_for_login(request: Request, kind: str, sent: str | None = None) -> str:
    """The page a login form goes back to: what it sent, else its address's `next`, else the cookie the
    redirect to it left; "" when none is a path of this area."""
    for value in (sent, request.query_params.get("next"), unquote(request.cookies.get(NEXT_COOKIE, ""))):
        found = safe_next(value, area_of(kind))
        if found:
            return found
    return ""


class LoginRequired(Exception):
    """Raised by page dependencies; the app answers with a redirect to the right login page."""

    def __init__(self, kind: str):
        self.kind = kind


def set_session_cookie(response, kind: str, token: str, request: Request) -> None:
    """A new session's cookie, set at a login. The session the browser held before (its cookie came with the
    login) is ended at the server, not only replaced in that browser: a copy of the old cookie must not stay
    good until its idle timeout (session 24's browser probe)."""
    old = request.cookies.get(COOKIE[kind])
    if old and old != token:
        websession.logout(request.app.state.sscard, old)
    hardening.set_cookie(response, request, COOKIE[kind], token)


def clear_session_cookie(response, kind: str, request: Request) -> None:
    hardening.delete_cookie(response, request, COOKIE[kind])


def page_session(request: Request, kind: str) -> tuple[Actor, websession.WebSession]:
    """The signed-in Actor for a page, or LoginRequired. POSTs must carry the session's CSRF token."""
    app: App = request.app.state.sscard
    found = websession.resolve(app, request.cookies.get(COOKIE[kind]), kind)
    if found is None:
        raise LoginRequired(kind)
    return found


async def check_csrf(request: Request, row) -> None:
    """Forms send `csrf_token`; htmx sends the X-CSRF-Token header (set once on <body hx-headers>)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.headers.get("x-csrf-token")
    if not sent:
        form = await request.form()
        sent = form.get("csrf_token")
    if not sent or not hmac.compare_digest(str(sent), row.csrf):
        raise CsrfFailed()


class CsrfFailed(Exception):
    pass


# A form from a page whose token is no longer the session's: the same user signed in again (or out) in
# another tab, or opened a second login page. Said as a page of the site in the user's language (it was a
# bare "CSRF check failed" in both), with the way back: the console's or portal's home, or the login page.
STALE_PAGE = "此页面已过期（可能已在另一个窗口重新登录、退出或打开了新的登录页）：刚才提交的内容没有办理。请刷新页面后重新办理。"


def stale_page(request: Request):
    """403, a page of the site. An htmx form does not swap it: sscard.js shows its message in #net-status."""
    from ..http import language
    from ..i18n import gettext
    from .pages import render

    path = request.url.path
    area = "/" + path.strip("/").split("/")[0] if path.strip("/") else "/"
    reopen = path if path in LOGIN_PAGE.values() else area
    return render(request, "error.html", {"message": gettext(language(request), STALE_PAGE), "status": 403,
                                          "reopen": reopen}, 403)


def install(api) -> None:
    """Answer LoginRequired with a redirect (htmx: HX-Redirect), CSRF failures with 403 and PageRefused
    with its refusal page."""
    from fastapi.responses import PlainTextResponse

    @api.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired):
        target = login_target(request, exc.kind)  # a form sent: the login page says it was not done
        if request.headers.get("hx-request"):
            return to_login(request, exc.kind,
                            PlainTextResponse("", status_code=401, headers={"HX-Redirect": target}))
        return to_login(request, exc.kind, RedirectResponse(target, status_code=303))

    @api.exception_handler(CsrfFailed)
    async def _csrf(request: Request, exc: CsrfFailed):
        return stale_page(request)

    @api.exception_handler(PageRefused)
    async def _refused(request: Request, exc: PageRefused):
        return exc.response


class StaffDesk:
    """A signed-in staff member at a console (window or bank counter) and their session row.

    Each console names its supervisor role; `supervisor` and `csrf` read the same way in both."""

    SUPERVISOR: Role

    def __init__(self, actor: Actor, row):
        self.actor, self.row = actor, row

    @property
    def supervisor(self) -> bool:
        return self.actor.role is self.SUPERVISOR

    @property
    def csrf(self) -> str:
        return self.row.csrf


def staff_at_console(request: Request, *, roles: frozenset[Role], channel: Channel, login_kind: str):
    """The (actor, session row) of the staff member signed in on this console's channel.

    Not signed in, or signed in on the other console: LoginRequired (to this console's login page).
    Signed in but not one of `roles`: None, and the console renders its own refusal page."""
    app: App = request.app.state.sscard
    found = websession.resolve(app, request.cookies.get(COOKIE["staff"]), "staff")
    if found is None:
        raise LoginRequired(login_kind)
    actor, row = found
    if actor.role not in roles:
        return actor, None
    if row.channel != channel:
        raise LoginRequired(login_kind)
    return actor, row


def login_page(request: Request, template: str, cookie: str, path: str, context: dict, status: int = 200):
    """A login form with a double-submit token: there is no session yet to hold a CSRF token, so the
    token goes both into the form and into a cookie scoped to this console's path."""
    import secrets as pysecrets

    from .pages import render

    token = pysecrets.token_urlsafe(18)
    response = render(request, template, {"login_token": token, **context}, status)
    hardening.set_cookie(response, request, cookie, token, path=path)
    return response


def check_login_token(request: Request, form, cookie: str) -> None:
    """The login form's token must match its cookie (CsrfFailed otherwise)."""
    sent, expected = str(form.get("login_token", "")), request.cookies.get(cookie, "")
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise CsrfFailed()


class PageRefused(Exception):
    """Raised by a page dependency: answer with this response (a refusal page) instead of the page."""

    def __init__(self, response):
        self.response = response


class StaffConsole:
    """One staff console (the window's /console, the bank outlet's /bank): who may sign in there, its one
    login and logout, and the one signed-in dependency its pages take.

    `refusal(role, lang)` words the login refusal for staff of another console; `end_cookies` are the
    console's cookies (under its path) that end with the session."""

    def __init__(self, *, path: str, channel: Channel, roles: frozenset[Role], desk: type[StaffDesk],
                 login_kind: str, folder: str, desk_name: str, not_staff: str, throttle_scope: str,
                 refusal, end_cookies: tuple[str, ...] = (), admins: frozenset[Role] = frozenset()):
        self.path, self.channel, self.roles, self.desk = path, channel, roles, desk
        # who may sign in here for the staff accounts page and their own password only (the window console's
        # operator, session 28): every other page of the console refuses them
        self.admins = admins
        self.login_kind, self.folder, self.desk_name, self.not_staff = login_kind, folder, desk_name, not_staff
        self.throttle_scope, self.refusal, self.end_cookies = throttle_scope, refusal, end_cookies
        self.login_cookie = f"sscard_{path.strip('/')}_login"  # the login form's double-submit token
        LOGIN_PAGE.setdefault(login_kind, f"{path}/login")

    def desk_of(self, request: Request, *, supervisor: bool = False, password_change: bool = False,
                staff_admin: bool = False) -> StaffDesk:
        """The staff member at this console; LoginRequired, or PageRefused with the refusal page. A session
        whose password was reset to a one-time one (Actor.must_change_password, staff.reset_password) gets
        only the change page (`password_change`: that page and the logout), sent there from every other."""
        from .pages import render

        actor, row = staff_at_console(request, roles=self.roles | self.admins, channel=self.channel,
                                      login_kind=self.login_kind)
        if row is None:
            raise PageRefused(render(request, f"{self.folder}/forbidden.html",
                                     {"reason": self.not_staff, "actor": actor}, 403))
        if actor.must_change_password and not password_change:
            target = f"{self.path}/password"
            if request.headers.get("hx-request"):
                from fastapi.responses import PlainTextResponse

                raise PageRefused(PlainTextResponse("", status_code=200, headers={"HX-Redirect": target}))
            raise PageRefused(RedirectResponse(target, status_code=303))
        desk = self.desk(actor, row)
        if actor.role in self.admins and not (staff_admin or password_change):
            raise PageRefused(render(request, f"{self.folder}/forbidden.html",
                                     {"reason": "staff_admin_only", self.desk_name: desk}, 403))
        if staff_admin and not (desk.supervisor or actor.role in self.admins):
            raise PageRefused(render(request, f"{self.folder}/forbidden.html",
                                     {"reason": "supervisor_only", self.desk_name: desk}, 403))
        if supervisor and not desk.supervisor:
            raise PageRefused(render(request, f"{self.folder}/forbidden.html",
                                     {"reason": "supervisor_only", self.desk_name: desk}, 403))
        return desk

    def signed_in(self, request: Request) -> StaffDesk:
        """The dependency of every page of the console."""
        return self.desk_of(request)

    def supervisor(self, request: Request) -> StaffDesk:
        """The dependency of the console's supervisors' pages."""
        return self.desk_of(request, supervisor=True)

    def staff_admin(self, request: Request) -> StaffDesk:
        """The dependency of the staff accounts page: the console's supervisors and its admins (the operator)."""
        return self.desk_of(request, staff_admin=True)

    def password_change(self, request: Request) -> StaffDesk:
        """The dependency of the change-my-password page: open to a session that must change first."""
        return self.desk_of(request, password_change=True)

    def login_form(self, request: Request, error: str | None = None, status: int = 200, username: str = "",
                   next_path: str | None = None):
        return login_page(request, f"{self.folder}/login.html", self.login_cookie, self.path,
                          {"error": error, "username": username,
                           "next_path": next_for_login(request, self.login_kind, next_path)}, status)

    def mount(self, router) -> None:
        """GET and POST {path}/login, POST {path}/logout on the console's router (prefix = path)."""
        from fastapi.responses import HTMLResponse, Response

        router.add_api_route("/login", self._login_page, methods=["GET"], response_class=HTMLResponse)
        router.add_api_route("/login", self._login, methods=["POST"], response_class=Response)
        router.add_api_route("/logout", self._logout, methods=["POST"], response_class=Response)

    def _login_page(self, request: Request):
        return self.login_form(request)

    async def _login(self, request: Request):
        from starlette.concurrency import run_in_threadpool

        from ..core.errors import SscardError
        from ..http import client_address, language
        from ..services import throttle
        from .hardening import throttled

        form = await request.form()
        check_login_token(request, form, self.login_cookie)
        username, password = str(form.get("username", "")).strip()[:32], str(form.get("password", ""))[:128]
        back = safe_next(str(form.get("next", "")), self.path) or ""
        lang = language(request)
        app: App = request.app.state.sscard
        try:  # in a worker thread: the password hash takes tens of milliseconds of CPU, not the event loop's
            web = await run_in_threadpool(
                throttle.guarded_login, app, client_address(request), self.throttle_scope, username,
                lambda: websession.staff_login(app, username, password, self.channel),
            ) if username else None
        except SscardError as err:  # too_many_attempts (refused before the password is checked), password_locked
            page = self.login_form(request, err.message(lang), err.status, username, back)
            return throttled(page, err) if err.code == "too_many_attempts" else page
        if web is None:
            return self.login_form(request, "Wrong user name or password" if lang == "en" else "用户名或密码错误",
                                   401, username, back)
        if web.actor.role not in self.roles | self.admins:
            websession.logout(app, web.token)
            return self.login_form(request, self.refusal(web.actor.role, lang), 403, username, back)
        # a password reset to a one-time one: its change first (desk_of sends every other page there too)
        home = f"{self.path}/staff" if web.actor.role in self.admins else back or self.path
        response = RedirectResponse(f"{self.path}/password" if web.must_change_password else home, status_code=303)
        hardening.delete_cookie(response, request, NEXT_COOKIE, path=f"{self.path}/login")
        set_session_cookie(response, "staff", web.token, request)
        hardening.delete_cookie(response, request, self.login_cookie, path=self.path)
        return response

    async def _logout(self, request: Request):
        desk = self.desk_of(request, password_change=True)
        await check_csrf(request, desk.row)
        websession.logout(request.app.state.sscard, request.cookies.get(COOKIE["staff"]))
        response = RedirectResponse(f"{self.path}/login", status_code=303)
        clear_session_cookie(response, "staff", request)
        for cookie in self.end_cookies:  # e.g. the customer at the bank desk: the visit ends with the session
            hardening.delete_cookie(response, request, cookie, path=self.path)
        return response
