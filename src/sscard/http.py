"""What every HTTP channel (the API, the web pages, the voice webhook) reads off a request besides its
body: the language to answer in, and the client's address as the server sees it (for the login throttle);
and how much body it reads at all (BodyLimit). Shared here so that no channel imports another's modules for it.

The client's address is the TCP peer, unless that peer is one of the configured reverse proxies (SSCARD_TRUSTED_PROXIES):
then X-Forwarded-For is read from the right, skipping our own proxies, and the first other address is
the client. From any other peer the header is ignored: a client must not choose its own address.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import threading
import types
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import APIRouter, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.routing import compile_path, get_name
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .core.errors import LANGUAGES, SscardError
from .core.identifiers import ascii_digits


def _trusted(address: str, networks: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)


def client_address(request: Request) -> str:
    peer = request.client.host if request.client else "unknown"
    proxies: tuple[str, ...] = request.app.state.sscard.settings.trusted_proxies
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop[:64]
    return hops[0][:64] if hops else peer


def accepted_language(header: str) -> str | None:
    """The language an Accept-Language header prefers among ours, by its q-weights (RFC 9110 §12.5.4):
    `en;q=0.1, zh;q=0.9` is zh, `fr, en;q=0.5` en, `*` our default; the first listed wins a tie. A range
    with q=0 or a malformed weight counts for nothing; None when nothing of ours is acceptable."""
    best, best_q = None, 0.0
    for item in header.split(",")[:32]:
        tag, *params = item.split(";")
        tag = tag.strip().lower()
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip()) if len(value) < 8 else -1.0
                except ValueError:
                    q = -1.0
        if not 0.0 < q <= 1.0:
            continue
        lang = LANGUAGES[0] if tag == "*" else tag.split("-")[0]
        if lang in LANGUAGES and q > best_q:
            best, best_q = lang, q
    return best


def language(request: Request) -> str:
    """The caller's language, zh unless they ask for English: an explicit choice (?lang=, the lang cookie
    set by /lang/en) first, then Accept-Language by its weights. Every channel that answers in words asks
    here: the API's error messages, the pages, the CSV reports."""
    for chosen in (request.query_params.get("lang"), request.cookies.get("lang")):
        lang = (chosen or "").strip().lower()[:2]
        if lang in LANGUAGES:
            return lang
    return accepted_language(request.headers.get("accept-language", "")) or LANGUAGES[0]


MAX_BODY_BYTES = 4 * 2**20
"""The largest request body any route reads: the largest request sscard takes is a month's 10,000 medical
contributions (under 1 MiB of JSON); a form or a payment is a few hundred bytes."""


