"""Shared page rendering: templates, language (zh by default, en switchable), Babel catalogs."""

from __future__ import annotations

from pathlib import Path

from babel.support import NullTranslations, Translations
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from ..api.deps import language
from ..core.identifiers import mask_card_number, mask_citizen_id, mask_name, mask_pan
from ..core.money import fen_to_yuan

HERE = Path(__file__).parent
LOCALE_DIR = HERE.parent / "locale"
templates = Jinja2Templates(directory=str(HERE / "templates"), extensions=["jinja2.ext.i18n"])
templates.env.filters.update(
    yuan=fen_to_yuan, mask_citizen_id=mask_citizen_id, mask_pan=mask_pan, mask_card_number=mask_card_number,
    mask_name=mask_name,
)
_translations: dict[str, NullTranslations] = {}


def translations(lang: str) -> NullTranslations:
    if lang not in _translations:
        _translations[lang] = (
            Translations.load(str(LOCALE_DIR), [lang], domain="messages") if lang != "zh" else NullTranslations()
        )
    return _translations[lang]


def render(request: Request, name: str, context: dict | None = None, status_code: int = 200) -> HTMLResponse:
    """Render a template in the request's language; templates are written in Chinese, `_()` translates."""
    lang = language(request)
    t = translations(lang)
    env = templates.env
    env.install_gettext_callables(t.gettext, t.ngettext, newstyle=True)
    ctx = {"request": request, "lang": lang, **(context or {})}
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)


router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(request: Request) -> HTMLResponse:
    return render(request, "home.html")


@router.get("/lang/{lang}", include_in_schema=False)
def switch_language(lang: str, request: Request) -> RedirectResponse:
    """Remember the language in a cookie and go back where the user was."""
    target = request.headers.get("referer") or "/"
    if not target.startswith(str(request.base_url)) and not target.startswith("/"):
        target = "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie("lang", "en" if lang == "en" else "zh", samesite="lax", httponly=True)
    return response
