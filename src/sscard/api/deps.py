"""What every API route needs: the App, the caller as an Actor, the language, the idempotency key.

These are `async def`: FastAPI runs a plain `def` dependency in its thread pool, one hop per
dependency per request. None of them blocks: a bearer token is looked up in a thread only when its
cached lookup (services.staff) is missing or stale; a cardholder's token, whose query-password generation
is read on every request (api.sessions), always is."""

from __future__ import annotations

import asyncio
from typing import Annotated, NamedTuple

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from ..core.errors import SscardError
from ..core.roles import Actor, Channel
from ..logs import note_actor
from ..services.access import in_audience
from ..services.app import App
from ..services.operation import admit_channel
from ..services.staff import actor_for_token, cached_actor
from ..services.throttle import caller_rate, refuse_over_rate
from .declared import route_declaration_of, route_operation
from .sessions import CARDHOLDER_PREFIX, cardholder_from_token

IDEMPOTENCY_KEY_MAX = 80
"""The longest Idempotency-Key a request may send (docs/API.md); the contract says so too."""

IDEMPOTENCY_KEY_PATTERN = r"^[ -~]*[!-~][ -~]*$"
"""What an Idempotency-Key is made of (docs/API.md; the contract declares it): printable ASCII (U+0020-U+007E),
not blank. An empty or all-space key was read as no key at all (`not key`), so an operation whose key is
optional ran unkeyed, its retry ran again, while the contract said `minLength: 1` (session 26's probe); a
tab, DEL or a byte past ASCII (a header is read as Latin-1) is no key a client means: refused 422 too."""

KeyHeader = Annotated[str | None, Header(min_length=1, max_length=IDEMPOTENCY_KEY_MAX, pattern=IDEMPOTENCY_KEY_PATTERN)]
"""The Idempotency-Key as every API route reads it (through FastAPI and the terminal lane, which validates
it with FastAPI's own functions): a key that breaks its contract is 422 `invalid_request` naming the header,
before anything runs (the caller is judged first: api.main.caller_refused)."""


async def get_app(request: Request) -> App:
    return request.app.state.sscard


async def optional_actor(request: Request, app: Annotated[App, Depends(get_app)]) -> Actor | None:
    return await actor_of(request, app)


TERMINAL_PREFIX = "/api/v1/terminal/"


async def actor_of(request: Request, app: App) -> Actor | None:
    """Who calls: a bearer token (staff, terminal or cardholder) or the web session's actor.

    A token's actor comes through the channel of the path it called, whoever it is: the terminal API's
    paths are the terminal channel, every other API path the API channel; services.access then admits
    to each channel only its own audience (a terminal's token on a staff route is refused)."""
    auth = request.headers.get("authorization", "")
    if auth and len(request.headers.getlist("authorization")) > 1:
        # Authorization is a singleton field (RFC 9110 §11.6.2): sent twice, the server acted as the first
        # credential while a proxy or gateway in front may check the last, or join them (session 26's probe: a
        # teller's token and an ATM's in one request, the deposit made as the teller). Neither is taken: 401.
        return None
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
        if token.startswith(CARDHOLDER_PREFIX):
            # the signature, then the person's query-password generation (a read: in a thread)
            actor = await run_in_threadpool(cardholder_from_token, app, token)
        else:
            actor = cached_actor(app, token) or await _look_up_once(app, token)
        if actor is None:
            return None
        # the scope's path, not request.url.path: the same prefix test without building a URL (its host
        # header parsed, its netloc joined) on every request (~2% of a lookup's event-loop time)
        channel = Channel.TERMINAL if request.scope["path"].startswith(TERMINAL_PREFIX) else Channel.API
        return actor if actor.channel is channel else actor.via(channel)
    web_actor = getattr(request.state, "actor", None)  # set by the web session middleware, if any
    return web_actor


_LOOKUPS: dict = {}  # (event loop, app, token) -> the lookup in flight


