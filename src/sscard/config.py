"""Deployment settings (where the database is, the server key): not policy, not business rules."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: bytes
    var_dir: Path
    fast_hashing: bool = False  # tests only: cheaper argon2 parameters
    log_format: str = "plain"  # SSCARD_LOG_FORMAT: plain (uvicorn's lines) or json (one object per line)

    @classmethod
    def from_env(cls) -> Settings:
        var_dir = Path(os.environ.get("SSCARD_VAR_DIR", "var"))
        url = os.environ.get("SSCARD_DATABASE_URL") or f"sqlite:///{var_dir / 'sscard.db'}"
        log_format = os.environ.get("SSCARD_LOG_FORMAT", "").strip().lower() or "plain"
        if log_format not in ("plain", "json"):
            raise ValueError(f"SSCARD_LOG_FORMAT must be plain or json, not {log_format!r}")
        return cls(database_url=url, secret_key=load_secret_key(var_dir), var_dir=var_dir, log_format=log_format)


def load_secret_key(var_dir: Path) -> bytes:
    """SSCARD_SECRET_KEY (hex) wins; otherwise a key made once and kept in var/secret.key (mode 600)."""
    env = os.environ.get("SSCARD_SECRET_KEY")
    if env:
        key = bytes.fromhex(env)
        if len(key) < 16:
            raise ValueError("SSCARD_SECRET_KEY must be at least 16 bytes of hex")
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
