"""The API channel's part of the app (sscard.composition assembles the whole): errors as {code, message},
the /api/v1 routers, and, once every route is in, the contract and the terminal lane."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from ..core.errors import MESSAGES, SscardError
from ..http import language
from ..services.app import MAYBE_BUSY, UNSTORABLE_INPUT, busy
from . import contract, counter, events, foundation, hotline, ledger, medical
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


def _refusal(request: Request, exc: SscardError) -> JSONResponse:
    """{code, message} with the refusal's status; a 429 or 503 that says when to try again has Retry-After."""
    retry = ({"Retry-After": str(exc.params["seconds"])}
             if exc.status in (429, 503) and "seconds" in exc.params else None)
    return JSONResponse(exc.to_dict(language(request)), status_code=exc.status, headers=retry)


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path: Starlette's 405 names only the methods of the first
    route whose path matched, and a path often has two (GET and POST /api/v1/persons, a login page)."""
    methods: set[str] = set()
    scope = {**request.scope, "path_params": {}}
    for ctx in iter_route_contexts(request.app.routes):
        if isinstance(ctx.original_route, Route) and ctx.methods and ctx.matches(scope)[0] is not Match.NONE:
            methods |= set(ctx.methods)
    return ", ".join(sorted(methods))


def _sqlstate(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    return str(getattr(orig, "sqlstate", None) or "no sqlstate")


def install(api: FastAPI) -> None:
    """The API channel on the composed app: every refusal as {code, message} and the /api/v1 routers."""

    @api.exception_handler(SscardError)
    async def _business_error(request: Request, exc: SscardError) -> JSONResponse:
        return _refusal(request, exc)

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        body = SscardError("invalid_request").to_dict(language(request))
        body["details"] = scrub_validation_error(exc)
        return JSONResponse(body, status_code=422)

    async def _unstorable(request: Request, exc: Exception) -> JSONResponse:
        """Input the database cannot hold (an id beyond its integers, a NUL byte, a string too long
        for its column) that a route forgot to bound: the transaction was rolled back; answer 422."""
        log.warning("input the database refused on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return JSONResponse(SscardError("invalid_request").to_dict(language(request)), status_code=422)

    for unstorable in UNSTORABLE_INPUT:
        api.add_exception_handler(unstorable, _unstorable)

    async def _maybe_busy(request: Request, exc: Exception) -> JSONResponse:
        """A database error that says only that the database could not take the work now (its pool,
        its shared memory, used-up retries: services.app.busy): 503 with Retry-After, never 500. Any
        other is raised on to the 500 it always was (with its traceback in the log)."""
        refusal = busy(exc)
        if refusal is None:
            raise exc
        route = getattr(request.scope.get("route"), "path", "?")  # the template: a path may hold an identifier
        log.warning("database busy on %s %s: %s (%s): answered 503", request.method, route,
                    type(exc).__name__, _sqlstate(exc))
        return _refusal(request, refusal)

    for maybe_busy in MAYBE_BUSY:
        api.add_exception_handler(maybe_busy, _maybe_busy)

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 401: "unauthenticated", 403: "forbidden", 405: "invalid_request"}.get(
            exc.status_code, "invalid_request"
        )
        if code == "not_found":
            body = SscardError("not_found", what=("页面", "page")).to_dict(language(request))
        else:
            body = SscardError(code).to_dict(language(request))
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    # Document the refusal shape for every status a business error can have (areas register theirs
    # at import, before this runs), so the OpenAPI tells clients what a 4xx looks like.
    errors = {status: {"model": ErrorBody, "description": "refused: {code, message}"}
              for status in sorted({entry[0] for entry in MESSAGES.values() if entry[0] < 500})}
    api.include_router(ledger.terminal_router, responses=errors)  # first: the hottest routes
    for module in (foundation, ledger, medical, counter, hotline, events):
        api.include_router(module.router, responses=errors)


def refuse_bare_dates(api: FastAPI) -> None:
    """Every date or time any route reads (a body's field, a query, path, header or form parameter, of the
    API and of the pages) is ISO-8601 text only (schemas.IsoDate, IsoDateTime): a route that reads a plain
    `date` (or wraps IsoDate in `= Query()`, which drops its validator) stops the server from starting."""
    for ctx in iter_route_contexts(api.routes):
        if not isinstance(ctx.original_route, APIRoute):
            continue
        stack = [ctx.dependant]
        while stack:
            dep = stack.pop()
            stack.extend(dep.dependencies)
            for param in (*dep.path_params, *dep.query_params, *dep.header_params, *dep.cookie_params,
                          *dep.body_params):
                if bare_dates(param.field_info.annotation, param.field_info.metadata):
                    raise TypeError(f"{ctx.path_format}: parameter {param.name!r} reads a date that is not "
                                    "ISO-8601 text only (use Annotated[schemas.IsoDate, Query()])")


def finish(api: FastAPI) -> None:
    """Once every route is in: dates only as ISO-8601 text, the contract (operationIds, security, keys and
    error codes from the declarations) and the lane (every group-committed route without FastAPI's dispatch)."""
    refuse_bare_dates(api)
    contract.install(api)
    api.add_middleware(TerminalLane, api=api)
