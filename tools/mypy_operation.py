"""mypy plugin: a call of an @operation (services.operation.Operation) takes `idempotency_key=` besides the
arguments of the service function it declares.

`operation()` types its result as `Operation[P]`, P being the body's parameters after `op`, so mypy checks
every argument a channel passes. A ParamSpec cannot be given one keyword more (PEP 612), and every keyed
call passes `idempotency_key=`: this plugin adds `idempotency_key: str | None = None` to the signature of
`Operation.__call__` at each call, before any `**kwargs`. (pyproject.toml, [tool.mypy] plugins.)
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.nodes import ARG_NAMED_OPT, ARG_STAR2
from mypy.plugin import MethodSigContext, Plugin
from mypy.types import CallableType, NoneType, UnionType

OPERATION_CALL = "sscard.services.operation.Operation.__call__"
KEY = "idempotency_key"


def _with_key(ctx: MethodSigContext) -> CallableType:
    sig = ctx.default_signature
    if KEY in sig.arg_names:
        return sig
    key_type = UnionType([ctx.api.named_generic_type("builtins.str", []), NoneType()])
    kinds, names, types = list(sig.arg_kinds), list(sig.arg_names), list(sig.arg_types)
    at = kinds.index(ARG_STAR2) if ARG_STAR2 in kinds else len(kinds)
    kinds.insert(at, ARG_NAMED_OPT)
    names.insert(at, KEY)
    types.insert(at, key_type)
    return sig.copy_modified(arg_kinds=kinds, arg_names=names, arg_types=types)


class OperationPlugin(Plugin):
    def get_method_signature_hook(self, fullname: str) -> Callable[[MethodSigContext], CallableType] | None:
        return _with_key if fullname == OPERATION_CALL else None


def plugin(version: str) -> type[Plugin]:
    return OperationPlugin
