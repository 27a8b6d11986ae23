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


def language(request: Request) -> str:
    """zh unless the caller asks for English (?lang=en, a cookie, or Accept-Language)."""
    lang = request.query_params.get("lang") or request.cookies.get("lang")
    if not lang:
        accept = request.headers.get("accept-language", "")
        lang = "en" if accept.lower().startswith("en") else "zh"
    return "en" if lang.startswith("en") else "zh"