class BodyLimit:
    """Around the whole app (the lane included): a body over `max_bytes` is refused 413 `body_too_large`
    before any route reads it, so no client makes the server hold more than that in memory. A declared
    Content-Length is checked at once (the server's HTTP parser holds a body to it); a body without one
    (chunked) is read here up to the limit and handed on, or refused. `refuse` answers in the channel's form
    (api.main: JSON on the API, a page on the web's paths)."""

    def __init__(self, app: ASGIApp, refuse: Callable[[Request, SscardError, int], Response],
                 max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app, self.refuse, self.max_bytes = app, refuse, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = chunked = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = value
        if length is not None:
            if not ascii_digits(length.decode("latin-1")) or int(length) <= self.max_bytes:
                await self.app(scope, receive, send)  # (a malformed length never gets past the server's parser)
                return
        elif chunked is not None:
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > self.max_bytes:
                    break
                if not message.get("more_body", False):
                    body = b"".join(chunks)
                    await self.app(scope, replay_body(body, receive), send)
                    return
            if size <= self.max_bytes:  # the client went away before its body ended
                await self.app(scope, replay_body(b"".join(chunks), receive), send)
                return
        else:
            await self.app(scope, receive, send)
            return
        response = self.refuse(Request(scope), SscardError("body_too_large", limit=self.max_bytes), 413)
        await response(scope, receive, send)


class HeadAsGet:
    """HEAD answered as the same request's GET without its body (RFC 9110 §9.3.2): FastAPI's routes take the
    methods they name, so a monitor's or a link checker's `curl -I` of any page or read got 405 (session 24's
    browser probe). The same route, checks, status and headers, its Content-Length included; the body is
    not sent. A route that takes no GET still answers 405 as it did."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # (the last part below ends the answer, empty)
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives a body already read once, whole, then whatever the client sends next
    (its disconnect): for a middleware that had to read the body before the app does."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def _one_value_per_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise json.JSONDecodeError("an object names a key twice", "", 0)
    return found


def loads_json(body: bytes | str) -> Any:
    """A request's JSON body, as every route reads one (FastAPI's parse through `JsonRoute`, and the
    terminal lane's): an object that names a key twice is refused (json.JSONDecodeError, answered 422
    like any malformed JSON). Python's json keeps the last value silently, while a proxy, a log or an
    auditor's tool in front may keep the first: `{"amount_fen": 100, "amount_fen": 900000}` must not mean
    one amount to them and another to the ledger (session 24's probe).

    Bytes are read as UTF-8 only (RFC 8259 §8.1), no byte order mark: Python's json also took UTF-16 and
    UTF-32 bodies and a UTF-8 BOM, which a proxy, a filter or a log reading the body as UTF-8 (or as text at
    all) saw as something else than the deposit the ledger made (session 25's probe). Either is malformed
    JSON (json.JSONDecodeError, answered 422 like any other)."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise json.JSONDecodeError("a JSON body is UTF-8 text", "", 0) from None
    return json.loads(body, object_pairs_hook=_one_value_per_key)


class _JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_json(await self.body())
        return self._json


_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,19}")
WHOLE_NUMBER_MIN, WHOLE_NUMBER_MAX = -(2**63), 2**63 - 1
"""The widest whole number any input takes (a URL's, a body's; a route may bound its own tighter): what every
integer column of both databases holds (BIGINT). One outside it names no row and no amount: refused 422
naming the input (`loose_whole_numbers`, schemas.Strict), and declared so in the contract (api.contract);
before session 25 it reached the database, whose refusal was answered 422 with no word of which input."""


def whole_number_in_range(value: int) -> bool:
    return WHOLE_NUMBER_MIN <= value <= WHOLE_NUMBER_MAX


def number_kinds(annotation: Any) -> set[type]:
    """Which of int, float and bool a parameter's or field's type takes (through Annotated and unions; not
    inside lists or models, which are validated as themselves). `{int}`: a whole number, whose text in a URL
    (`loose_whole_numbers`) and whose JSON in a body (`api.schemas.Strict`) are held to exactly that."""
    if get_origin(annotation) is Annotated:
        return number_kinds(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return set().union(*(number_kinds(a) for a in get_args(annotation)))
    return {annotation} & {int, float, bool}


def whole_number_params(dependant: Dependant) -> tuple[tuple[str, str], ...]:
    """("path" | "query", name) of every whole-number parameter of a route and of its dependencies."""
    found: list[tuple[str, str]] = []
    stack = [dependant]
    while stack:
        dep = stack.pop()
        stack.extend(dep.dependencies)
        for where, params in (("path", dep.path_params), ("query", dep.query_params)):
            found += [(where, p.alias) for p in params if number_kinds(p.field_info.annotation) == {int}]
    return tuple(found)


def loose_whole_numbers(params: tuple[tuple[str, str], ...], path_params: dict[str, Any],
                        query_params: Any) -> list[dict[str, Any]]:
    """The whole numbers of a URL written as anything but ASCII digits (with a minus), as FastAPI's
    validation errors. Pydantic reads `1.0`, `+1`, ` 1`, `1_0` and `١` as integers, so `/persons/1_0/cards`
    reached person 10 and `/persons/%201/cards` person 1 (session 24's probe): the path a proxy, a log or
    an auditor reads must name the row the route acts on, character for character. So are the ones beyond
    the whole numbers any database holds (`WHOLE_NUMBER_MAX`)."""
    errors = []
    for where, name in params:
        raw = [path_params[name]] if where == "path" and name in path_params else \
            query_params.getlist(name) if where == "query" else []
        errors += [{"type": "int_parsing", "loc": (where, name), "input": text,
                    "msg": "Input should be a valid integer, unable to parse string as an integer"}
                   for text in raw if isinstance(text, str) and not (
                       _WHOLE_NUMBER.fullmatch(text) and whole_number_in_range(int(text)))]
    return errors


ONCE_ONLY_HEADERS = (b"idempotency-key",)
"""Headers a request means once: sent twice (`Idempotency-Key: a` and `Idempotency-Key: b`), the server read
the first while a proxy may keep the last or join them (`a, b`, RFC 9110 §5.3), and a retry through it would
run again under another key (session 25's probe, as a JSON key named twice in session 24)."""


def repeated_headers(scope: Scope) -> list[dict[str, Any]]:
    """The once-only headers a request sends more than once, as FastAPI's validation errors."""
    names = [name for name, _ in scope["headers"] if name in ONCE_ONLY_HEADERS]
    return [{"type": "value_error", "loc": ("header", name.decode()), "input": None,
             "msg": "Value error, sent more than once: send it once"}
            for name in dict.fromkeys(names) if names.count(name) > 1]


_BUILDING = threading.RLock()  # one route built at a time (a thread reading a route being built waits for it)


class JsonRoute(APIRoute):
    """Every route a RouteBook builds: its body's JSON read by `loads_json` (a key named twice refused), its
    whole-number path and query parameters written as digits only (`loose_whole_numbers`, 422), and a
    once-only header sent once (`repeated_headers`, 422).

    Built when first needed: at start-up a route holds only what matching a request needs (path, methods,
    name); FastAPI's part (the dependant, the parameter and response models: ~2 ms a route, ~0.3 s of CPU
    for the app's ~180, most of a restart's route work) is made at the route's first request, or the first
    time anything reads it (the OpenAPI document, the lane, a test). `checks` run on each route as it is
    built (api.main: dates as ISO text only): a route that fails them answers nothing, whenever it is built.
    """

    checks: list[Callable[[JsonRoute], None]] = []

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:  # noqa: D107
        self.__dict__["_unbuilt"] = (path, endpoint, options)
        self.path, self.endpoint = path, endpoint
        self.name = get_name(endpoint) if options.get("name") is None else options["name"]
        self.methods = {m.upper() for m in options.get("methods") or ["GET"]}  # (as FastAPI's: no HEAD added)
        self.path_regex, self.path_format, self.param_convertors = compile_path(path)
        self.include_in_schema = options.get("include_in_schema", True)
        self.app = self._first_request

    def build(self) -> None:
        """FastAPI's route made now (APIRoute.__init__), once, and checked; a no-op once built."""
        with _BUILDING:
            unbuilt = self.__dict__.get("_unbuilt")
            if unbuilt is None or self.__dict__.get("_building"):
                return
            path, endpoint, options = unbuilt
            self.__dict__["_building"] = True
            try:
                APIRoute.__init__(self, path, endpoint, **options)
                for check in self.checks:
                    check(self)
                del self.__dict__["_unbuilt"]
            except BaseException:
                self.app = self._first_request  # (APIRoute.__init__ had set FastAPI's handler): never served
                raise
            finally:
                del self.__dict__["_building"]

    def __getattr__(self, name: str) -> Any:
        """An attribute of FastAPI's part, read before the route was built: build it, then read it."""
        if name.startswith("__") or "_unbuilt" not in self.__dict__:
            raise AttributeError(name)
        with _BUILDING:
            if self.__dict__.get("_building"):  # read by APIRoute.__init__ itself before it set it
                raise AttributeError(name)
            self.build()
        return object.__getattribute__(self, name)

    async def _first_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.build()  # sets self.app to FastAPI's handler: later requests go straight to it
        await self.app(scope, receive, send)

    @functools.cached_property
    def whole_numbers(self) -> tuple[tuple[str, str], ...]:
        return whole_number_params(self.dependant)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_json(request: Request) -> Response:
            loose = loose_whole_numbers(self.whole_numbers, request.path_params, request.query_params) + \
                repeated_headers(request.scope)
            if loose:
                raise RequestValidationError(loose)
            return await handler(_JsonRequest(request.scope, request.receive))

        return strict_json


class RouteBook(APIRouter):
    """An APIRouter that writes its routes down and builds each one once, when the app takes it in (`take_in`).

    FastAPI 0.165 builds a route (its dependencies, parameters and pydantic adapters) when a router's
    decorator adds it, and again for every `include_router` of that router: each of the app's ~160 routes
    was built twice, and the second build (~0.4 s) fell into every restart's first request. A book holds
    only what its decorators were given; the app builds the route. Only a prefix, tags and
    include_in_schema are supported at the book's level (what our channels use): anything else is refused.
    """

    def __init__(self, *, prefix: str = "", tags: list[str] | None = None, include_in_schema: bool = True) -> None:
        super().__init__(prefix=prefix, tags=list(tags or []), include_in_schema=include_in_schema)
        self.written: list[WrittenRoute] = []

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:  # type: ignore[override]
        methods = {m.upper() for m in options.get("methods") or ("GET",)}
        self.written.append(WrittenRoute(self.prefix + path, frozenset(methods), endpoint, options))

    def add_route(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a RouteBook holds API routes only (add_api_route and its decorators)")

    add_websocket_route = add_api_websocket_route = include_router = add_route  # type: ignore[assignment]

    def take_in(self, app: FastAPI, responses: dict[int | str, dict[str, Any]] | None = None) -> None:
        """Build every written route on `app`, in the order written, as `app.include_router(self,
        responses=...)` would have: the book's prefix and tags first, its include_in_schema over each route's,
        a route's own responses over the ones given. Each app builds its own (tests build many)."""
        for route in self.written:
            options = dict(route.options)
            options["tags"] = [*self.tags, *(options.get("tags") or [])]
            options["responses"] = {**(responses or {}), **(options.get("responses") or {})}
            options["include_in_schema"] = self.include_in_schema and options.get("include_in_schema", True)
            app.router.add_api_route(route.path, route.endpoint, route_class_override=JsonRoute, **options)


@dataclass(frozen=True)
class WrittenRoute:
    """One route as its decorator gave it: full path, methods, endpoint and the decorator's options."""

    path: str
    methods: frozenset[str]
    endpoint: Callable[..., Any]
    options: dict[str, Any]
