"""Deployment settings (where the database is, the server key): not policy, not business rules."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

SUPERVISOR_ENV = "SSCARD_SUPERVISOR_PID"  # set by `sscard serve --workers N` for its workers (sscard.asgi)


class SettingsError(ValueError):
    """A deployment setting (an SSCARD_* variable) with a value that cannot be used: start-up stops with its
    message, which names the variable (never a secret's value)."""


@dataclass(frozen=True)
class Settings:
    database_url: str = field(repr=False)  # it may carry the database password
    secret_key: bytes = field(repr=False)  # never in a log, a traceback or a test report
    var_dir: Path
    fast_hashing: bool = False  # tests only: cheaper argon2 parameters
    log_format: str = "plain"  # SSCARD_LOG_FORMAT: plain (uvicorn's lines) or json (one object per line)
    # Every cookie is Secure unless SSCARD_COOKIE_SECURE=false (README, Configuration): no guessing from
    # the bind address or the Host header, which a reverse proxy on the same machine makes look local.
    cookie_secure: bool = True
    # The login throttle's counters (limits' storage URI): memory:// in this process, or redis://...
    # so that every worker and server shares them.
    rate_limit_storage: str = "memory://"
    # Addresses (or networks) of reverse proxies whose X-Forwarded-For names the client; from any
    # other peer the header is ignored (else a client would pick its own address for the throttle).
    trusted_proxies: tuple[str, ...] = ()
    # The telephony webhooks (/api/v1/hotline/{line}/voice|status) are public routes: their only proof of
    # coming from the telephony provider is X-Twilio-Signature under this token (SSCARD_TWILIO_AUTH_TOKEN).
    # Without it they are refused, unless SSCARD_HOTLINE_UNSIGNED=true says this is a demo whose hotline
    # anyone may drive (make run does, and says so): an IVR that reports losses must not be open by omission.
    twilio_auth_token: str | None = field(default=None, repr=False)
    hotline_unsigned: bool = False
    # The public base URL the telephony provider calls (SSCARD_HOTLINE_PUBLIC_URL, e.g.
    # https://sscard.example.cn): Twilio signs the URL it requested, and behind a TLS-terminating reverse
    # proxy the server sees another one (http://127.0.0.1:8000/...). When set, a webhook's signature is
    # checked against this base with the request's own path and query; unset, against the URL as received.
    hotline_public_url: str | None = None
    # The public base URL people reach the site at (SSCARD_PUBLIC_URL, e.g. https://sscard.example.cn):
    # printed on every proof of insurance as its check page's address and in its QR code. Unset (a demo, a
    # test), the address the request came to is printed, which a proxy passing any Host header lets a
    # requester choose. It is also the hotline's base when SSCARD_HOTLINE_PUBLIC_URL is not set.
    public_url: str | None = None
    # Where the server's audit-chain sealer runs (SSCARD_AUDIT_SEALER): "thread", in the server's own
    # interpreter, or "process", a process of its own that the server starts and stops (its hashing then
    # never holds the interpreter lock the requests need). From the environment the default is "process"
    # on PostgreSQL, "thread" on SQLite, where a second process would wait on the file's write lock
    # against the writer's group commits instead of taking turns with it in one process.
    audit_sealer: str = "thread"

    @classmethod
    def from_env(cls) -> Settings:
        var_dir = Path(os.environ.get("SSCARD_VAR_DIR", "var"))
        url = parse_database_url("SSCARD_DATABASE_URL",
                                 os.environ.get("SSCARD_DATABASE_URL") or f"sqlite:///{var_dir / 'sscard.db'}")
        log_format = os.environ.get("SSCARD_LOG_FORMAT", "").strip().lower() or "plain"
        if log_format not in ("plain", "json"):
            raise SettingsError(f"SSCARD_LOG_FORMAT must be plain or json, not {log_format!r}")
        sealer = os.environ.get("SSCARD_AUDIT_SEALER", "").strip().lower() or (
            "process" if url.startswith("postgresql") else "thread")
        if sealer not in ("thread", "process"):
            raise SettingsError(f"SSCARD_AUDIT_SEALER must be thread or process, not {sealer!r}")
        public_url = parse_public_url("SSCARD_PUBLIC_URL", os.environ.get("SSCARD_PUBLIC_URL", ""))
        return cls(
            database_url=url,
            secret_key=load_secret_key(var_dir),
            var_dir=var_dir,
            log_format=log_format,
            cookie_secure=parse_bool("SSCARD_COOKIE_SECURE", os.environ.get("SSCARD_COOKIE_SECURE", "true")),
            rate_limit_storage=parse_rate_limit_storage(os.environ.get("SSCARD_RATE_LIMIT_STORAGE", "")),
            trusted_proxies=parse_networks(os.environ.get("SSCARD_TRUSTED_PROXIES", "")),
            twilio_auth_token=os.environ.get("SSCARD_TWILIO_AUTH_TOKEN") or None,
            hotline_unsigned=parse_bool("SSCARD_HOTLINE_UNSIGNED", os.environ.get("SSCARD_HOTLINE_UNSIGNED", "false")),
            hotline_public_url=parse_public_url("SSCARD_HOTLINE_PUBLIC_URL",
                                                os.environ.get("SSCARD_HOTLINE_PUBLIC_URL", "")) or public_url,
            public_url=public_url,
            audit_sealer=sealer,
        )


def parse_database_url(name: str, text: str) -> str:
    """A database URL sscard can use: SQLite or PostgreSQL, in SQLAlchemy's form. Anything else stops the
    command in one line naming the setting, never repeating the URL (it may hold a password): session 27's
    operator got a 60-line traceback ending in "No module named 'MySQLdb'" or "Could not parse SQLAlchemy
    URL" from `sscard serve`, `doctor`, every command."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(text.strip()).get_backend_name()
    except (ArgumentError, ValueError):
        raise SettingsError(f"{name} is not a database URL: sqlite:///path/to/sscard.db or "
                            "postgresql+psycopg://user@host:port/database") from None
    if backend not in ("sqlite", "postgresql"):
        raise SettingsError(f"{name} names a {backend} database: sscard runs on SQLite or PostgreSQL "
                            "(sqlite:///... or postgresql+psycopg://...)")
    return text.strip()


def parse_rate_limit_storage(text: str) -> str:
    """The throttles' storage URI (limits): memory://, redis://..., or another synchronous storage limits knows.
    Checked at start: an unknown one started the server, whose every login and every authenticated API
    request then answered 500 (session 27). The URI is not repeated (a Redis URL may hold its password)."""
    from limits.storage import SCHEMES

    value = text.strip() or "memory://"
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in SCHEMES or scheme.startswith("async+"):
        raise SettingsError("SSCARD_RATE_LIMIT_STORAGE must be memory:// or redis://host:port/db "
                            f"(a storage URI of the limits library), not a {scheme or 'bare'!r} one")
    return value


def parse_bool(name: str, text: str) -> bool:
    """Only the usual spellings: a typo must stop start-up, not quietly turn a protection off."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {text!r}")


