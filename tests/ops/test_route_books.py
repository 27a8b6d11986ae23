"""Each route is built once, by the app that serves it (http.RouteBook): FastAPI 0.165 built every route of
an included router twice, once at its decorator and once per inclusion, ~0.4 s of each restart."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter
from fastapi.routing import APIRoute

import sscard.api
import sscard.web
from sscard.http import RouteBook


def _channel_modules():
    for package in (sscard.api, sscard.web):
        for info in pkgutil.iter_modules(package.__path__):
            yield importlib.import_module(f"{package.__name__}.{info.name}")


def test_every_channel_router_is_a_route_book():
    routers = [(m.__name__, name, value) for m in _channel_modules() for name, value in vars(m).items()
               if isinstance(value, APIRouter)]
    assert routers, "no routers found: the walk is wrong"
    assert [(m, n) for m, n, v in routers if not isinstance(v, RouteBook)] == []


def test_the_app_holds_each_written_route_once_and_built_by_itself(client):
    server = client.app
    books = [value for m in _channel_modules() for value in vars(m).values() if isinstance(value, RouteBook)]
    written = [(r.path, r.methods) for book in books for r in book.written]
    built = [(r.path, frozenset(r.methods) - {"HEAD"}) for r in server.routes if isinstance(r, APIRoute)]
    assert len(written) > 100
    assert len(set(built)) == len(built)  # nothing built twice
    assert {(p, m - {"HEAD"}) for p, m in written} - set(built) == set()  # every written route is served
    assert {p for p, _ in set(built) - {(p, m - {"HEAD"}) for p, m in written}} == {"/metrics"}  # metrics.install's
    # no included router left: FastAPI would build an included router's routes again at the first request
    assert not [r for r in server.routes if type(r).__name__ == "_IncludedRouter"]


def test_a_route_book_refuses_what_it_cannot_carry_into_the_app():
    book = RouteBook(prefix="/x")
    for call in (lambda: book.include_router(APIRouter()), lambda: book.add_route("/y", lambda r: None)):
        try:
            call()
        except TypeError:
            continue
        raise AssertionError("a RouteBook took a non-API route")
