"""The terminals' lane: the hottest POST routes dispatched without FastAPI's routing and dependency solving.

A payment spent ~230 µs of the event loop in FastAPI (matching the path against the app's routes twice,
solving dependencies, wrapping the endpoint) against ~40 µs for the work itself. This ASGI middleware
serves the group-committed terminal routes listed in `api.ledger.LANE` itself, with the SAME parts:
the route's own body model (validated as FastAPI does: JSON parsed, then `model_validate`), the same
dependency function (`deps.terminal_call`), the same endpoint function, the app's own exception handlers
and JSONResponse. Anything it is not sure to answer exactly as FastAPI would (another content type,
unparsable JSON, a body the model refuses, an over-long Idempotency-Key) is handed to FastAPI untouched,
body included, so refusals of malformed input keep FastAPI's 422 shape. `tests/ledger/test_terminal_lane.py`
sends the same requests both ways and compares the answers.
"""

from __future__ import annotations

import json

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .deps import terminal_call
from .ledger import LANE, terminal_router

_ROUTES = {terminal_router.prefix + path: route for path, route in LANE.items()}
_KEY_MAX = 80  # deps.terminal_call's Header(max_length=80): longer keys are FastAPI's to refuse


class TerminalLane:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _ROUTES.get(scope.get("path", "")) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        request = Request(scope, replay)
        model, endpoint = route
        key = request.headers.get("idempotency-key")
        parsed = _parse(request, body, model, key)
        if parsed is None:
            await self.app(scope, replay, send)  # FastAPI answers it, as it always did
            return
        try:
            call = await terminal_call(request, key)
            response = JSONResponse(await endpoint(parsed, call))
        except Exception as exc:
            handler = _handler_for(scope["app"], exc)
            if handler is None:
                raise  # the app's ServerErrorMiddleware answers 500, as for any route
            response = await handler(request, exc)
        await response(scope, replay, send)


def _parse(request: Request, body: bytes, model, key: str | None):
    """The body as the route's model, or None when FastAPI should answer instead."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json" or (key is not None and len(key) > _KEY_MAX):
        return None
    try:
        data = json.loads(body)
        return model.model_validate(data) if isinstance(data, dict) else None
    except (ValueError, ValidationError):
        return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _handler_for(app, exc: Exception):
    """The app's handler for this exception (by class, most specific first), as Starlette finds it."""
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
