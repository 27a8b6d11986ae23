"""The API channel's part of the app (sscard.composition assembles the whole): errors as {code, message},
the /api/v1 routers, and, once every route is in, the contract and the terminal lane."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount, Route
from starlette.staticfiles import StaticFiles

from ..core.errors import MESSAGES, SscardError
from ..http import JsonRoute, language
from ..services.app import MAYBE_BUSY, UNSTORABLE_INPUT, busy, unstorable
from . import contract, counter, events, foundation, hotline, ledger, medical
from .deps import actor_of, admitted
from .schemas import ErrorBody, bare_dates
from .terminal_lane import TerminalLane

log = logging.getLogger("sscard.api")


def scrub_validation_error(exc: RequestValidationError) -> list[dict]:
    """The errors as the client is told them (where, what, which kind), and the exception stripped of
    the client's input: its text (`str(exc)`) held the whole body, PINs included, and reached the log
    whenever anything logged a traceback chained to it (issue 13, findings 3 and 4)."""
    details = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    exc._errors = [{"type": d["type"], "loc": tuple(d["loc"]), "msg": d["msg"]} for d in details]
    exc.body = None
    exc.__cause__ = exc.__context__ = None  # a JSON error chained here holds the raw body (.doc)
    exc.__suppress_context__ = True
    return details


API_PATHS = ("/api/", "/openapi.json", "/metrics")
"""Where the answers are for programs (JSON); every other path is the web channel's, read in a browser."""

PageRefusal = Callable[[Request, SscardError, int, "dict[str, str] | None"], Response]
"""How the web channel answers a refusal on one of its paths: a page of the site (sscard.web.pages.refusal_page,
given by the composition root: the API channel never imports the web's modules)."""


def retry_after(exc: SscardError) -> dict[str, str] | None:
    """A 429 or 503 that says when to try again has Retry-After (seconds)."""
    return ({"Retry-After": str(exc.params["seconds"])}
            if exc.status in (429, 503) and "seconds" in exc.params else None)


async def caller_refused(request: Request) -> SscardError | None:
    """Who may call is decided before what they sent is judged, on every route. FastAPI decodes a JSON body
    before it solves the route's dependencies, so a body that is not JSON (or not UTF-8) was answered 422,
    with the parser's details, to callers without a credential or with another channel's: they get the
    401 or 403 that a well-formed body gets (`deps.admitted`, its audit record included)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not contract.needs_token(route):
        return None
    app = request.app.state.sscard
    try:
        await admitted(request, app, await actor_of(request, app))
    except SscardError as refusal:
        return refusal
    return None


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path: Starlette's 405 names only the methods of the first
    route whose path matched, and a path often has two (GET and POST /api/v1/persons, a login page)."""
    methods: set[str] = set()
    outer = request.scope
    scope = {"type": "http", "method": outer["method"], "path": outer["path"], "path_params": {},
             "root_path": outer.get("app_root_path", outer.get("root_path", ""))}  # as the app saw it, not a mount
    for ctx in iter_route_contexts(request.app.routes):
        route = ctx.original_route
        if isinstance(route, Route) and ctx.methods and ctx.matches(scope)[0] is not Match.NONE:
            methods |= set(ctx.methods)
        elif isinstance(route, Mount) and isinstance(route.app, StaticFiles) and ctx.matches(scope)[0] is Match.FULL:
            methods |= {"GET", "HEAD"}  # what StaticFiles serves (its own 405 names nothing)
    return ", ".join(sorted(methods))


