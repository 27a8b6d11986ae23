"""The committed OpenAPI (docs/openapi.json) and the check that the live one does not break it.

A break is what makes a client built on the snapshot fail: a removed route or method, a removed or
retyped answer field, a removed or retyped request field, a new required request field or parameter,
a narrowed enum, a changed operationId (generated clients name their functions by it). Anything else
that differs is additive: it breaks no one, but the snapshot must still be refreshed
(`sscard api snapshot`) so the committed file is always the contract the code serves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
METHODS = ("get", "post", "put", "patch", "delete")


def dump(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _resolve(schema: dict, node: Any, depth: int = 0) -> Any:
    while isinstance(node, dict) and "$ref" in node and depth < 50:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        depth += 1
    return node


def _type(schema: dict, node: Any) -> str:
    """A comparable name of a field's type (nullability and unions included)."""
    node = _resolve(schema, node)
    if not isinstance(node, dict):
        return "any"
    if "anyOf" in node or "oneOf" in node:
        return "|".join(sorted(_type(schema, n) for n in node.get("anyOf", node.get("oneOf", []))))
    kind = node.get("type", "object" if "properties" in node else "any")
    if kind == "array":
        return f"array[{_type(schema, node.get('items', {}))}]"
    return kind


def _fields(old: dict, new: dict, a: Any, b: Any, where: str, request: bool, out: list[str], depth: int = 0) -> None:
    a, b = _resolve(old, a), _resolve(new, b)
    if depth > 8 or not isinstance(a, dict) or not isinstance(b, dict):
        return
    if "enum" in a and "enum" in b and set(a["enum"]) - set(b["enum"]):
        out.append(f"{where}: enum narrowed, {sorted(set(a['enum']) - set(b['enum']))} removed")
    for key in ("anyOf", "oneOf"):
        for x in a.get(key, []):
            for y in b.get(key, []):
                if _type(old, x) == _type(new, y):
                    _fields(old, new, x, y, where, request, out, depth + 1)
    if a.get("type") == "array" and b.get("type") == "array":
        _fields(old, new, a.get("items"), b.get("items"), where + "[]", request, out, depth + 1)
    pa, pb = a.get("properties", {}), b.get("properties", {})
    for name, sub in pa.items():
        if name not in pb:
            out.append(f"{where}.{name}: {'request' if request else 'response'} field removed")
        elif _type(old, sub) != _type(new, pb[name]):
            out.append(f"{where}.{name}: retyped {_type(old, sub)} -> {_type(new, pb[name])}")
        else:
            _fields(old, new, sub, pb[name], f"{where}.{name}", request, out, depth + 1)
    if request:
        for name in set(b.get("required", ())) - set(a.get("required", ())):
            out.append(f"{where}.{name}: new required request field")


def _json_schema(op: dict, *path: str) -> Any:
    node: Any = op
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def breaking_changes(old: dict, new: dict) -> list[str]:
    """Every change of `new` that breaks a client of `old`, each named (method, path, field)."""
    out: list[str] = []
    for path, methods in old.get("paths", {}).items():
        for method, op in methods.items():
            if method not in METHODS:
                continue
            where = f"{method.upper()} {path}"
            nop = new.get("paths", {}).get(path, {}).get(method)
            if nop is None:
                out.append(f"{where}: route removed")
                continue
            if op.get("operationId") != nop.get("operationId"):
                out.append(f"{where}: operationId {op.get('operationId')} -> {nop.get('operationId')}")
            params = {(p["in"], p["name"].lower()): p for p in op.get("parameters", [])}
            nparams = {(p["in"], p["name"].lower()): p for p in nop.get("parameters", [])}
            for key, p in params.items():
                if key not in nparams:
                    out.append(f"{where}: parameter {key[1]} ({key[0]}) removed")
                elif _type(old, p.get("schema")) != _type(new, nparams[key].get("schema")):
                    out.append(f"{where}: parameter {key[1]} retyped")
                else:
                    _fields(old, new, p.get("schema"), nparams[key].get("schema"), f"{where} {key[1]}", True, out)
            for key, p in nparams.items():
                if p.get("required") and not params.get(key, {}).get("required"):
                    out.append(f"{where}: new required parameter {key[1]} ({key[0]})")
            body = _json_schema(op, "requestBody", "content", "application/json", "schema")
            nbody = _json_schema(nop, "requestBody", "content", "application/json", "schema")
            if body is not None and nbody is None:
                out.append(f"{where}: request body removed")
            elif nbody is not None and body is None and nop.get("requestBody", {}).get("required"):
                out.append(f"{where}: new required request body")
            elif body is not None:
                _fields(old, new, body, nbody, f"{where} body", True, out)
            for status, answer in op.get("responses", {}).items():
                if not status.startswith("2"):
                    continue
                nanswer = nop.get("responses", {}).get(status)
                if nanswer is None:
                    out.append(f"{where}: {status} answer removed")
                    continue
                for media in answer.get("content", {}):
                    if media not in nanswer.get("content", {}):
                        out.append(f"{where}: {status} {media} answer removed")
                a = _json_schema(answer, "content", "application/json", "schema")
                b = _json_schema(nanswer, "content", "application/json", "schema")
                if a is not None and b is not None:
                    _fields(old, new, a, b, f"{where} {status}", False, out)
    return out


def compare(old: dict, new: dict) -> tuple[list[str], bool]:
    """(the breaks, whether anything differs at all)."""
    return breaking_changes(old, new), dump(old) != dump(new)


def write(live: dict, path: Path = SNAPSHOT) -> Path:
    """Commit `live` (the composed server's `openapi()`) as the contract."""
    path.write_text(dump(live), encoding="utf-8")
    return path
