"""The fast lane: every group-committed POST route dispatched without FastAPI's routing and dependency solving.

A payment spent ~230 µs of the event loop in FastAPI (matching the path against the app's routes twice,
solving dependencies, wrapping the endpoint) against ~40 µs for the work itself. This ASGI middleware
serves those routes itself. Which routes: derived, not listed. Every POST route of the app whose
endpoint calls an operation declared `@operation(..., batched=True)` (found as the OpenAPI contract finds
it: `declared.route_declaration`) is a lane route, wherever it is (the terminals' ledger and medical
routes, the tellers' deposits, withdrawals and transfers, the counter's replacement fees, path
parameters included), as long as its shape is one the lane knows how to run exactly as FastAPI does
(`_shape_refusal` says why one is not; tests/ledger/test_terminal_lane.py requires that none is left out).

How it answers: with FastAPI's OWN parts, taken from the route's effective context (the route as the app
included it): the path regex and convertors, FastAPI's own parameter and body validation
(`request_params_to_args`, `request_body_to_args`), the route's dependency functions called in FastAPI's
order with its per-request cache (`deps.terminal_call`, `deps.current_actor`, ... : the same audience,
role, key and scope checks as through FastAPI), the endpoint itself, FastAPI's `serialize_response`
through the route's response model and status code, and the app's own exception handlers. Anything it is
not sure to answer exactly as FastAPI would (another content type, unparsable JSON, a body, header or path
parameter the route refuses, an earlier route that also matches the path, dependency overrides, a body
over the route's size limit) is handed to FastAPI untouched, body included, so refusals of malformed input
keep FastAPI's 422 shape. tests/ledger/test_terminal_lane.py sends the same requests both ways to every
lane route and compares status, headers, body and audit records.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_body_to_args, request_params_to_args
from fastapi.routing import APIRoute, iter_route_contexts, serialize_response
from fastapi.utils import is_body_allowed_for_status_code
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from ..http import loads_json, loose_whole_numbers, repeated_headers, replay_body
from ..services import batching
from .declared import route_declaration

_PARAM = re.compile(r"{[^}]*}")
API_PREFIX = "/api/"


@dataclass
class LaneRoute:
    """One route the lane serves: the app's effective context of it and what running it takes. What running
    it takes is read off FastAPI's route when the lane first answers a request of it (`prepare`: the route
    is built then, see http.JsonRoute), not at the server's start."""

    context: Any  # fastapi.routing.RouteContext: the route as the app included it
    route: APIRoute  # the original route (what FastAPI puts in scope["route"])
    operation: str  # the operation its endpoint calls (batched for POST, a declared read for GET)
    competitors: list[Any] = field(default_factory=list)  # earlier routes whose paths may match the same path
    method: str = "POST"
    # set by prepare():
    refusal: str | None = None  # why the lane cannot run it exactly as FastAPI does (then FastAPI answers it)
    dependant: Dependant = field(init=False)
    steps: list[tuple[Dependant, bool]] = field(init=False)  # sub-dependencies in FastAPI's order, and is it async
    body_params: list = field(init=False)
    embed_body: bool = field(init=False)
    is_async: bool = field(init=False)  # the endpoint is `async def` (else run in the thread pool, as FastAPI does)
    prepared: bool = False

    @property
    def path(self) -> str:
        return self.context.path_format

    def prepare(self) -> str | None:
        """Read what running the route takes (once); None when the lane can run it, else why not."""
        if not self.prepared:
            ctx = self.context
            self.refusal = _shape_refusal(ctx, self.method)
            if self.refusal is None:
                self.dependant = ctx.dependant
                self.steps = [(d, asyncio.iscoroutinefunction(d.call)) for d in _dependants(ctx.dependant)]
                self.body_params = list(ctx.dependant.body_params)
                self.embed_body = bool(ctx._embed_body_fields)
                self.is_async = asyncio.iscoroutinefunction(ctx.dependant.call)
            self.prepared = True
        return self.refusal


def _dependants(dependant: Dependant) -> list[Dependant]:
    """Every sub-dependency, in the order FastAPI's solve_dependencies calls them (depth first, each
    after its own sub-dependencies)."""
    out: list[Dependant] = []
    for sub in dependant.dependencies:
        out.extend(_dependants(sub))
        out.append(sub)
    return out


