"""The ASGI application: API routers, web pages, static files, and errors as {code, message}."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import metrics
from ..core.errors import SscardError
from ..logs import RequestContext, install_logging
from ..services.app import UNSTORABLE_INPUT, App, build_app
from . import contract, counter, events, foundation, hotline, ledger, medical
from .deps import language
from .terminal_lane import TerminalLane

log = logging.getLogger("sscard.api")
STATIC = Path(__file__).parent.parent / "web" / "static"


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


class _SscardAPI(FastAPI):
    def build_middleware_stack(self):
        """The security headers wrap everything, Starlette's 500 answers and the terminal lane included."""
        from ..web.hardening import SecurityHeaders

        return SecurityHeaders(super().build_middleware_stack())


def create_app(app: App | None = None) -> FastAPI:
    api = _SscardAPI(
        title="sscard",
        version="0.1.0",
        description="The financial social security card: social security side and bank side. "
        "Errors are {code, message}; writes accept an Idempotency-Key header.",
        openapi_url="/openapi.json",
    )
    api.state.sscard = app or build_app()
    install_logging(api.state.sscard.settings.log_format)

    @api.exception_handler(SscardError)
    async def _business_error(request: Request, exc: SscardError) -> JSONResponse:
        retry = {"Retry-After": str(exc.params["seconds"])} if exc.status == 429 and "seconds" in exc.params else None
        return JSONResponse(exc.to_dict(language(request)), status_code=exc.status, headers=retry)

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

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 401: "unauthenticated", 403: "forbidden", 405: "invalid_request"}.get(
            exc.status_code, "invalid_request"
        )
        if code == "not_found":
            body = SscardError("not_found", what=("页面", "page")).to_dict(language(request))
        else:
            body = SscardError(code).to_dict(language(request))
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    from ..core.errors import MESSAGES
    from .schemas import ErrorBody

    # Document the refusal shape for every status a business error can have (areas register theirs
    # at import, before this runs), so the OpenAPI tells clients what a 4xx looks like.
    errors = {status: {"model": ErrorBody, "description": "refused: {code, message}"}
              for status in sorted({entry[0] for entry in MESSAGES.values() if entry[0] < 500})}
    api.include_router(ledger.terminal_router, responses=errors)  # first: the hottest routes
    for module in (foundation, ledger, medical, counter, hotline, events):
        api.include_router(module.router, responses=errors)

    from ..web import bank_console, console, pages, portal, security

    security.install(api)

    api.include_router(pages.router)
    api.include_router(console.router)
    api.include_router(portal.router)
    api.include_router(bank_console.router)
    api.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    contract.install(api)  # operationIds, security, keys and error codes from the declarations
    api.add_middleware(TerminalLane)  # the hottest terminal routes without FastAPI's dispatch (same parts)
    metrics.install(api)  # GET /metrics, and the request counter outside the lane (it counts the lane too)
    api.add_middleware(RequestContext)  # outermost: every request's log lines carry its id

    @api.on_event("startup")
    def _start_sealer() -> None:
        from ..services.audit_chain import start_sealer

        start_sealer(api.state.sscard)  # the audit chain's sealer (stopped by App.close)

    @api.on_event("startup")
    def _ensure_partitions() -> None:
        from ..services import partitions

        partitions.start_in_background(api.state.sscard)  # the coming months' partitions (PostgreSQL)

    @api.on_event("startup")
    def _publish_events() -> None:
        from ..services import publisher

        publisher.start(api.state.sscard)  # to NATS JetStream, when SSCARD_NATS_URL is set

    @api.on_event("shutdown")
    def _close() -> None:
        api.state.sscard.close()

    return api
