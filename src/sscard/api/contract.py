"""The OpenAPI as integrators read it, derived from the operations' declarations (one place).

For each /api/v1 route we find the service operation its endpoint calls (services.access.DECLARATIONS)
and from its `Declaration` write into the schema: the operationId (the operation's name, `bank.withdraw`
-> `bank_withdraw`; a terminal twin of a route gets `terminal_...`, a PDF twin `..._pdf`), the bearer
security where the route takes a token, a required `Idempotency-Key` where the operation is keyed (every
/api/v1 channel requires it then), the roles and terminal kinds allowed, and the error codes it can answer.

Error codes are derived, not declared: the codes the operation's service module raises (its source,
`SscardError("code"`), those of services.lookup (every service finds its objects there), the scope
checks of services.access when the operation is scoped, and the frame's own (unauthenticated, forbidden,
invalid_request, body_too_large, service_busy, idempotency_key_required/_reused, wrong_terminal_kind,
password_change_required where a cardholder may call). A code raised only in a module
the service calls (e.g. ledger limits reached through banking) is listed when that module is named
in `_ALSO` below; the list may thus be a little wider than what a given call can answer, never a guess.
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from ..core.errors import MESSAGES
from ..core.roles import Channel, Role
from ..http import WHOLE_NUMBER_MAX, WHOLE_NUMBER_MIN
from ..services.access import AUDIENCE, BEFORE_FIRST_CHANGE, Declaration, Scope
from .declared import route_declaration
from .deps import IDEMPOTENCY_KEY_MAX, IDEMPOTENCY_KEY_PATTERN, current_actor, terminal_call

API_PREFIX = "/api/v1"
TERMINAL_PREFIX = "/api/v1/terminal/"
BEARER = "bearerAuth"
PUBLIC_IDS = {"check_identifier": "identifiers_check", "voice": "hotline_voice", "call_status": "hotline_call_status"}
# v1 promised these operationIds before the operations were renamed after their modules (0010_lifecycle:
# `counter.*` became `window.*`, `attorney.*`, `card.*`, `ss_password.*`) or a twin route came to answer
# through the one operation; an operationId is part of the contract (docs/API.md), so these paths keep them.
V1_IDS = {
    "/api/v1/counter/cards/{card_number}/collect": "counter_collect",
    "/api/v1/counter/cards/{card_number}/collection-receipt": "counter_collection_receipt",
    "/api/v1/counter/cards/{card_number}/collection-receipt/pdf": "counter_collection_receipt_pdf",
    "/api/v1/counter/cards/{card_number}/ss-password/reset-by-agent": "counter_ss_password_reset_by_agent",
    "/api/v1/counter/identity-checks": "counter_identity_check",
    "/api/v1/counter/persons": "counter_find_by_name",
    "/api/v1/counter/persons/{person_id}": "counter_person",
    "/api/v1/counter/production-batches/{batch_code}/complete": "replacement_complete_batch",
    "/api/v1/counter/queue": "counter_queue",
    "/api/v1/counter/visits/{visit_id}": "counter_visit",
    "/api/v1/counter/visits/{visit_id}/end": "counter_end_visit",
}
FRAME_CODES = ("unauthenticated", "forbidden", "invalid_request", "body_too_large", "service_busy")
_ALSO = {  # service module -> modules whose refusals reach its callers
    "sscard.services.banking": ("sscard.services.ledger",),
    "sscard.services.replacement": ("sscard.services.cards", "sscard.services.passwords", "sscard.services.loss",
                                    "sscard.services.attorney", "sscard.services.production",
                                    "sscard.services.ledger"),
    "sscard.services.cards": ("sscard.services.attorney",),
    "sscard.services.passwords": ("sscard.services.attorney", "sscard.services.throttle"),  # the login doors
    "sscard.services.medical": ("sscard.services.ledger", "sscard.services.passwords"),
}
_RAISES = re.compile(r'(?:SscardError\(\s*|_code=)"([a-z_]+)"')  # raised, or handed to a checker to raise


def needs_token(route: APIRoute) -> bool:
    """The route authenticates its caller (ActorDep or TerminalDep among its dependencies)."""
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if dep.call in (current_actor, terminal_call):
            return True
        stack.extend(dep.dependencies)
    return False


_SHARED = "sscard.services.card_lifecycle"  # the one state machine of both sides, which every change goes through


@functools.cache
def _module_codes(module_name: str) -> frozenset[str]:
    """The codes a module raises, and those it keeps in a table to raise (core.states' BANK_DEBIT_REFUSED maps
    an account's state to the code its debit is refused with)."""
    module = sys.modules.get(module_name)
    if module is None:
        return frozenset()
    codes = set(_RAISES.findall(inspect.getsource(module)))
    for value in vars(module).values():
        if isinstance(value, dict) and value and all(isinstance(v, str) and v in MESSAGES for v in value.values()):
            codes |= set(value.values())
    return frozenset(codes)


@functools.cache
def _reached(module_name: str) -> frozenset[str]:
    """The core modules (and the shared state machine) whose functions a service module calls: their
    refusals reach its callers (an invalid PAN from core.identifiers through services.lookup; a lost
    account's debit refused by core.states). Found from what the module has imported, and from those
    modules in turn, so that a code raised a call or two away is not left out (session 21's integrator
    found invalid_pan, account_lost, not_activated and illegal_transition missing from the lists)."""
    found: set[str] = set()
    todo = [module_name]
    while todo:
        module = sys.modules.get(todo.pop())
        if module is None:
            continue
        for value in vars(module).values():
            name = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
            if (isinstance(name, str) and (name.startswith("sscard.core.") or name == _SHARED)
                    and name not in found):
                found.add(name)
                todo.append(name)
    return frozenset(found)


def _takes_a_key(route: APIRoute) -> bool:
    """The route reads an Idempotency-Key header (its own or through a dependency)."""
    stack = [route.dependant]
    while stack:
        dep = stack.pop()
        if any(p.name == "idempotency_key" for p in dep.header_params):
            return True
        stack.extend(dep.dependencies)
    return False


def error_codes(decl: Declaration | None, fn: Any, route: APIRoute) -> list[str]:
    codes = set(FRAME_CODES)
    if decl is not None:
        codes.add("invalid_text")  # the frame's, for any operation's text (services.operation.run_declared)
        modules = {fn.__module__, "sscard.services.lookup", *_ALSO.get(fn.__module__, ())}
        for name in [*modules, *(core for m in modules for core in _reached(m))]:
            codes |= _module_codes(name)
        if decl.keyed:
            codes |= {"idempotency_key_required", "idempotency_key_reused"}
        elif _takes_a_key(route):  # an optional key (a balance inquiry): reused with another body, refused
            codes.add("idempotency_key_reused")
        if decl.terminals is not None and Role.TERMINAL in decl.roles:
            codes.add("wrong_terminal_kind")
        if Role.CARDHOLDER in route_roles(decl, route.path) and decl.name not in BEFORE_FIRST_CHANGE:
            codes.add("password_change_required")  # a cardholder still on the initial query password
        if decl.scope is Scope.OWN:
            codes |= {"wrong_bank", "not_found", "person_not_found"}
        elif decl.scope is Scope.CENTER:
            codes.add("wrong_center")
    else:
        codes |= {"not_found"} | (_module_codes("sscard.core.identifiers") if route.path.endswith("/check") else set())
    if needs_token(route):
        codes.add("rate_limited")  # every token's requests are counted (deps.admitted)
    else:  # (services.throttle, which a login door's module reaches, raises rate_limited for tokens only)
        codes -= {"unauthenticated", "rate_limited"}
    return sorted(c for c in codes if c in MESSAGES)


def api_routes(api: FastAPI) -> list[tuple[str, APIRoute]]:
    """(path as in the OpenAPI, route) of every /api/v1 route, through included routers."""
    out = []
    for ctx in iter_route_contexts(api.routes):
        route = ctx.original_route
        if isinstance(route, APIRoute) and (ctx.path_format or "").startswith(API_PREFIX):
            out.append((ctx.path_format, route))
    return out


def operation_ids(routes: list[tuple[str, APIRoute]]) -> dict[tuple[str, str], str]:
    """operationIds named after the operations, unique, stable as long as the operations' names are."""
    decls = [route_declaration(r)[0] for _, r in routes]
    by_op: dict[str, list[str]] = {}
    for (path, _), decl in zip(routes, decls, strict=True):
        if decl is not None:
            by_op.setdefault(decl.name, []).append(path)
    ids: dict[tuple[str, str], str] = {}
    seen: dict[str, str] = {}
    for (path, r), decl in zip(routes, decls, strict=True):
        if path in V1_IDS:
            base = V1_IDS[path]
        elif decl is None:
            base = PUBLIC_IDS.get(r.endpoint.__name__, r.endpoint.__name__)
        else:
            base = decl.name.replace(".", "_")
            if path.startswith(TERMINAL_PREFIX) and any(not t.startswith(TERMINAL_PREFIX) for t in by_op[decl.name]):
                base = "terminal_" + base
            if path.endswith("pdf"):
                base += "_pdf"
        for method in sorted(r.methods):
            if base in seen and seen[base] != path:
                raise ValueError(f"operationId {base!r} given to two routes: {seen[base]} and {path}")
            seen[base] = path
            ids[(path, method.lower())] = base
    return ids


def route_roles(decl: Declaration, path: str) -> frozenset[Role]:
    """Who may call this route: the operation's roles that the route's channel admits (services.access.
    AUDIENCE; the channel is the path's: /api/v1/terminal/... the terminals', the rest the API's). An operation
    served on both (a withdrawal at an ATM and at a teller's counter) lists on each route only its callers
    there, not the operation's every role (session 21's integrator: a teller was offered /terminal/withdrawal,
    and refused)."""
    channel = Channel.TERMINAL if path.startswith(TERMINAL_PREFIX) else Channel.API
    return decl.roles & AUDIENCE[channel]


def _describe_token(decl: Declaration | None, roles: frozenset[Role]) -> str:
    if decl is None:
        return ""
    kinds = []
    if Role.TERMINAL in roles:
        kinds.append("terminal" + (f" ({', '.join(sorted(decl.terminals))})" if decl.terminals else ""))
    staff = sorted(str(r) for r in roles if r not in (Role.TERMINAL, Role.CARDHOLDER, Role.SYSTEM))
    if staff:
        kinds.append("staff (" + ", ".join(staff) + ")")
    if Role.CARDHOLDER in roles:
        kinds.append("cardholder")
    return "Token: " + "; ".join(kinds) + "." if kinds else ""


REQUEST_ID_HEADER = {
    "description": "The request's id (logs.RequestContext): the client's own X-Request-ID when it sent a short "
    "token (letters, digits, . _ : -, up to 64), else one the server made. Every answer carries it; quote it "
    "when reporting a problem.",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$"},
}
"""Answered on every response of every path (logs.RequestContext), so declared on every response here."""

TIME_FORMATS = (("date-time", ("at", "_at", "_until")), ("date", ("date", "_date", "_on", "_deadline")))
"""Times and dates are ISO text on the wire (datetime.isoformat: with their UTC offset; dates YYYY-MM-DD):
a string field named `at`, `*_at`, `*_until` is declared `format: date-time`, one named `date`, `*_date`, `*_on`,
`*_deadline` `format: date`, for code generators (RFC 3339). By the name, as masking is (responses._mask_for),
so a new field so named cannot be left out; tests/api/test_contract_formats.py checks real answers parse."""


def time_format(name: str) -> str | None:
    """The format a field of this name is declared with (TIME_FORMATS), or None."""
    for fmt, names in TIME_FORMATS:
        if name in names or name.endswith(tuple(n for n in names if n.startswith("_"))):
            return fmt
    return None


def _declare_time_formats(schema: dict) -> None:
    """`format` on every string property named as a time (TIME_FORMATS), in every component; the nullable
    ones (`anyOf` string | null) on their string branch. A property with a format of its own keeps it."""
    for component in schema.get("components", {}).get("schemas", {}).values():
        for name, prop in component.get("properties", {}).items():
            fmt = time_format(name)
            if fmt is None:
                continue
            for branch in [prop, *prop.get("anyOf", ())]:
                if branch.get("type") == "string" and "format" not in branch:
                    branch["format"] = fmt


RETRY_AFTER_STATUSES = frozenset({"429", "503"})
RETRY_AFTER_HEADER = {"description": "seconds to wait before trying again (api.main.retry_after)",
                      "schema": {"type": "integer", "minimum": 0}}
REFUSAL_HEADERS = {
    "WWW-Authenticate": {"description": "how to authenticate (RFC 9110 §11.6.1): `Bearer realm=\"sscard\"`",
                         "required": True, "schema": {"type": "string"}},
    "Allow": {"description": "every method the path serves (api.main.allowed_methods)",
              "required": True, "schema": {"type": "string"}},
    "Retry-After": RETRY_AFTER_HEADER,
}
STATUS_HEADERS = {"401": ("WWW-Authenticate",), "405": ("Allow",),
                  **{status: ("Retry-After",) for status in RETRY_AFTER_STATUSES}}
"""The headers a refusal of that status carries besides X-Request-ID (api.main's `answer` adds them), declared
on that status of every operation (components.headers): the contract names every header the server answers
with (session 25's contract probe: a 401's WWW-Authenticate and a 405's Allow were sent, never declared)."""


def _bound_whole_numbers(schema: dict, node: Any, seen: set[str]) -> None:
    """`minimum`/`maximum` on every integer of an input (a parameter, a request body, through its $refs and
    nested models) that has none of its own: the range the frame takes (http.WHOLE_NUMBER_MIN/MAX), so a
    client or a fuzzer reads from the contract what the server refuses (session 25's schemathesis run: ids and
    offsets declared as any integer, refused past 2^63)."""
    if isinstance(node, list):
        for item in node:
            _bound_whole_numbers(schema, item, seen)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[1]
        if name not in seen:
            seen.add(name)
            _bound_whole_numbers(schema, schema["components"]["schemas"][name], seen)
        return
    if node.get("type") == "integer":
        if "minimum" not in node and "exclusiveMinimum" not in node:
            node["minimum"] = WHOLE_NUMBER_MIN
        if "maximum" not in node and "exclusiveMaximum" not in node:
            node["maximum"] = WHOLE_NUMBER_MAX
    for key in ("properties", "items", "anyOf", "oneOf", "allOf", "additionalProperties"):
        sub = node.get(key)
        _bound_whole_numbers(schema, list(sub.values()) if isinstance(sub, dict) and key == "properties" else sub,
                             seen)


def build_openapi(api: FastAPI) -> dict:
    if api.openapi_schema:
        return api.openapi_schema
    schema = get_openapi(title=api.title, version=api.version, description=api.description, routes=api.routes)
    schema.setdefault("components", {}).setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "description": "Three audiences, one header `Authorization: Bearer <token>`. Staff tokens "
        "(`sscard user token`) act on /api/v1 outside /terminal; terminal tokens (one per ATM, POS, "
        "hospital/pharmacy or kiosk terminal) act only on /api/v1/terminal/...; cardholder tokens "
        "(`POST /api/v1/cardholder/login`, prefix `ch.`) act on the cardholder's own cards. docs/API.md.",
    }
    _declare_time_formats(schema)
    schema["components"].setdefault("headers", {}).update({"X-Request-ID": REQUEST_ID_HEADER, **REFUSAL_HEADERS})
    for methods in schema.get("paths", {}).values():
        for method, op in methods.items():
            if method in ("get", "post", "put", "patch", "delete"):
                for answer in op.get("responses", {}).values():
                    answer.setdefault("headers", {})["X-Request-ID"] = {"$ref": "#/components/headers/X-Request-ID"}
    routes = api_routes(api)
    ids = operation_ids(routes)
    for path, route in routes:
        decl, fn = route_declaration(route)
        for method in route.methods:
            op = schema["paths"][path][method.lower()]
            op["operationId"] = ids[(path, method.lower())]
            if needs_token(route):
                op["security"] = [{BEARER: []}]
            else:
                op["security"] = []
            codes = error_codes(decl, fn, route)
            op["x-error-codes"] = codes
            if decl is not None:
                roles = route_roles(decl, path)
                op["x-operation"] = decl.name
                op["x-roles"] = sorted(str(r) for r in roles)
                if decl.terminals and Role.TERMINAL in roles:
                    op["x-terminal-kinds"] = sorted(decl.terminals)
                note = _describe_token(decl, roles)
                if note:
                    op["description"] = (op.get("description", "") + "\n\n" + note).strip()
            for status in STATUS_HEADERS.keys() & op.get("responses", {}).keys():
                op["responses"][status].setdefault("headers", {}).update(
                    {name: {"$ref": f"#/components/headers/{name}"} for name in STATUS_HEADERS[status]})
            _bound_whole_numbers(schema, [p.get("schema") for p in op.get("parameters", [])], set())
            _bound_whole_numbers(schema, [media.get("schema") for media in
                                          ((op.get("requestBody") or {}).get("content") or {}).values()], set())
            for param in op.get("parameters", []):
                if param["in"] == "header" and param["name"].lower() == "idempotency-key":
                    param["name"] = "Idempotency-Key"
                    param["required"] = bool(decl is not None and decl.keyed)
                    # The header is a string or absent; FastAPI's schema of an optional header says "or null",
                    # which no header can be; an empty, blank or non-printable key is refused 422 (deps.KeyHeader).
                    param["schema"] = {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX,
                                       "pattern": IDEMPOTENCY_KEY_PATTERN, "title": "Idempotency-Key"}
                    param["description"] = (
                        "Required: a retry with the same key and body answers the first answer; another body "
                        "with this key is refused with idempotency_key_reused." if param["required"] else
                        "Optional here: the operation changes nothing a retry could apply twice."
                    )
            op["description"] = (op.get("description", "") + "\n\nError codes: " + ", ".join(codes) + ".").strip()
    api.openapi_schema = schema
    return schema


def install(api: FastAPI) -> None:
    api.openapi = lambda: build_openapi(api)  # type: ignore[method-assign]