def _shape_refusal(ctx: Any, method: str = "POST") -> str | None:
    """Why the lane cannot run this route exactly as FastAPI does (None: it can). A GET route (a read) may
    have query parameters and a plain def endpoint (run in the thread pool, as FastAPI does), and no body."""
    dependant: Dependant = ctx.dependant
    if ctx.is_sse_stream or ctx.is_json_stream or getattr(ctx, "stream_item_field", None) is not None:
        return "a streaming response"
    if method == "POST" and not asyncio.iscoroutinefunction(dependant.call):
        return "a plain def endpoint"
    if method == "GET" and (dependant.body_params or ctx.body_field is not None):
        return "a GET route that reads a body"
    if len(dependant.body_params) > 1 or ctx.body_field is not None and type(ctx.body_field.field_info).__name__ in (
        "Form", "File"):
        return "a form or multi-part body"
    for dep in [dependant, *_dependants(dependant)]:
        if dep.cookie_params or dep.query_params and (method != "GET" or dep is not dependant):
            return "query or cookie parameters"
        if (dep.background_tasks_param_name or dep.response_param_name or dep.security_scopes_param_name
                or dep.websocket_param_name or dep.http_connection_param_name or dep.own_oauth_scopes):
            return "background tasks, a Response parameter or security scopes"
        if dep is not dependant and (dep.call is None or dep.concurrency is not None or _is_generator(dep.call)):
            return "a generator dependency or a limited one"
        if dep is not dependant and dep.body_params:
            return "a dependency that reads the body"
    return None


def _is_generator(call) -> bool:
    target = call if inspect.isfunction(call) or inspect.ismethod(call) else type(call).__call__
    return inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target)


def _may_overlap(a: str, b: str) -> bool:
    """Whether two path templates may match one path (conservative: True when not sure)."""
    if ":path}" in a or ":path}" in b:
        return True
    sa, sb = a.split("/"), b.split("/")
    if len(sa) != len(sb):
        return False
    return all(x == y or _PARAM.search(x) or _PARAM.search(y) for x, y in zip(sa, sb, strict=True))


def lane_routes(api, method: str = "POST") -> tuple[list[LaneRoute], dict[str, str]]:
    """The app's lane routes of `method`, in the app's order, prepared, and those it cannot serve (path ->
    why). POST: every route whose endpoint calls a group-committed operation. GET: every route whose endpoint
    calls a declared read (`@query`: the staff lookups by citizen ID, card number and PAN among them)."""
    lane: list[LaneRoute] = []
    skipped: dict[str, str] = {}
    for candidate in lane_candidates(api, method):
        why = candidate.prepare()
        if why is None:
            lane.append(candidate)
        else:
            skipped[candidate.path] = why
    return lane, skipped


def lane_candidates(api, method: str) -> list[LaneRoute]:
    """lane_routes' routes before each is prepared: chosen by their declarations and paths alone, which
    builds none of them (the server's first request does not wait for FastAPI to build ~50 routes)."""
    contexts = list(iter_route_contexts(api.routes))
    lane: list[LaneRoute] = []
    for index, ctx in enumerate(contexts):
        route = ctx.original_route
        if not isinstance(route, APIRoute) or method not in (ctx.methods or ()):
            continue
        if method == "GET" and not (route.include_in_schema and ctx.path_format.startswith(API_PREFIX)):
            continue  # the web pages' reads keep FastAPI's dispatch (their sessions, forms and redirects)
        decl, _fn = route_declaration(route)
        if decl is None or not (decl.batched if method == "POST" else decl.read):
            continue
        competitors = []
        for earlier in contexts[:index]:
            fmt = earlier.path_format
            if not isinstance(fmt, str) or not isinstance(earlier.original_route, APIRoute):
                if not isinstance(fmt, str) or ctx.path_format.startswith(fmt.rstrip("/") + "/"):
                    competitors.append(earlier)  # a mount or another kind of route: asked at each request
                continue
            if earlier.methods and method not in earlier.methods:
                continue  # it can only match partially: FastAPI goes on to a later full match
            if _may_overlap(fmt, ctx.path_format):
                competitors.append(earlier)
        lane.append(LaneRoute(context=ctx, route=route, operation=decl.name, competitors=competitors, method=method))
    return lane


