"""Every paginated /api/v1 route answers a `next_before_id` only when a next page holds something.

Found (session 23's integrator): a statement whose last page held exactly `limit` entries answered a
cursor, and the client's next request got an empty page. The pages are cut in one place
(services.paging: one more row read than the page holds); this walks every route whose answer declares
a `next_before_id` (from the OpenAPI, so a new paginated route is walked or this test fails)."""

from __future__ import annotations

import pytest

from sscard.services import banking
from tests.ledger.helpers import activated
from tests.support import bearer


def _statement(city, app, n: int):
    """An account with exactly `n` entries (the opening credit and n-1 deposits), the path and a staff token."""
    card = activated(city, opening_fen=1_000)
    for i in range(n - 1):
        banking.deposit(app, city.actor("teller"), card.pan, 100 + i)
    return f"/api/v1/bank-accounts/{card.pan}/statement", city.token("teller"), "entries"


PAGINATED = {"/api/v1/bank-accounts/{pan}/statement": _statement}
"""Every route whose answer carries `next_before_id`, and how to give it exactly n items."""


def _paginated_paths(client) -> set[str]:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    found = set()
    for path, methods in schema["paths"].items():
        for op in methods.values():
            ref = op.get("responses", {}).get("200", {}).get("content", {}).get("application/json", {}) \
                .get("schema", {}).get("$ref", "")
            if ref and "next_before_id" in components[ref.rsplit("/", 1)[-1]].get("properties", {}):
                found.add(path)
    return found


def test_every_paginated_route_is_walked(client):
    assert _paginated_paths(client) == set(PAGINATED)


@pytest.mark.parametrize("path", sorted(PAGINATED))
@pytest.mark.parametrize("limit", [3, 4])
def test_a_last_page_of_exactly_limit_items_answers_no_cursor(city, app, client, path, limit):
    """Six items, pages of three: the second page is the last and says so; pages of four: a cursor to a
    page of two, which is the last."""
    url, token, items = PAGINATED[path](city, app, 6)
    seen, before, pages = [], None, 0
    while True:
        params = {"limit": limit, **({"before_id": before} if before is not None else {})}
        page = client.get(url, params=params, headers=bearer(token))
        assert page.status_code == 200, page.text
        body = page.json()
        assert body[items], f"page {pages + 1} is empty: the previous page's cursor led nowhere"
        seen += [e["id"] for e in body[items]]
        pages += 1
        before = body["next_before_id"]
        if before is None:
            break
    assert len(seen) == len(set(seen)) == 6 and pages == -(-6 // limit)
