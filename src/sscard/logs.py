"""Logging that never shows a secret or an identifier in clear and never breaks (RULES §2, §4).

Three layers, each enough for what it covers, so that one forgotten call site cannot leak:
- `MaskingFilter` (on the loggers and handlers sscard and uvicorn log through) cleans each record in
  place without changing its shape: the message template and every string argument separately (uvicorn's
  access formatter unpacks its 5 arguments), the formatted exception and stack. Cleaning = identifiers
  masked (`core.identifiers.mask_text`), values under secret keys (pin, password, token, citizen_id,
  input, ...) replaced by `***` in any dict, JSON or query string a line holds, and every text capped.
- The handlers' formatters are wrapped (`MaskingFormatter`) or replaced (`JsonFormatter`): the finished
  line is cleaned again and capped, and a formatter that fails falls back to a plain line instead of
  a `--- Logging error ---` traceback on stderr.
- Request bodies are never logged, and `scrub_validation_error` takes the client's input out of a
  validation error before anything could log it or chain it into a traceback.

`SSCARD_LOG_FORMAT=json` makes every line one JSON object with the request id, actor kind and operation
(`RequestContext` middleware, `note_actor`, `note_operation`)."""

from __future__ import annotations

import copy
import itertools
import json
import logging
import numbers
import os
import re
import sys
import unicodedata
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime

from .core.identifiers import mask_text

MAX_TEXT = 2048  # one message or argument
MAX_LINE = 4096  # one physical line of output
MAX_BLOCK = 16384  # a whole traceback (plain: over many lines)
MAX_JSON = 8192  # one JSON line, a traceback included (its first and last frames kept)
FORMATS = ("plain", "json")

# Key names whose values are secrets or personal data (a query string's name and birth date too). A key is
# matched as whole underscore-separated words (new_pin, pin_again, presented_citizen_id, input_value),
# never inside another word (shipping, username).
_SECRET_WORDS = (
    r"pins?|passwords?|passwd|pwd|passcode|token|tokens|secret|secrets|authorization|cookie|"
    r"citizen_id|id_number|input|body|csrf_token|api_key|key_hex|ss_number|name|birth_date|old|new"
)  # old/new: a PIN or password change's arguments (every operation's declared secrets: a test checks)
_SECRET_KEY = re.compile(
    r"""(?<![\w-])(?P<q>["']?)(?:[A-Za-z]+_)*(?:""" + _SECRET_WORDS + r""")(?:_[A-Za-z]+)*(?P=q)\s*[:=]\s*""",
    re.IGNORECASE,
)
# What a text must hold for a secret key to be in it, searched in the lowered text (a case-insensitive
# regex alternation cost ~45 µs on an access line, this well under 1 µs).
_SECRET_HINT = re.compile("pin|pass|pwd|token|secret|authoriz|cookie|citizen|id_number|input|body|csrf|api_key|"
                          "key_hex|ss_number|name|birth|old|new")
_UNQUOTED_END = re.compile(r"[\s,;&)}\]]")
_CLOSERS = {"{": "}", "[": "]", "(": ")"}


def _value_end(text: str, start: int) -> int:
    """Where the value starting at `start` ends: a quoted string, a bracketed structure or a bare word."""
    if start >= len(text):
        return start
    first = text[start]
    if first in "'\"":
        i = start + 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == first:
                return i + 1
            i += 1
        return len(text)
    if first in _CLOSERS:
        depth, quote, i = 0, "", start
        while i < len(text):
            c = text[i]
            if quote:
                if c == "\\":
                    i += 1
                elif c == quote:
                    quote = ""
            elif c in "'\"":
                quote = c
            elif c in _CLOSERS:
                depth += 1
            elif c in "}])":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return len(text)
    m = _UNQUOTED_END.search(text, start)
    end = m.start() if m else len(text)
    if text[start:end].lower() in ("bearer", "basic") and end < len(text):  # Authorization: Bearer <token>
        m = _UNQUOTED_END.search(text, end + 1)
        end = m.start() if m else len(text)
    return end


