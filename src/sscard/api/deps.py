"""What every API route needs: the App, the caller as an Actor, the language, the idempotency key.

These are `async def`: FastAPI runs a plain `def` dependency in its thread pool, one hop per
dependency per request. None of them blocks: a bearer token is looked up in a thread only when its
cached lookup (services.staff) is missing or stale."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from ..core.errors import SscardError
from ..core.roles import Actor
from ..services.app import App
from ..services.staff import actor_for_token, cached_actor
from .sessions import CARDHOLDER_PREFIX, cardholder_from_token


async def get_app(request: Request) -> App:
    return request.app.state.sscard


def language(request: Request) -> str:
    """zh unless the caller asks for English (?lang=en, a cookie, or Accept-Language)."""
    lang = request.query_params.get("lang") or request.cookies.get("lang")
    if not lang:
        accept = request.headers.get("accept-language", "")
        lang = "en" if accept.lower().startswith("en") else "zh"
    return "en" if lang.startswith("en") else "zh"


async def optional_actor(request: Request, app: Annotated[App, Depends(get_app)]) -> Actor | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
        if token.startswith(CARDHOLDER_PREFIX):
            return cardholder_from_token(app, token)  # a signature check, no I/O
        return cached_actor(app, token) or await run_in_threadpool(actor_for_token, app, token)
    web_actor = getattr(request.state, "actor", None)  # set by the web session middleware, if any
    return web_actor


async def current_actor(actor: Annotated[Actor | None, Depends(optional_actor)]) -> Actor:
    if actor is None:
        raise SscardError("unauthenticated")
    return actor


async def idempotency_key(idempotency_key: Annotated[str | None, Header(max_length=80)] = None) -> str | None:
    return idempotency_key


AppDep = Annotated[App, Depends(get_app)]
ActorDep = Annotated[Actor, Depends(current_actor)]
KeyDep = Annotated[str | None, Depends(idempotency_key)]
