"""Group commit for the ledger's hot operations (terminal payments and transfers).

One background writer thread per App takes queued requests, runs each one's checks and transfers in
ONE database transaction (a savepoint per request, so a refusal does not spoil the batch), commits
once, then answers every caller. Each request still gets its own audit record and idempotency record,
exactly as the operation frame (services/operation.py) would write them; the answers are the same.

- A batch is whatever is queued when the writer comes round (up to `max_batch`), plus what arrives
  during a short linger (0.5 ms): an idle system answers almost at once, a busy one commits many
  requests per fsync.
- A serialization failure or deadlock reruns the whole batch (the work has no outside side effects).
- A request that meets something the batch cannot settle (a concurrent twin that stored the same
  idempotency key in another transaction, or a commit that fails for another reason) is answered by
  running it alone through the ordinary operation frame, in the caller's thread.

Use: `batching.call(app, banking.purchase, actor, pan, amount, pin, idempotency_key=key)`.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from ..core.errors import SscardError
from ..core.roles import Actor
from ..db import is_retryable
from ..models.foundation import AuditRecord, IdempotencyRecord
from . import access
from .app import App
from .operation import (
    _UNAUDITED_STATUSES,
    Op,
    _audit_record,
    _stored_error,
    jsonable,
    request_hash,
)

log = logging.getLogger("sscard.batching")

_ALONE = object()  # "answer this one through the ordinary frame"


@dataclass
class _Request:
    op_fn: Callable[..., Any]  # the @operation wrapper (for the fallback)
    fn: Callable[..., Any]  # the unwrapped service function
    name: str
    actor: Actor
    args: tuple
    kwargs: dict
    key: str | None
    future: Future = field(default_factory=Future)


class Batcher:
    def __init__(self, app: App, *, max_batch: int = 128, max_attempts: int = 10, linger: float = 0.0005):
        self.app = app
        self.linger = linger
        self.max_batch = max_batch
        self.max_attempts = max_attempts
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="sscard-ledger-writer", daemon=True)
        self._thread.start()
        self.batches = 0
        self.requests = 0

    # ---------------------------------------------------------------- callers

    def call(self, op_fn: Callable[..., Any], actor: Actor, *args: Any, idempotency_key: str | None = None,
             **kwargs: Any) -> Any:
        """Like `op_fn(app, actor, *args, idempotency_key=..., **kwargs)`, committed with others."""
        access.authorize(actor, op_fn.operation_name)
        if self._closed:
            return op_fn(self.app, actor, *args, idempotency_key=idempotency_key, **kwargs)
        req = _Request(op_fn, op_fn.unwrapped, op_fn.operation_name, actor, args, kwargs, idempotency_key)
        self._queue.put(req)
        out = req.future.result()
        if out is _ALONE:
            return op_fn(self.app, actor, *args, idempotency_key=idempotency_key, **kwargs)
        if isinstance(out, BaseException):
            raise out
        return out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=30)

    # ---------------------------------------------------------------- the writer

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            stop = self._drain(batch)
            if not stop and self.linger and len(batch) < self.max_batch:
                time.sleep(self.linger)  # let callers that were just answered queue their next request
                stop = self._drain(batch)
            try:
                self._process(batch)
            except BaseException as exc:  # never leave a caller waiting
                log.exception("batch failed")
                for req in batch:
                    if not req.future.done():
                        req.future.set_result(exc)
            if stop:
                break
        while True:  # closing: whoever is still queued goes through the ordinary frame
            try:
                req = self._queue.get_nowait()
            except queue.Empty:
                break
            if req is not None:
                req.future.set_result(_ALONE)

    def _drain(self, batch: list[_Request]) -> bool:
        """Take what is queued (up to max_batch); True when close() asked the writer to stop."""
        while len(batch) < self.max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                return False
            if nxt is None:
                return True
            batch.append(nxt)
        return False

    def _process(self, batch: list[_Request]) -> None:
        outcomes: list[Any] = []
        for attempt in range(1, self.max_attempts + 1):
            outcomes = []
            try:
                # On PostgreSQL the stored answers are read outside the SERIALIZABLE transaction, as the
                # operation frame does (reading the idempotency index inside it takes predicate locks that
                # make every keyed writer conflict); a twin stored meanwhile fails the batch's insert and is
                # then answered alone through the frame.
                outside = self.app.db.dialect == "postgresql"
                if outside:
                    with self.app.db.read_committed() as rc:
                        known = self._known_keys(rc, batch)
                with self.app.db.session() as session:
                    audits: list[dict] = []
                    keys = known if outside else self._known_keys(session, batch)
                    _prefetch_accounts(session, batch)
                    for req in batch:
                        outcomes.append(self._one(session, req, audits, keys))
                    # every request's audit and idempotency record, written together (one executemany each)
                    if audits:
                        session.execute(insert(AUDITS), audits)
                    fresh = [rec for rec in keys.values() if not rec.get("stored")]
                    if fresh:
                        session.execute(insert(KEYS), fresh)
                break
            except Exception as exc:
                if is_retryable(exc) and attempt < self.max_attempts:
                    time.sleep(min(0.1, 0.002 * 2**attempt) * (0.5 + random.random()))
                    continue
                log.warning("batch of %d could not commit (%s): answering one by one", len(batch),
                            type(exc).__name__)
                outcomes = [_ALONE] * len(batch)
                break
        self.batches += 1
        self.requests += len(batch)
        for req, out in zip(batch, outcomes, strict=True):
            req.future.set_result(out)

    @staticmethod
    def _known_keys(session: Session, batch: list[_Request]) -> dict[tuple[str, str], dict]:
        """The idempotency records already stored for this batch's keys, in one query."""
        wanted = {(f"{r.actor.kind}:{r.actor.id}"[:48], r.key) for r in batch if r.key}
        if not wanted:
            return {}
        rows = session.execute(_SELECT_KEYS, {"keys": sorted({k for _s, k in wanted})}).all()
        return {(r.scope, r.key): {**r._asdict(), "stored": True} for r in rows if (r.scope, r.key) in wanted}

    def _one(self, session: Session, req: _Request, audits: list[dict], keys: dict) -> Any:
        """One request in its own savepoint, answered exactly as operation.execute would answer it."""
        app, actor, name, key = self.app, req.actor, req.name, req.key
        scope = f"{actor.kind}:{actor.id}"[:48]
        req_hash = request_hash(name, req.args, req.kwargs, app.settings.secret_key) if key else ""
        if key:
            seen = keys.get((scope, key))  # stored before this batch, or by an earlier request of it
            if seen is not None:
                if seen["request_hash"] != req_hash:
                    return SscardError("idempotency_key_reused")
                payload = json.loads(seen["response"])
                return _stored_error(payload) if seen["status"] >= 400 else payload
        savepoint = session.begin_nested()
        op = Op(app, session, actor, name, key)

        def remember(status: int, payload: Any) -> None:
            if key:
                keys[(scope, key)] = {"scope": scope, "key": key, "request_hash": req_hash, "status": status,
                                      "response": json.dumps(jsonable(payload), ensure_ascii=False),
                                      "created_at": op.now}

        try:
            try:
                result = req.fn(op, *req.args, **req.kwargs)
            except SscardError as err:
                if not err.commit:
                    savepoint.rollback()
                    if err.status not in _UNAUDITED_STATUSES and err.code != "idempotency_key_reused":
                        audits.append(_row(_audit_record(actor, name, op.now, key, err.code, op._audit)))
                    return err
                savepoint.commit()
                audits.append(_row(_audit_record(actor, name, op.now, key, err.code, op._audit)))
                remember(err.status, {"code": err.code, "params": err.params})
                return err
            result = jsonable(result)
            savepoint.commit()
            audits.append(_row(_audit_record(actor, name, op.now, key, "ok", op._audit)))
            remember(200, result)
            return result
        except Exception as exc:
            if savepoint.is_active:
                savepoint.rollback()
            if is_retryable(exc):
                raise
            return _ALONE  # settled alone, through the ordinary frame