def mask_secrets(text: str) -> str:
    """Replace the value of every secret-named key (`'pin': '460245'`, `"password":"..."`, `pin=...`) by ***."""
    if not _SECRET_HINT.search(text.lower()):
        return text
    out, pos = [], 0
    while True:
        m = _SECRET_KEY.search(text, pos)
        if m is None:
            break
        start = m.end()
        end = _value_end(text, start)
        if end == start:
            out.append(text[pos:start])
            pos = start
            continue
        quote = text[start] if text[start] in "'\"" else ""
        out.append(text[pos:start] + f"{quote}***{quote}")
        pos = end
    out.append(text[pos:])
    return "".join(out)


def cap(text: str, limit: int = MAX_TEXT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"…[{len(text) - limit} chars cut]"


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """One text as it may appear in a log, masked and capped. Only a little more than what is kept is
    masked (a 1 MB field costs no masking time), enough that no identifier is cut before it is masked.
    Secret keys' values first (a value's escaped space must not end it), then identifiers, percent-escaped
    ones included."""
    if len(text) <= limit:
        return mask_text(unescape_identifiers(mask_secrets(text)))
    return mask_text(unescape_identifiers(mask_secrets(text[: limit + 64])))[:limit] + f"…[{len(text) - limit} chars cut]"


_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_KEPT_SPACES = frozenset(" +\t\u3000\u00a0")


def unescape_identifiers(text: str) -> str:
    """Percent-escapes that stand for characters an identifier is read from, decoded so that the masking
    sees them: `/bank-accounts/6217%200073%201067%201442%20606/statement`, `%EF%BC%96...` (full-width digits)
    and `%36%32...` addressed an account and were logged in clear (session 27; the server reads identifiers
    as typed, `core.identifiers.normalise`). Anything else stays escaped (a line break never enters a line)."""
    if "%" not in text:
        return text
    return _PERCENT_RUN.sub(_decoded_if_identifier, text)


def _decoded_if_identifier(match: re.Match[str]) -> str:
    escaped = match.group(0)
    try:
        decoded = bytes.fromhex(escaped.replace("%", "")).decode("utf-8")
    except UnicodeDecodeError:
        return escaped
    for ch in decoded:
        folded = unicodedata.normalize("NFKC", ch)
        if ch not in _KEPT_SPACES and not (len(folded) == 1 and folded.isascii() and folded.isalnum()):
            return escaped
    return decoded


def clean_block(text: str) -> str:
    """A multi-line text (a traceback): each line cleaned and capped, the whole kept to MAX_BLOCK."""
    if len(text) > MAX_BLOCK:
        head = MAX_BLOCK // 4
        text = text[:head] + f"\n…[{len(text) - MAX_BLOCK} chars cut]…\n" + text[-(MAX_BLOCK - head):]
    return "\n".join(clean(line, MAX_LINE) for line in text.split("\n"))


class _Masked:
    """An argument that is neither text nor number, shown cleaned by %s and %r alike."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return clean(str(self.value))

    def __repr__(self) -> str:
        return clean(repr(self.value))


def _clean_arg(value: object) -> object:
    if isinstance(value, str):
        return clean(value)
    if value is None or isinstance(value, numbers.Number):  # %d, %f and uvicorn's int(status) keep working
        return value
    return _Masked(value)


# ---- the request's context: request id, actor kind, operation -------------------------------------------


class RequestLog:
    """What the log lines of one request carry. One mutable object per request: the actor and the
    operation are noted on it from wherever they become known (a dependency, a thread-pool thread,
    a task of a middleware), which all see the same object through copies of the context."""

    __slots__ = ("request_id", "actor_kind", "actor_role", "operation")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.actor_kind = self.actor_role = self.operation = None


_REQUEST: ContextVar[RequestLog | None] = ContextVar("sscard_request_log", default=None)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Generated ids: this process's random prefix and a counter (uuid4 cost ~9 µs a request here, this ~1).
_ID_PREFIX, _ID_COUNTER = os.urandom(6).hex(), itertools.count(1)


def current_request() -> RequestLog | None:
    return _REQUEST.get()


def note_actor(actor) -> None:
    """The caller of the current request, once resolved (api/deps.py, the operation frame)."""
    req = _REQUEST.get()
    if req is not None and actor is not None:
        req.actor_kind = actor.kind
        req.actor_role = str(actor.role)


def note_operation(name: str, actor=None) -> None:
    """The `@operation`/`@query` running for the current request (services/operation.py)."""
    req = _REQUEST.get()
    if req is not None:
        req.operation = name
        if actor is not None:
            req.actor_kind = actor.kind
            req.actor_role = str(actor.role)


class RequestContext:
    """ASGI middleware: a request id per HTTP request (the client's `X-Request-ID` when it is a short
    token, else a new one), kept in a contextvar for the log lines and returned as `X-Request-ID`."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                text = value.decode("latin-1")
                if _REQUEST_ID.fullmatch(text) and mask_text(text) == text:
                    request_id = text
                break
        if request_id is None:
            request_id = f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers")
                if type(headers) is list:  # Starlette's responses: the response's own list, sent once
                    headers.append(header)
                else:
                    message = {**message, "headers": [*(headers or ()), header]}
            await send(message)

        token = _REQUEST.set(RequestLog(request_id))
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _REQUEST.reset(token)


# ---- filter and formatters -------------------------------------------------------------------------------


class MaskingFilter(logging.Filter):
    """Cleans each record in place, keeping its shape (msg and args stay a template and its arguments),
    and stamps it with the request's context. A record passing several handlers is cleaned once."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.__dict__.get("_sscard_clean"):
            return True
        record._sscard_clean = True
        req = _REQUEST.get()
        if req is not None and "request_id" not in record.__dict__:
            record.request_id = req.request_id
            record.actor_kind = req.actor_kind
            record.actor_role = req.actor_role
            record.operation = req.operation
        try:
            self._clean(record)
        except Exception:  # noqa: BLE001  (never lose the line: fall back to a cleaned plain text)
            record.msg, record.args = clean(_safe_str(record.msg)), None
        return True

    @staticmethod
    def _clean(record: logging.LogRecord) -> None:
        args = record.args
        if not isinstance(record.msg, str):
            record.msg = str(record.msg)
        if args:
            record.msg = mask_text(cap(record.msg))  # a template: secret-key masking could eat a %s
            if isinstance(args, Mapping):
                record.args = {k: _clean_arg(v) for k, v in args.items()}
            elif isinstance(args, tuple):
                record.args = tuple(_clean_arg(a) for a in args)
            if record.name != "uvicorn.access":  # a secret split between template and argument: format then store
                try:
                    message = record.getMessage()
                except Exception:  # noqa: BLE001
                    message = None
                if message is not None and clean(message, MAX_LINE) != message:
                    record.msg, record.args = clean(message, MAX_LINE), None
        else:
            record.msg = clean(record.msg, MAX_LINE)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = clean_block(record.exc_text)
        if record.stack_info:
            record.stack_info = clean_block(record.stack_info)


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001
        return f"<{type(value).__name__}>"


def _fallback(record: logging.LogRecord) -> str:
    """A line for a record its formatter could not format: never the arguments unless cleaned."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001
        message = f"{_safe_str(record.msg)} {_safe_str(record.args)}"
    return f"{record.levelname}: {record.name}: {message}"


class MaskingFormatter(logging.Formatter):
    """Wraps a handler's formatter: its line, cleaned and capped; a failure gives a plain line."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        try:
            text = self.inner.format(record)
        except Exception:  # noqa: BLE001
            text = _fallback(record)
        if record.__dict__.get("_sscard_clean") and len(text) <= MAX_LINE:
            return text  # its parts were cleaned by the filter (the common case: one short line)
        return clean_block(text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request's context, uvicorn's access
    fields, the exception. Every value is cleaned; the object never spans two lines."""

    def __init__(self, *args, previous: logging.Formatter | None = None, **kwargs) -> None:
        super().__init__()
        self.previous = previous

    def format(self, record: logging.LogRecord) -> str:
        out: dict = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            out["message"] = clean(f'{client} - "{method} {path} HTTP/{version}" {status}')
            out.update(method=clean(str(method)), path=clean(str(path)), status=status, client=clean(str(client)))
        else:
            try:
                out["message"] = clean(record.getMessage(), MAX_LINE)
            except Exception:  # noqa: BLE001
                out["message"] = clean(_fallback(record), MAX_LINE)
        req = _REQUEST.get()
        fields = record.__dict__
        for name in ("request_id", "actor_kind", "actor_role", "operation"):
            value = fields.get(name, getattr(req, name, None) if req is not None else None)
            if value is not None:
                out[name] = clean(str(value), 128)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = clean_block(record.exc_text)
        if record.stack_info:
            out["stack"] = clean_block(record.stack_info)
        line = json.dumps(out, ensure_ascii=False, default=str)
        for name in ("stack", "exc"):  # over the budget: cut the middle of the long texts
            if len(line) > MAX_JSON and name in out:
                text = out[name]
                keep = max(200, len(text) - (len(line) - MAX_JSON) - 100)
                out[name] = text[: keep // 4] + f"\n…[{len(text) - keep} chars cut]…\n" + text[-(keep - keep // 4):]
                line = json.dumps(out, ensure_ascii=False, default=str)
        return line


# ---- installation ----------------------------------------------------------------------------------------

_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")


def _wrap(handler: logging.Handler, fmt: str) -> None:
    if not any(isinstance(f, MaskingFilter) for f in handler.filters):
        handler.addFilter(MaskingFilter())
    current = handler.formatter
    if fmt == "json":
        if not isinstance(current, JsonFormatter):
            handler.setFormatter(JsonFormatter(previous=current))
    elif isinstance(current, JsonFormatter):
        handler.setFormatter(MaskingFormatter(current.previous))
    elif not isinstance(current, MaskingFormatter):
        handler.setFormatter(MaskingFormatter(current))


def install_logging(fmt: str = "plain") -> None:
    """Clean and (json) format every line of the root and uvicorn loggers' handlers; idempotent.

    Called by the ASGI app at creation, i.e. after uvicorn has configured its loggers, in every worker.
    A root logger without handlers gets one on stderr (sscard's own warnings went to Python's
    last-resort handler, which no filter reaches)."""
    if fmt not in FORMATS:
        raise ValueError(f"SSCARD_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:  %(name)s: %(message)s"))
        root.addHandler(handler)
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, MaskingFilter) for f in logger.filters):
            logger.addFilter(MaskingFilter())
        for handler in logger.handlers:
            _wrap(handler, fmt)


install_masking = install_logging  # the former name


def uvicorn_log_config(fmt: str = "plain") -> dict:
    """uvicorn's own logging configuration with the filter on every handler and, for json, the JSON
    formatter: `sscard serve` passes it so that even the supervisor's lines are cleaned (and JSON)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"mask": {"()": "sscard.logs.MaskingFilter"}}
    config["formatters"]["root"] = {**config["formatters"]["default"], "fmt": "%(levelprefix)s %(name)s: %(message)s"}
    if fmt == "json":
        config["formatters"] = {name: {"()": "sscard.logs.JsonFormatter"} for name in config["formatters"]}
    for handler in config["handlers"].values():
        handler["filters"] = ["mask"]
    config["handlers"]["root"] = {**config["handlers"]["default"], "formatter": "root"}
    config["root"] = {"handlers": ["root"], "level": "WARNING"}
    return config