async def _look_up_once(app: App, token: str) -> Actor | None:
    """The token's lookup in a thread, once for every request that needs it at the same moment: when a
    terminal's cached token expires, its 8 requests in flight share one lookup instead of sending 8
    to the thread pool together (which stalled every payment of the server for tens of ms)."""
    loop = asyncio.get_running_loop()
    key = (loop, id(app), token)
    pending = _LOOKUPS.get(key)
    if pending is not None:
        return await asyncio.shield(pending)
    pending = _LOOKUPS[key] = loop.create_future()
    try:
        actor = await run_in_threadpool(actor_for_token, app, token)
    except BaseException as exc:
        pending.set_exception(exc)
        pending.exception()  # retrieved here: nobody else may be waiting
        raise
    else:
        pending.set_result(actor)
        return actor
    finally:
        _LOOKUPS.pop(key, None)


async def admitted(request: Request, app: App, actor: Actor | None) -> Actor:
    """The caller, known and of the audience of the route's channel: no token is 401 `unauthenticated`,
    another channel's credential 403 `forbidden` (services.operation.admit_channel: the frame's one channel
    rule, with its audit record), both before the body is validated or the endpoint runs; then within its
    request rate (services.throttle.CallerRate, the city's policy): 429 `rate_limited` with Retry-After, before
    anything runs. Every authenticated API route comes here (FastAPI's dependencies and the terminal lane's);
    a replay of a keyed request is a request like any other: it counts, and over the limit it is refused too
    (nothing is stored under its key for that refusal: the same key later gets the first answer)."""
    if actor is None or (actor.ended and not _replays_to_ended(request)):
        raise SscardError("unauthenticated")
    note_actor(actor)
    if not in_audience(actor):  # rare: the refusal's audit record is written in a thread
        await run_in_threadpool(admit_channel, app, actor, route_operation(request.scope.get("route")))
    if _COUNTED not in request.scope:  # once per request (a refused body asks here again: main.caller_refused)
        request.scope[_COUNTED] = True
        rate = caller_rate(app)
        wait = rate.wait(actor)
        if wait:
            if rate.first_refusal_in_window(actor):  # its audit record (in a thread), once a window
                await run_in_threadpool(refuse_over_rate, app, actor, wait)
            raise SscardError("rate_limited", seconds=wait)
    return actor


_COUNTED = "sscard.rate_counted"
"""The request's scope says it was counted against its caller's rate (services.throttle.CallerRate)."""


def _replays_to_ended(request: Request) -> bool:
    """An ended credential (a cardholder token issued before the query password's change) goes on only to a
    route whose operation is declared `ends_session`, with an Idempotency-Key: the frame answers it there the
    stored answer of the change that ended it, or `unauthenticated` (services.operation.replay_to_ended)."""
    decl = route_declaration_of(request.scope.get("route"))
    return decl is not None and decl.ends_session and bool(request.headers.get("idempotency-key"))


async def current_actor(request: Request, actor: Annotated[Actor | None, Depends(optional_actor)]) -> Actor:
    return await admitted(request, request.app.state.sscard, actor)


async def idempotency_key(idempotency_key: KeyHeader = None) -> str | None:
    return idempotency_key


class TerminalCall(NamedTuple):
    app: App
    actor: Actor
    key: str | None


async def terminal_call(
    request: Request, idempotency_key: KeyHeader = None
) -> TerminalCall:
    """The App, the caller's Actor on the terminal channel and the Idempotency-Key in one dependency: the
    terminal routes are the hottest, and FastAPI's dependency solving cost ~15% of a payment on the event
    loop when they took four (app, optional actor, actor, key). Who may act on the terminal channel (only
    terminals) is decided by the frame's channel rule (`admitted`), as on every route."""
    app = request.app.state.sscard
    actor = await admitted(request, app, await actor_of(request, app))
    return TerminalCall(app, actor, idempotency_key)


AppDep = Annotated[App, Depends(get_app)]
ActorDep = Annotated[Actor, Depends(current_actor)]
KeyDep = Annotated[str | None, Depends(idempotency_key)]
TerminalDep = Annotated[TerminalCall, Depends(terminal_call)]