class TerminalLane:
    """The lane (named for where it began: the terminals' payments). `served` counts by path template the
    requests it answered itself (for tests and /metrics-like curiosity)."""

    METHODS = ("POST", "GET")

    def __init__(self, app: ASGIApp, api=None) -> None:
        self.app = app
        self.api = api
        self._fixed: dict[str, dict[str, LaneRoute]] | None = None  # method -> path -> route
        # method -> (the template's static start, route): a path that does not start so cannot match its
        # regex, and most paths are tried against every templated route (a web page's, a trivial read's:
        # ~6% of such a request's CPU went to those regexes)
        self._templated: dict[str, list[tuple[str, LaneRoute]]] = {}
        self.skipped: dict[str, str] = {}

    def _build(self, api) -> None:
        fixed: dict[str, dict[str, LaneRoute]] = {}
        for method in self.METHODS:
            routes = lane_candidates(api, method)
            self._templated[method] = [(r.path.split("{", 1)[0], r) for r in routes if r.context.param_convertors]
            fixed[method] = {r.path: r for r in routes if not r.context.param_convertors}
        self._fixed = fixed

    def _find(self, scope: Scope) -> tuple[LaneRoute, dict] | None:
        assert self._fixed is not None
        method = scope["method"]
        path = scope["path"]
        lane = self._fixed[method].get(path)
        candidates = [lane] if lane is not None else [r for start, r in self._templated[method] if path.startswith(start)]
        for candidate in candidates:
            match, child = candidate.context.matches(scope)
            if match is Match.FULL:
                for earlier in candidate.competitors:
                    if earlier.matches(scope)[0] is Match.FULL:
                        return None  # FastAPI would give it to that route
                why = candidate.prepare()
                if why is not None:  # (the tests require that no lane route is left to FastAPI)
                    self.skipped[f"{method} {candidate.path}"] = why
                    return None
                return candidate, child
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in self.METHODS or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        api = self.api or scope["app"]
        if self._fixed is None:
            self._build(api)
        found = self._find(scope)
        provider = found[0].context.dependency_overrides_provider if found else None
        if found is None or getattr(provider, "dependency_overrides", None):
            await self.app(scope, receive, send)
            return
        lane, child = found
        if lane.method == "POST":
            body = await _read_body(receive)
            replay = replay_body(body, receive)
        else:  # a GET route reads no body (_shape_refusal): the request's own receive, untouched
            body, replay = b"", receive

        request = Request(scope, replay)
        values = await _validated(lane, request, body, child["path_params"])
        if values is None:
            await self.app(scope, replay, send)  # FastAPI answers it, as it always did
            return
        scope.update(child)  # as FastAPI's router does for the route it picked
        scope["route"] = lane.route
        _served(lane.path)
        try:
            response = await _run(lane, request, values)
        except Exception as exc:
            handler = _handler_for(api, exc)
            if handler is None:
                raise  # the app's ServerErrorMiddleware answers 500, as for any route
            response = await handler(request, exc)
        await response(scope, replay, send)


def _served(path: str) -> None:
    """A hook: the lane answers this request itself (tests count them)."""


async def _validated(lane: LaneRoute, request: Request, body: bytes, path_params: dict) -> dict | None:
    """Every parameter of the route and of its dependencies, validated by FastAPI's own functions; None
    when any is refused (or the body is not plain JSON): FastAPI is then left to answer."""
    ctx = lane.context
    values: dict[int, dict] = {}
    json_body: Any = None
    if lane.body_params:
        if ctx.max_body_size is not None and len(body) > ctx.max_body_size:
            return None
        content_type = request.headers.get("content-type", "")
        if not body or content_type.split(";")[0].strip().lower() != "application/json":
            return None
        try:
            json_body = loads_json(body)  # (a key named twice: refused, and FastAPI answers it as always)
        except Exception:  # noqa: BLE001  (bad JSON, bad UTF-8, nesting past the recursion limit, ...)
            return None  # whatever the lane cannot parse, FastAPI parses and answers (400 or 422) as always
    if loose_whole_numbers(getattr(lane.route, "whole_numbers", ()), path_params, request.query_params) or \
            repeated_headers(request.scope):
        return None  # FastAPI's route refuses it (http.JsonRoute)
    headers = request.headers
    for dep in (*[d for d, _ in lane.steps], lane.dependant):
        got: dict = {}
        if dep.path_params:
            v, errors = request_params_to_args(dep.path_params, path_params)
            if errors:
                return None
            got.update(v)
        if dep.query_params:
            v, errors = request_params_to_args(dep.query_params, request.query_params)
            if errors:
                return None
            got.update(v)
        if dep.header_params:
            v, errors = request_params_to_args(dep.header_params, headers)
            if errors:
                return None
            got.update(v)
        if dep.request_param_name:
            got[dep.request_param_name] = request
        values[id(dep)] = got
    if lane.body_params:
        v, errors = await request_body_to_args(lane.body_params, json_body, lane.embed_body)
        if errors:
            return None
        values[id(lane.dependant)].update(v)
    return values


