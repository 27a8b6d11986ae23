"""The composition root: the one place that assembles the server from its channels.

The API (`sscard.api`, with the hotlines' voice webhook), the web pages (`sscard.web`: home, the window
and bank consoles, the portal) and the shared parts around them (security headers, metrics, request
context, the audit sealer and the event publisher) meet only here; the channels never import each
other (import-linter: `.importlinter`). `sscard serve` runs `sscard.asgi:application`, made here; tests
build their app with `create_app(app)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from . import metrics
from .api import main as api_channel
from .http import BodyLimit, HeadAsGet
from .logs import RequestContext, install_logging
from .services.app import App, build_app
from .web import bank_console, console, pages, portal, security
from .web.hardening import SecurityHeaders

STATIC = Path(__file__).parent / "web" / "static"


class _Sscard(FastAPI):
    def build_middleware_stack(self):
        """The security headers wrap everything, Starlette's 500 answers and the terminal lane included."""
        return SecurityHeaders(super().build_middleware_stack())


def create_app(app: App | None = None) -> FastAPI:
    """The whole server over `app` (by default: settings and policy from the environment)."""
    server = _Sscard(
        title="sscard",
        version="0.1.0",
        description="The financial social security card: social security side and bank side. "
        "Errors are {code, message}; writes accept an Idempotency-Key header.",
        openapi_url="/openapi.json",
        # FastAPI's own OpenTelemetry: off (the operator's figures are /metrics, metrics.py); left on, it
        # asks OpenTelemetry for its three providers on every request to learn that none is configured
        telemetry={"tracing": False, "metrics": False, "logs": False},
        lifespan=_background_work,
    )
    server.state.sscard = app or build_app()
    install_logging(server.state.sscard.settings.log_format)
    refuse = api_channel.install(server, pages=pages.refusal_page)  # a refusal on a page's path is a page
    security.install(server)
    for web_channel in (pages, console, portal, bank_console):
        web_channel.router.take_in(server)  # http.RouteBook: each route built once
    server.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    api_channel.finish(server)
    server.add_middleware(BodyLimit, refuse=refuse)  # outside the lane: no route reads a body over the limit
    server.add_middleware(HeadAsGet)  # HEAD: any GET's answer, without its body
    metrics.install(server)  # GET /metrics, and the request counter outside the lane (it counts the lane too)
    server.add_middleware(RequestContext)  # outermost: every request's log lines carry its id
    return server


@asynccontextmanager
async def _background_work(server: FastAPI) -> AsyncIterator[None]:
    """While the server serves: the audit chain's sealer, the coming months' partitions (PostgreSQL) and the
    publisher to NATS JetStream (when SSCARD_NATS_URL is set); the App closed when it stops (which stops them).
    A lifespan, not `on_event` handlers (deprecated by FastAPI)."""
    from .services import partitions, publisher
    from .services.audit_chain import start_sealer

    app = server.state.sscard
    start_sealer(app)
    partitions.start_in_background(app)
    publisher.start(app)
    try:
        yield
    finally:
        app.close()