AUDITS = AuditRecord.__table__
KEYS = IdempotencyRecord.__table__
_AUDIT_COLUMNS = [c.key for c in AUDITS.columns if c.key != "id"]
_SELECT_KEYS = select(KEYS.c.scope, KEYS.c.key, KEYS.c.request_hash, KEYS.c.status, KEYS.c.response).where(
    KEYS.c.key.in_(bindparam("keys", expanding=True)))


def _prefetch_accounts(session: Session, batch: list[_Request]) -> None:
    """Every PAN the batch names (positional arguments of 19 digits), loaded in one query."""
    from .banking import prefetch_accounts

    pans = {a for r in batch for a in r.args if isinstance(a, str) and len(a) == 19 and a.isdigit()}
    prefetch_accounts(session, pans)


def _row(record: AuditRecord) -> dict:
    return {c: getattr(record, c) for c in _AUDIT_COLUMNS}


_lock = threading.Lock()


def batcher(app: App) -> Batcher:
    """The App's one writer (created on first use; App.close() stops it)."""
    found = app.extras.get("ledger_batcher")
    if found is not None:
        return found
    with _lock:
        found = app.extras.get("ledger_batcher")
        if found is None:
            found = app.extras["ledger_batcher"] = Batcher(app)
        return found


def call(app: App, op_fn: Callable[..., Any], actor: Actor, *args: Any, idempotency_key: str | None = None,
         **kwargs: Any) -> Any:
    return batcher(app).call(op_fn, actor, *args, idempotency_key=idempotency_key, **kwargs)
