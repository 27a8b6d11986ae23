"""Which declared operation (services.access) a route's endpoint calls: read from the endpoint's code, once.

The contract (api/contract.py) writes it into the OpenAPI, the lane (api/terminal_lane.py) picks its routes
by it, and the API's dependencies (api/deps.py) name it in the audit record of a caller refused before the
endpoint runs. Kept apart so that the dependencies need not import the contract, which imports them."""

from __future__ import annotations

import dis
import functools
from typing import Any

from fastapi.routing import APIRoute

from ..services.access import Declaration


def operation_functions(endpoint) -> list:
    """The decorated service functions an endpoint calls (`module.fn` or `fn`, found in its bytecode,
    nested functions and lambdas included: a login passes its call to the throttle as a lambda)."""
    found: list = []
    codes = [endpoint.__code__]
    while codes:
        code = codes.pop(0)
        last = None
        for ins in dis.get_instructions(code):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                last = endpoint.__globals__.get(ins.argval)
            elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and last is not None:
                last = getattr(last, ins.argval, None)
            else:
                continue
            if getattr(last, "declaration", None) is not None and last not in found:
                found.append(last)
        codes.extend(c for c in code.co_consts if hasattr(c, "co_code"))
    return found


@functools.cache
def _first_operation(endpoint: Any) -> Any:
    """The first declared operation the endpoint calls, or None: read from its code once per endpoint."""
    fns = operation_functions(endpoint)
    return fns[0] if fns else None


def route_declaration(route: APIRoute) -> tuple[Declaration | None, Any]:
    fn = _first_operation(route.endpoint)
    return (fn.declaration, fn) if fn is not None else (None, None)


def route_declaration_of(route: Any) -> Declaration | None:
    """The declaration of the operation the matched route (`scope["route"]`) calls, if it calls one."""
    endpoint = getattr(route, "endpoint", None)
    fn = _first_operation(endpoint) if endpoint is not None else None
    return fn.declaration if fn is not None else None


def route_operation(route: Any) -> str | None:
    """The name of the operation the matched route (`scope["route"]`) calls, if it calls one."""
    decl = route_declaration_of(route)
    return decl.name if decl is not None else None
