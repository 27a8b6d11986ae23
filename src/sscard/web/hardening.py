"""What a bank's security review asks of the web layer (issue 13), each in one place.

- `SecurityHeaders`: the ASGI wrapper around the whole application (outside even Starlette's error
  middleware, so 500s get them too) that puts the same headers on every answer: pages, API, static
  files, errors, redirects and the terminal lane.
- `set_cookie` / `delete_cookie`: every cookie sscard sets goes through here, HttpOnly, SameSite and
  Secure by the `cookie_secure` setting (on unless SSCARD_COOKIE_SECURE=false).
- `throttled`: a login page refused by the login throttle carries Retry-After.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import Request

# No inline script or style anywhere: templates load /static/htmx.min.js, /static/sscard.js and
# /static/sscard.css only, and
# base.html turns off htmx's injected indicator <style> and its eval (meta htmx-config).
CSP = ("default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
# Swagger UI (/docs) is FastAPI's page: scripts and CSS from jsDelivr and one inline script that starts
# it. That page alone gets the CDN and the hash of its own inline script (computed from the page
# served, which holds no request data), never 'unsafe-inline'.
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect"})
DOCS_CSP = ("default-src 'self'; script-src 'self' https://cdn.jsdelivr.net {hashes}; "
            "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
# Pages and API answers carry personal data: never kept by the browser or a shared cache. /static is
# code and CSS, cacheable.
PAGE_HEADERS = [(b"content-security-policy", CSP.encode()), *COMMON, (b"cache-control", b"no-store")]
STATIC_HEADERS = [(b"content-security-policy", CSP.encode()), *COMMON]
OURS = frozenset(name for name, _ in PAGE_HEADERS)
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)


class SecurityHeaders:
    """Plain ASGI (no BaseHTTPMiddleware): a few microseconds on the terminals' hot path."""

    def __init__(self, app):
        self.app = app

    def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        path = scope["path"]
        if path in DOCS_PATHS:
            return self._docs(scope, receive, send)
        extra = STATIC_HEADERS if path.startswith("/static/") else PAGE_HEADERS

        def send_with_headers(message):
            # a plain function handing back send's awaitable: no coroutine of its own per message
            if message["type"] == "http.response.start":
                # ASGI header names are lower-case; a route's own CSP or Cache-Control gives way to ours
                kept = [h for h in message.get("headers", ()) if h[0] not in OURS]
                message = {**message, "headers": kept + extra}
            return send(message)

        return self.app(scope, receive, send_with_headers)

    async def _docs(self, scope, receive, send):
        """The Swagger page is small: hold it, hash its inline scripts, then send it with its own CSP."""
        start: dict = {}
        body: list[bytes] = []

        async def hold(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        await self.app(scope, receive, hold)
        content = b"".join(body)
        hashes = " ".join(
            "'sha256-" + base64.b64encode(hashlib.sha256(m).digest()).decode() + "'"
            for m in _INLINE_SCRIPT.findall(content)
        )
        csp = DOCS_CSP.format(hashes=hashes).encode()
        kept = [(k, v) for k, v in start.get("headers", ()) if k.lower() not in OURS]
        headers = kept + [(b"content-security-policy", csp), *COMMON, (b"cache-control", b"no-store")]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": content})


# ---------------------------------------------------------------- cookies


def cookie_secure(request: Request) -> bool:
    return request.app.state.sscard.settings.cookie_secure


def set_cookie(response, request: Request, name: str, value: str, *, path: str = "/",
               samesite: str = "strict") -> None:
    """Every cookie: HttpOnly (no script reads it), SameSite strict unless said (a cross-site link or
    form never carries a session), Secure unless the operator turned it off."""
    response.set_cookie(name, value, path=path, httponly=True, samesite=samesite, secure=cookie_secure(request))


def delete_cookie(response, request: Request, name: str, *, path: str = "/", samesite: str = "strict") -> None:
    response.delete_cookie(name, path=path, httponly=True, samesite=samesite, secure=cookie_secure(request))


# ---------------------------------------------------------------- the login throttle on pages


def throttled(response, err):
    """A login page answering too_many_attempts: 429 with Retry-After (seconds)."""
    response.headers["Retry-After"] = str(err.params.get("seconds", 60))
    return response