def _sqlstate(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    return str(getattr(orig, "sqlstate", None) or "no sqlstate")


def _route(request: Request) -> str:
    """The route's template for a log line, never the path: a path may hold a PAN or a card number."""
    return getattr(request.scope.get("route"), "path", None) or "(no route)"


Refusal = Callable[..., Response]
"""answer(request, refusal, status=None, headers=None, details=None): a refusal as the request's channel
answers it (`install` makes it; http.BodyLimit, outside the app's handlers, uses it too)."""


def install(api: FastAPI, pages: PageRefusal | None = None) -> Refusal:
    """The API channel on the composed app: the /api/v1 routers, and every refusal the frame answers (a
    business refusal, malformed input, input the database cannot hold, a busy database, a path or method
    that does not exist), in one place: on the API's paths as {code, message}, on the web's as `pages`
    answers them (a page of the site), with the same status and headers either way."""

    def answer(request: Request, exc: SscardError, status: int | None = None,
               headers: dict[str, str] | None = None, details: list[dict] | None = None) -> Response:
        status = status or exc.status
        headers = {**(retry_after(exc) or {}), **(headers or {})} or None
        if pages is not None and not request.url.path.startswith(API_PATHS):
            return pages(request, exc, status, headers)
        body = exc.to_dict(language(request))
        if details is not None:
            body["details"] = details
        if status == 401:  # RFC 6750 §3: how to authenticate (session 22's contract probe)
            headers = {"WWW-Authenticate": 'Bearer realm="sscard"', **(headers or {})}
        return JSONResponse(body, status_code=status, headers=headers)

    @api.exception_handler(SscardError)
    async def _business_error(request: Request, exc: SscardError) -> Response:
        return answer(request, exc)

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        refusal = await caller_refused(request)
        if refusal is not None:
            return answer(request, refusal)
        return answer(request, SscardError("invalid_request"), 422, details=scrub_validation_error(exc))

    async def _unstorable(request: Request, exc: Exception) -> Response:
        """Input the database cannot hold (an id beyond its integers, a NUL byte, a string too long
        for its column, a time with no UTC time) that a route forgot to bound: the transaction was rolled
        back; answer 422. Any other StatementError is raised on to the 500 it always was."""
        if not unstorable(exc):
            raise exc
        log.warning("input the database refused on %s %s: %s", request.method, _route(request), type(exc).__name__)
        return answer(request, SscardError("invalid_request"), 422)

    for kind in UNSTORABLE_INPUT:
        api.add_exception_handler(kind, _unstorable)

    async def _maybe_busy(request: Request, exc: Exception) -> Response:
        """A database error that says only that the database could not take the work now (its pool,
        its shared memory, used-up retries: services.app.busy): 503 with Retry-After, never 500. Any
        other is raised on to the 500 it always was (with its traceback in the log)."""
        refusal = busy(exc)
        if refusal is None:
            raise exc
        log.warning("database busy on %s %s: %s (%s): answered 503", request.method, _route(request),
                    type(exc).__name__, _sqlstate(exc))
        return answer(request, refusal)

    for maybe_busy in MAYBE_BUSY:
        api.add_exception_handler(maybe_busy, _maybe_busy)

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # a body FastAPI could not parse at all (nested too deep): the caller first
            refused = await caller_refused(request)
            if refused is not None:
                return answer(request, refused)
        code = {404: "not_found", 401: "unauthenticated", 403: "forbidden",
                405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        refusal = SscardError("not_found", what=("页面", "page")) if code == "not_found" else SscardError(code)
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return answer(request, refusal, exc.status_code, headers)

    # Document the refusal shape for every status a business error can have (areas register theirs
    # at import, before this runs), so the OpenAPI tells clients what a 4xx looks like, and the 503 of
    # service_busy. Not the other 5xx: those are the operator's tools' (sscard backup), whose module a
    # process may or may not have imported; the contract must not depend on it.
    errors = {status: {"model": ErrorBody, "description": "refused: {code, message}"}
              for status in sorted({entry[0] for code, entry in MESSAGES.items()
                                    if entry[0] < 500 or code == "service_busy"})}
    ledger.terminal_router.take_in(api, responses=errors)  # first: the hottest routes
    hotline.say_who_may_call(api.state.sscard.settings)
    for module in (foundation, ledger, medical, counter, hotline, events):
        module.router.take_in(api, responses=errors)
    return answer


def refuse_bare_dates(api: FastAPI) -> None:
    """Every date or time any route reads (a body's field, a query, path, header or form parameter, of the
    API and of the pages) is ISO-8601 text only (schemas.IsoDate, IsoDateTime): a route that reads a plain
    `date` (or wraps IsoDate in `= Query()`, which drops its validator) is refused (TypeError). Here for
    every route (building each); at start-up `finish` checks those built now, and the routes a RouteBook
    made are checked as they are built (http.JsonRoute.checks): such a route never answers."""
    for ctx in iter_route_contexts(api.routes):
        if isinstance(ctx.original_route, APIRoute):
            _refuse_bare_dates_of(ctx.original_route)


def _refuse_bare_dates_of(route: APIRoute) -> None:
    stack = [route.dependant]
    while stack:
        dep = stack.pop()
        stack.extend(dep.dependencies)
        for param in (*dep.path_params, *dep.query_params, *dep.header_params, *dep.cookie_params,
                      *dep.body_params):
            if bare_dates(param.field_info.annotation, param.field_info.metadata):
                raise TypeError(f"{route.path_format}: parameter {param.name!r} reads a date that is not "
                                "ISO-8601 text only (use Annotated[schemas.IsoDate, Query()])")


if _refuse_bare_dates_of not in JsonRoute.checks:
    JsonRoute.checks.append(_refuse_bare_dates_of)


def finish(api: FastAPI) -> None:
    """Once every route is in: dates only as ISO-8601 text, the contract (operationIds, security, keys and
    error codes from the declarations) and the lane (every group-committed route without FastAPI's dispatch)."""
    for ctx in iter_route_contexts(api.routes):  # (a RouteBook's are checked as they are built)
        if isinstance(ctx.original_route, APIRoute) and not isinstance(ctx.original_route, JsonRoute):
            _refuse_bare_dates_of(ctx.original_route)
    contract.install(api)
    api.add_middleware(TerminalLane, api=api)