async def _run(lane: LaneRoute, request: Request, values: dict[int, dict]) -> Response:
    """The dependencies (FastAPI's order, each call once per request as its cache does), the endpoint,
    and the answer serialized through the route's response model as FastAPI's request handler does."""
    solved: dict[Any, Any] = {}
    for dep, is_async in lane.steps:
        kwargs = values[id(dep)]
        for sub in dep.dependencies:
            if sub.name is not None:
                kwargs[sub.name] = solved[sub.call]
        if dep.use_cache and dep.call in solved:
            continue
        solved[dep.call] = await dep.call(**kwargs) if is_async else await run_in_threadpool(dep.call, **kwargs)
    kwargs = values[id(lane.dependant)]
    for sub in lane.dependant.dependencies:
        if sub.name is not None:
            kwargs[sub.name] = solved[sub.call]
    call = lane.dependant.call
    assert call is not None  # a route's endpoint
    raw = await call(**kwargs) if lane.is_async else await _in_thread(call, kwargs)
    if isinstance(raw, Response):
        return raw
    ctx = lane.context
    dump_json = ctx.response_field is not None and isinstance(ctx.response_class, DefaultPlaceholder)
    content = await serialize_response(
        field=ctx.response_field, response_content=raw, include=ctx.response_model_include,
        exclude=ctx.response_model_exclude, by_alias=ctx.response_model_by_alias,
        exclude_unset=ctx.response_model_exclude_unset, exclude_defaults=ctx.response_model_exclude_defaults,
        exclude_none=ctx.response_model_exclude_none, is_coroutine=True, dump_json=dump_json)
    args = {"status_code": ctx.status_code} if ctx.status_code else {}
    if dump_json:
        response = Response(content=content, media_type="application/json", **args)
    else:
        cls = ctx.response_class.value if isinstance(ctx.response_class, DefaultPlaceholder) else ctx.response_class
        response = cls(content, **args)
    if not is_body_allowed_for_status_code(response.status_code):
        response.body = b""
    return response


# The plain def endpoints of the lane's reads run here rather than in anyio's worker threads (FastAPI's
# run_in_threadpool): handing a call to one of those goes through a queue.Queue and its Condition, whose
# notify was ~30% of the event loop's own time in a lookup (py-spy); this pool's queue is the C
# SimpleQueue. The same function with the same arguments and the request's context variables (its log
# fields), in another thread: what it answers or raises is the same. 16 threads: more than the database
# pool's 10 steady connections.
_READERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="sscard-read")


async def _in_thread(call: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """The call in a worker thread. The `viewed` records of the staff reads it makes are awaited here, on
    the loop (batching.AwaitedViews): the thread does not wait for their commit, the writer's answer is
    what wakes the loop (no second wake-up for the thread's own return), and the answer (or the error)
    still goes out only once they are committed."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    views = batching.AwaitedViews.within(context, loop)
    wake: asyncio.Future[Any] = loop.create_future()
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, context.run(call, **kwargs)))
        except BaseException as exc:  # noqa: BLE001  raised on the loop, as run_in_executor would
            outcome.append((False, exc))
        finally:
            views.release(wake)

    _READERS.submit(run)
    await views.settled(await wake)
    answered, value = outcome[0]
    if not answered:
        raise value
    return value


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
    """The app's handler for this exception (by class, most specific first), as Starlette's
    ExceptionMiddleware finds it (a handler of Exception itself is the ServerErrorMiddleware's)."""
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
