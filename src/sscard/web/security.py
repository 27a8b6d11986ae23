"""Cookies, CSRF and the "who is this page for" dependencies shared by the consoles and the portal."""

from __future__ import annotations

import hmac

from fastapi import Request
from fastapi.responses import RedirectResponse

from ..core.roles import Actor, Channel, Role
from ..services import websession
from ..services.app import App
from . import hardening

COOKIE = {"staff": "sscard_staff", "cardholder": "sscard_portal"}
LOGIN_PAGE = {"staff": "/console/login", "cardholder": "/portal/login"}


class LoginRequired(Exception):
    """Raised by page dependencies; the app answers with a redirect to the right login page."""

    def __init__(self, kind: str):
        self.kind = kind


def set_session_cookie(response, kind: str, token: str, request: Request) -> None:
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


def install(api) -> None:
    """Answer LoginRequired with a redirect (htmx: HX-Redirect) and CSRF failures with 403."""
    from fastapi.responses import PlainTextResponse

    @api.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired):
        target = LOGIN_PAGE[exc.kind]
        if request.headers.get("hx-request"):
            return PlainTextResponse("", status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @api.exception_handler(CsrfFailed)
    async def _csrf(request: Request, exc: CsrfFailed):
        return PlainTextResponse("CSRF check failed / 请求校验失败，请刷新页面", status_code=403)


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
