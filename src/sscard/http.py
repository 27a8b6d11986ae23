"""What every HTTP channel (the API, the web pages, the voice webhook) reads off a request besides its
body: the language to answer in, and the client's address as the server sees it (for the login throttle).
Shared here so that no channel imports another's modules for it.

The client's address is the TCP peer, unless that peer is one of the configured reverse proxies (SSCARD_TRUSTED_PROXIES):
then X-Forwarded-For is read from the right, skipping our own proxies, and the first other address is
the client. From any other peer the header is ignored: a client must not choose its own address.
"""

from __future__ import annotations

import ipaddress

from fastapi import Request


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


LANGUAGES = ("zh", "en")  # what pages, messages and PDFs are written in; the first is the default


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
