"""Shared page rendering: templates, language (zh by default, en switchable), the catalogs of sscard.i18n."""

from __future__ import annotations

from pathlib import Path

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from ..core.clock import shanghai_time
from ..core.errors import SscardError
from ..core.identifiers import mask_card_number, mask_citizen_id, mask_name, mask_pan
from ..core.money import format_yuan
from ..http import RouteBook, language
from ..i18n import label, translations
from . import hardening

HERE = Path(__file__).parent
templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        extensions=["jinja2.ext.i18n"],
        autoescape=jinja2.select_autoescape(["html", "xml"]),
    )
)
templates.env.filters.update(
    yuan=format_yuan, bank_amount=format_yuan, mask_citizen_id=mask_citizen_id, mask_pan=mask_pan, mask_card_number=mask_card_number,
    mask_name=mask_name, local_time=shanghai_time,
)
templates.env.globals["local_time"] = shanghai_time  # every time on every page: in Beijing time


# Which form field a refusal is about, by its code (the first of these names the sent form has): the shared
# refusal macro (_ui.html `refusal`) names them, and sscard.js ties that field of the form that was sent to
# the message (aria-invalid, aria-describedby, focus), on every page of the consoles and the portal. A login's
# refusal names no field on purpose: it must not say whether the ID or the password was wrong.
ERROR_FIELDS: dict[str, tuple[str, ...]] = {
    "invalid_citizen_id": ("citizen_id", "agent_citizen_id", "query"),
    "identity_mismatch": ("citizen_id",),
    "invalid_card_number": ("card_number", "query"),
    "invalid_pan": ("pan",),
    "wrong_bank": ("pan",),
    "invalid_amount": ("amount",),
    "insufficient_funds": ("amount",),
    "limit_exceeded": ("amount",),
    "weak_password": ("new", "pin"),
    "password_mismatch": ("new_again", "pin_again"),
    "wrong_password": ("old",),
    "wrong_pin": ("pin",),
}


class Refusal(str):
    """A refusal's words in the page's language that keep its code: the shared refusal macro reads the
    field it is about (ERROR_FIELDS) from it, so no page has to pass the code along by hand."""

    code: str
    field: str  # the field a refusal names itself (web.forms' invalid_text), else ""

    def __new__(cls, err: SscardError, lang: str, text: str | None = None) -> Refusal:
        made = super().__new__(cls, err.message(lang) if text is None else text)
        made.code = err.code
        made.field = str(err.params.get("field", "")) if err.code in FIELD_NAMED else ""
        return made


# Refusals that name their field themselves (a param "field"), whatever field it is: every form's free text.
FIELD_NAMED = frozenset({"invalid_text"})


def error_fields(error: object) -> str:
    """The form fields a refusal (a Refusal, or a code) is about, space-separated ("" for none)."""
    if getattr(error, "field", ""):
        return str(error.field)
    code = getattr(error, "code", error) if error else ""
    return " ".join(ERROR_FIELDS.get(code, ())) if isinstance(code, str) else ""


templates.env.globals["error_fields"] = error_fields


@jinja2.pass_context
def _label(context, value, kind: str) -> str:
    """`{{ card.ss_status|label("ss_status") }}`: a value's label (core.labels) in the page's language."""
    return label(kind, str(value or ""), context.get("lang", "zh"))


templates.env.filters["label"] = _label


def render(request: Request, name: str, context: dict | None = None, status_code: int = 200) -> HTMLResponse:
    """Render a template in the request's language; templates are written in Chinese, `_()` translates."""
    lang = language(request)
    ctx = {"request": request, "lang": lang, **gettext_context(lang), **(context or {})}
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)


def gettext_context(lang: str) -> dict:
    """Per-request gettext in the template context (thread-safe, unlike swapping the env's globals).
    `_("剩余{days}天", days=3)` formats after translating."""
    t = translations(lang)

    def gettext(message: str, **params) -> str:
        text = t.gettext(message)
        return text.format(**params) if params else text

    def ngettext(singular: str, plural: str, n: int, **params) -> str:
        text = t.ngettext(singular, plural, n)
        return text.format(n=n, **params)

    return {"_": gettext, "gettext": gettext, "ngettext": ngettext}


def refusal_page(request: Request, refusal: SscardError, status: int, headers: dict[str, str] | None) -> HTMLResponse:
    """A refusal the frame answers on a page's path (the database busy, a page or method that does not
    exist, a malformed parameter): a page of the site in the caller's language, with the status and the
    headers (Retry-After, Allow) the API would have sent (the composition root hands it to api.main)."""
    lang = language(request)
    seconds = (headers or {}).get("Retry-After")
    response = render(request, "error.html", {"message": refusal.message(lang), "status": status,
                                              "retry_after": seconds}, status)
    response.headers.update(headers or {})
    return response


templates.env.install_null_translations(newstyle=False)
router = RouteBook()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(request: Request) -> HTMLResponse:
    return render(request, "home.html")


def _local_path(value: str | None) -> str | None:
    """A path on this site ("/portal/card"), never another one ("//evil.example", "/\\evil.example")."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return None


def nearest_page(request: Request, target: str) -> str:
    """`target` (a local path, maybe with its query), or, when no page answers a GET there, the nearest page
    above it: after a form was posted, the address bar holds the form's target (`/console/find`,
    `/console/visits/3/replace`, `/bank/account`), and going back there in the other language answered 405
    (session 25's browser probe); `/console`, `/console/visits/3`, `/bank` are the pages the form was on."""
    from starlette.routing import Match

    path = target.split("?", 1)[0]
    while path not in ("", "/"):
        scope = {"type": "http", "method": "GET", "path": path, "root_path": ""}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.routes):
            return target if target.split("?", 1)[0] == path else path
        path = path.rsplit("/", 1)[0]
    return "/"


@router.get("/lang/{lang}", include_in_schema=False)
def switch_language(lang: str, request: Request) -> RedirectResponse:
    """Remember the language in a cookie and go back where the user was: `next` (the page's own path and
    query, in base.html's link: browsers send no Referer under our Referrer-Policy), else the Referer, else
    home; a form's target (the page shown after a POST) goes back to the page the form was on."""
    target = _local_path(request.query_params.get("next")) or request.headers.get("referer") or "/"
    if target.startswith(str(request.base_url)):
        target = "/" + target[len(str(request.base_url)):]
    target = nearest_page(request, target) if _local_path(target) else "/"
    response = RedirectResponse(target, status_code=303)
    # lax: a preference with no authority; a link from elsewhere may still open in the chosen language
    hardening.set_cookie(response, request, "lang", "en" if lang == "en" else "zh", samesite="lax")
    return response