def parse_public_url(name: str, text: str) -> str | None:
    """A public base URL: http(s), a host, perhaps a path prefix (the part a proxy strips), no query or
    fragment; without its trailing slash. Empty: None. Anything else stops start-up naming the setting."""
    value = text.strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment \
            or parts.username or parts.password:
        raise SettingsError(f"{name} must be a base URL such as https://sscard.example.cn, not {text!r}")
    return value.rstrip("/")


def parse_networks(text: str) -> tuple[str, ...]:
    """Comma-separated addresses or networks (10.0.0.0/8); each is checked now, at start-up."""
    out = []
    for part in text.replace(" ", ",").split(","):
        if part:
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError as exc:  # its message names the bad entry
                raise SettingsError(f"SSCARD_TRUSTED_PROXIES: {exc}") from None
            out.append(part)
    return tuple(out)


def load_secret_key(var_dir: Path) -> bytes:
    """SSCARD_SECRET_KEY (hex) wins; otherwise a key made once and kept in var/secret.key (mode 600)."""
    env = os.environ.get("SSCARD_SECRET_KEY")
    if env:
        try:
            key = bytes.fromhex(env)
        except ValueError:
            raise SettingsError("SSCARD_SECRET_KEY must be hex (at least 32 hex digits)") from None
        if len(key) < 16:
            raise SettingsError("SSCARD_SECRET_KEY must be at least 16 bytes of hex")
        return key
    path = var_dir / "secret.key"
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    return key
