"""Group commit for every operation declared `@operation(..., batched=True)` (money and failure counters).

One background writer thread per App takes queued requests, runs each through the operation frame's own
steps (operation.Request: replay, body, audit and refusal records, idempotency record; the same objects
the one-by-one path uses) in ONE database transaction, commits once, then answers every caller. Only how
the records are stored differs (one statement per table for the batch); the answers are the same.

The ledger's book (services/book) holds the batch's accounts in memory: each is read once, every
request's checks see the requests before it, and the transfers, balance changes, audit records and
idempotency records are written with one statement per table when the batch commits.

A refusal must leave nothing behind (the service functions decide refusals before they write, or raise
them with commit=True). The writer checks this for every refusal: if a refused request had recorded
anything in the book, run a write statement or left changed objects in the session, the batch is run
again without it and that request is answered alone, through the ordinary frame.

- A batch is whatever is queued when the writer comes round (up to `max_batch`), plus what arrives
  during a short linger (at most 0.5 ms, and only until the batch is as big as the recent ones): an
  idle system answers almost at once, a busy one commits many requests per fsync.
- A serialization failure or deadlock reruns the whole batch (the work has no outside side effects).
- A COMMIT whose answer is lost (PostgreSQL: the connection broke, the primary died) is resolved, never
  run again blindly: keyed requests by their idempotency records, the others by the batch's commit
  marker (db.Database.mark_commit/committed), written only when some request of the batch has no record.
- A request that meets something the batch cannot settle (an unexpected error, a refusal that wrote,
  a concurrent twin that stored the same idempotency key in another transaction, or a commit that
  fails for another reason) is answered by running it alone through the ordinary operation frame, by
  the writer itself after the batch (so it never competes with the writer's own batches).

Use: call the operation (`banking.purchase(app, actor, pan, amount, pin, idempotency_key=key)`: a batched
one comes here by itself), or `await batching.acall(app, banking.purchase, ...)` from an async route (no
thread held while the batch commits). Areas read ahead for a whole batch with `@batching.reads_ahead`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import fcntl
import functools
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Protocol

from sqlalchemy import Connection, bindparam, event, insert, select, text
from sqlalchemy.engine.interfaces import DBAPICursor, ExecutionContext
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ..core.identifiers import ascii_digits
from ..core.roles import Actor
from ..db import (
    NOT_FOR_READS,
    WRITES,
    CommitMarker,
    WalCheckpointer,
    execute_many,
    is_disconnect,
    is_duplicate,
    is_retryable,
    one_statement,
)
from ..logs import note_operation
from ..models.foundation import AuditRecord
from . import outbox
from .app import App
from .book import Book, book_of
from .operation import AUDITS, INSERT_AUDITS, INSERT_KEYS, KEYS, Operation, Refused, Request, admit, execute

log = logging.getLogger("sscard.batching")

_ALONE = object()  # "answer this one through the ordinary frame"
RETRY_BURST_SECONDS = 1.0  # after a batch met a stored key, batches read their keys' answers first this long
RECENT_KEYS = 65_536  # keys a writer remembers having committed (a hint for retries; ~10 MB at most)
WRITER_LEASE_SECONDS = 10.0
"""PostgreSQL: how long a writer's connections may sit idle before the server ends them
(idle_session_timeout on the one holding the writers' advisory lock, idle_in_transaction_session_timeout on
the other). A writer that hangs (stopped, swapped out, deadlocked in Python) while it holds the turn would
otherwise stop every other process's writes until its supervisor kills it, a minute later (session 22's
reliability probe: 0 writes a second for 60 s on both workers when one was SIGSTOPped under load). A live
writer touches its lock connection at least every half lease (`_attempt`), and opens new connections after
a longer idle (`_connections`), so the lease ends only a writer that has stopped."""


@dataclass
class _Request:
    frame: Request | Viewed  # the operation frame's request: run, replayed, audited and remembered by it
    answer: Any = None
    done: bool = False
    # How the caller waits: a plain lock the writer releases (a thread), or an asyncio future (an async
    # route). Lighter than concurrent.futures.Future, whose condition variable costs the writer a lock
    # and a notify per answer.
    _lock: threading.Lock | None = None
    _async: tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]] | None = None  # (loop, asyncio.Future)

    def wait(self) -> Any:
        assert self._lock is not None  # a waiting thread's request: its lock was set before it was queued
        self._lock.acquire()
        return self.answer

    @property
    def actor(self) -> Actor:
        return self.frame.actor

    @property
    def args(self) -> tuple[Any, ...]:
        return self.frame.args

    @property
    def key(self) -> str | None:
        return self.frame.key

    @property
    def alone(self) -> bool:
        """Declared `alone` (a bulk sweep): answered in a transaction of its own, never in a batch."""
        frame = self.frame
        return frame.alone if isinstance(frame, Viewed) else frame.decl.alone


def _answer_all(pairs: list[tuple[_Request, Any]]) -> None:
    """Answer each caller: a thread by releasing its lock; the callers of one event loop with one wake-up
    of that loop (each call_soon_threadsafe writes to the loop's wake-up pipe)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
    for req, answer in pairs:
        req.answer, req.done = answer, True
        if req._async is not None:
            by_loop.setdefault(req._async[0], []).append((req._async[1], answer))
        elif req._lock is not None:
            req._lock.release()
    for loop, answers in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve_all, answers)
        except RuntimeError:  # the callers' event loop has closed (server shutdown): nobody waits
            log.debug("answers for a closed event loop dropped")


def _resolve_all(answers: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for fut, answer in answers:
        if not fut.done():
            fut.set_result(answer)


class Batcher:
    def __init__(self, app: App, *, max_batch: int = 128, max_attempts: int = 10, linger: float = 0.0005):
        self.app = app
        self.linger = linger
        self.max_batch = max_batch
        self.max_attempts = max_attempts
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._conn: Connection | None = None
        self._lookup: Connection | None = None
        self._checkpointer = WalCheckpointer(app.db.engine) if app.db.dialect == "sqlite" else None
        self._turn_file: IO[bytes] | None = None  # SQLite: the lock file the writers of several processes take turns on
        self._turn_held = False  # PostgreSQL: this writer holds the writers' advisory lock
        self._turn_wanted = False  # PostgreSQL: another writer waited for it when the last batch committed
        self.turn_idle = 0.002  # seconds without a request before the writer lets its turn go
        self._last_size = 1
        self._previous = 0  # the size of the last batch
        self._backlogged = False  # requests were queued when the last batch was answered
        self.cpu_seconds = 0.0  # the writer's CPU, set when it stops (cpu_time() while it runs)
        self._closed = False
        self.sizes: collections.Counter[int] = collections.Counter()  # batch size -> batches (/metrics)
        if not event.contains(app.db.engine, "before_cursor_execute", _count_writes):
            event.listen(app.db.engine, "before_cursor_execute", _count_writes)
        self._thread = threading.Thread(target=self._run, name="sscard-ledger-writer", daemon=True)
        self._thread.start()
        self.batches = 0
        self.requests = 0
        self.conflicts = 0  # batches run again after a serialization failure or deadlock
        self.alone = 0  # requests the batch could not keep, answered one by one through the frame
        self.unknown_commits = 0  # batches whose COMMIT's answer was lost, resolved by their commit marker
        self._next_prune = 0.0  # PostgreSQL: when (monotonic) the writer next prunes old commit markers
        self._lookup_at = 0.0  # PostgreSQL: when (monotonic) the lock connection last spoke to the server
        # keys this writer committed lately, oldest first (an OrderedDict: dropping a plain dict's first
        # key again and again walks past every key deleted before it)
        self._recent: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
        self._replays_until = 0.0  # (monotonic) until then, batches read their stored answers first
        self.reruns_for_keys = 0  # batches thrown away and run again because a key was stored already

    # ---------------------------------------------------------------- callers

    def call(self, op_fn: Operation[..., Any], actor: Actor, *args: Any, idempotency_key: str | None = None,
             **kwargs: Any) -> Any:
        """Like `op_fn(app, actor, *args, idempotency_key=..., **kwargs)`, committed with others."""
        admit(self.app, actor, op_fn.declaration, idempotency_key)
        frame = Request(self.app, op_fn, actor, args, kwargs, idempotency_key)
        if self._closed or threading.current_thread() is self._thread:
            return execute(self.app, frame)
        out = self._wait_in_queue(_Request(frame))
        if out is _ALONE:
            return execute(self.app, frame)
        if isinstance(out, BaseException):
            raise out
        return out

    async def acall(self, op_fn: Operation[..., Any], actor: Actor, *args: Any, idempotency_key: str | None = None,
                    **kwargs: Any) -> Any:
        """`call` for an async route: waits for the batch without holding a thread; only a request
        answered alone runs in the thread pool."""
        admit(self.app, actor, op_fn.declaration, idempotency_key)
        frame = Request(self.app, op_fn, actor, args, kwargs, idempotency_key)
        out: Any = _ALONE
        if not self._closed:
            req = _Request(frame)
            loop = asyncio.get_running_loop()
            req._async = (loop, loop.create_future())
            self._queue.put(req)
            out = await req._async[1]
        if out is _ALONE:
            return await run_in_threadpool(execute, self.app, frame)
        if isinstance(out, BaseException):
            raise out
        return out

    def record(self, *views: Viewed) -> None:
        """Commit a staff read's `viewed` audit records with the next batch; return once they are committed
        (raise if one could not be: the read must then not be answered). In a thread run for an event loop
        that awaits the records (`AwaitedViews`: the API's GET lane), return at once: the records are
        handed to the writer when the thread's call is over, and the loop waits for their commit."""
        if self._closed or threading.current_thread() is self._thread:
            for viewed in views:
                viewed.write_alone(self.app)
            return
        awaited = _AWAITED.get()
        if awaited is not None and not self._closed:
            for viewed in views:
                awaited.queue(self, _Request(viewed))
            return
        queued = [self._in_queue(_Request(viewed)) for viewed in views]  # all queued first: one batch, often
        failed: BaseException | None = None
        for viewed, req in zip(views, queued, strict=True):
            out = req.wait()
            if out is _ALONE:
                viewed.write_alone(self.app)
            elif isinstance(out, BaseException) and failed is None:
                failed = out
        if failed is not None:
            raise failed

    def _in_queue(self, req: _Request) -> _Request:
        """Queue a caller's request for the writer; `req.wait()` blocks until the writer answers it."""
        req._lock = threading.Lock()
        req._lock.acquire()
        self._queue.put(req)
        return req

    def _wait_in_queue(self, req: _Request) -> Any:
        """Queue a caller's request and block its thread until the writer answers it (a lock it releases)."""
        return self._in_queue(req).wait()

    def cpu_time(self) -> float:
        """The writer thread's CPU seconds so far (for benchmarks)."""
        if self._thread.is_alive() and hasattr(time, "pthread_getcpuclockid"):
            ident = self._thread.ident
            assert ident is not None  # a started thread has its ident
            return time.clock_gettime(time.pthread_getcpuclockid(ident))
        return self.cpu_seconds

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=30)
        if self._checkpointer is not None:
            self._checkpointer.close()
        if self._turn_file is not None:
            self._turn_file.close()

    # ---------------------------------------------------------------- the writer

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self.cpu_seconds = time.thread_time()  # the writer thread's CPU, for benchmarks
            self._close_connections()

    def _loop(self) -> None:
        while True:
            if self._turn_held:
                try:
                    first = self._queue.get(timeout=self.turn_idle)
                except queue.Empty:
                    self._release_turn()  # idle: another process's writer may go
                    first = self._queue.get()
            else:
                first = self._queue.get()
            if first is None:
                break
            batch = [first]
            stop = self._drain(batch)
            target = self._last_size
            if self._backlogged:
                # requests were already waiting when the last batch was answered: two groups of callers
                # take turns (one waits while the other's batch commits). Wait for the group just
                # answered to come back, so that they commit together: at 8 callers, batches of 8
                # instead of 4 and 4 cost the writer about a quarter less per request.
                target = max(target, self._previous + len(batch))
            if not stop and self.linger:
                stop = self._linger(batch, target)
            self._last_size = max(len(batch), self._last_size - 1)  # grows at once, shrinks by one
            self._previous = len(batch)
            try:
                self._process(batch)
            except BaseException as exc:  # never leave a caller waiting
                log.exception("batch failed")
                _answer_all([(req, exc) for req in batch if not req.done])
            self._prune_markers()
            self._backlogged = not self._queue.empty()
            if stop:
                break
        left = []  # closing: whoever is still queued goes through the ordinary frame
        while True:
            try:
                req = self._queue.get_nowait()
            except queue.Empty:
                break
            if req is not None:
                left.append((req, _ALONE))
        _answer_all(left)

    def _linger(self, batch: list[_Request], target: int) -> bool:
        """Wait up to `linger` for the callers just answered to queue their next request, but only while
        the batch is smaller than `target` (the recent batches' size, which grows at once and shrinks
        by one per batch): at a steady load the writer goes as soon as everyone is back, and a lone
        caller waits for nobody. True when close() asked the writer to stop."""
        deadline = time.monotonic() + self.linger
        while len(batch) < min(target, self.max_batch):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                nxt = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if nxt is None:
                return True
            batch.append(nxt)
        return False

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
        # requests (by position) to be answered through the ordinary frame: from the start, those declared
        # `alone` (bulk operations: in a transaction of their own, after the batch's others are answered)
        alone: set[int] = {i for i, req in enumerate(batch) if req.alone}
        outcomes: dict[int, Any] = {}
        attempt = 0
        # usually: assume the keys are new and let the unique index say; a retry expected, read them first
        look_up = self._expect_retries(batch)
        while True:
            attempt += 1
            todo = [(i, req) for i, req in enumerate(batch) if i not in alone]
            outcomes = {}
            try:
                if todo:
                    self._attempt(todo, outcomes, look_up)
                break
            except _Unclean as unclean:
                alone.add(unclean.position)  # run the batch again without it
                attempt -= 1
            except _NeedsLookup:
                look_up = True
                attempt -= 1
                self._retries_seen()
            except _LostCommit as lost:
                # the COMMIT may have been applied, its answer never came: never run again blindly. The
                # marker written with it tells (on a new connection: after a failover, the new primary)
                self.unknown_commits += 1
                committed = self.app.db.committed(lost.marker)
                if committed:  # applied: the answers computed are the answers
                    outcomes = lost.answers
                elif committed is None:
                    # cannot tell: who has no idempotency record to answer a rerun gets the error (the
                    # outcome is unknown, never applied twice); keyed requests are resolved by their keys
                    outcomes = {i: lost.__cause__ or lost for i in lost.unresolved}
                    alone.update(i for i in range(len(batch)) if i not in outcomes)
                else:  # not applied, and now never will be: answered one by one, as any batch that failed
                    log.warning("batch of %d lost its connection before its commit: answering one by one",
                                len(batch))
                    alone.update(range(len(batch)))
                    outcomes = {}
                break
            except Exception as exc:
                if not look_up and is_duplicate(exc):
                    look_up = True  # a retried key: run again, answering it from its stored answer
                    attempt -= 1
                    self._retries_seen()
                    continue
                if is_retryable(exc) and attempt < self.max_attempts:
                    self.conflicts += 1
                    time.sleep(min(0.1, 0.002 * 2**attempt) * (0.5 + random.random()))
                    continue
                log.warning("batch of %d could not commit (%s): answering one by one", len(batch),
                            type(exc).__name__)
                alone.update(range(len(batch)))
                outcomes = {}
                break
        self._remember_keys(req for i, req in enumerate(batch) if i in outcomes)
        self.batches += 1
        self.requests += len(batch)
        self.alone += len(alone)
        self.sizes[len(batch)] += 1
        _answer_all([(req, outcomes[i]) for i, req in enumerate(batch) if i in outcomes])
        for i, req in enumerate(batch):
            if i not in outcomes:
                _answer_all([(req, self._run_alone(req))])

    def _expect_retries(self, batch: list[_Request]) -> bool:
        """Read the batch's stored answers before running it, instead of letting the unique index refuse the
        whole batch (every request's work thrown away, then run again), when a retry is to be expected: a key
        of the batch was committed by this writer lately (a client that lost the answer), or a batch met a
        stored key within the last RETRY_BURST_SECONDS (clients retry in bursts: after a timeout, a dropped
        connection, a 503). Without it, four clients re-sending answered keys cut the others' throughput by
        3.5 (session 21's probe); with it a retry costs one query on the lookup connection."""
        if time.monotonic() < self._replays_until:
            return True
        recent = self._recent
        return any(req.key is not None and (req.frame.scope, req.key) in recent for req in batch
                   if isinstance(req.frame, Request))

    def _retries_seen(self) -> None:
        self.reruns_for_keys += 1
        self._replays_until = time.monotonic() + RETRY_BURST_SECONDS

    def _remember_keys(self, answered: Iterable[_Request]) -> None:
        """The keys just committed (a hint only: the answers are always read from the database), the oldest
        forgotten past RECENT_KEYS."""
        recent = self._recent
        for req in answered:
            if req.key is not None and isinstance(req.frame, Request):
                recent[(req.frame.scope, req.key)] = None
        while len(recent) > RECENT_KEYS:
            recent.popitem(last=False)

    def _prune_markers(self) -> None:
        """PostgreSQL: about every PRUNE_SECONDS while batches come, once the batch is answered, delete the
        commit markers older than db.MARKER_KEEP_SECONDS (every writer's and every operation's: one
        statement on the autocommit lookup connection)."""
        if self._lookup is None or time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_SECONDS
        try:
            self.app.db.prune_markers(self._lookup)
        except Exception:  # noqa: BLE001  tried again next time, on new connections
            log.warning("pruning commit markers failed", exc_info=True)
            self._close_connections()

    def _run_alone(self, req: _Request) -> Any:
        """A request the batch could not keep, run on its own through the ordinary frame, here, between
        two batches: so it competes with no batch of this writer (run in its caller's thread beside the
        next batches, a settlement on PostgreSQL could fail its 30 SERIALIZABLE retries against them).
        Its answer, or the exception its caller raises."""
        try:
            if isinstance(req.frame, Viewed):
                return req.frame.write_alone(self.app)
            return execute(self.app, req.frame)
        except BaseException as exc:  # noqa: BLE001  handed to the caller, who raises it
            return exc

    def _attempt(self, todo: list[tuple[int, _Request]], outcomes: dict[int, Any], look_up: bool) -> None:
        """One transaction for the batch; fills outcomes only if it commits.

        Without `look_up` the stored answers are not read: a key stored before makes the batch's insert
        fail, and the batch runs again with them. With it, on PostgreSQL they are read outside the
        SERIALIZABLE transaction, as the operation frame does (reading the idempotency index inside it
        takes predicate locks that make every keyed writer conflict)."""
        conn, lookup = self._connections()
        if lookup is None:
            # SQLite: writers of several processes take turns on a lock file (the kernel wakes the next
            # one at once; SQLite's own busy handler would have it poll, sleeping 1, 2, 5, 10... ms)
            with self.app.db.write_turn(), self._file_turn():
                self._attempt_locked(conn, None, todo, outcomes, look_up)
            return
        # PostgreSQL: one batch at a time across every server process (a session-level advisory lock
        # on the autocommit connection, so the batch's snapshot is taken after it is granted). Writers
        # of several processes would otherwise collide on every hot account (a POS's merchant account)
        # and abort each other under SERIALIZABLE; with it they queue, as SQLite's writers do.
        # The lock is kept from one batch to the next while requests keep coming, without a round trip;
        # each batch's commit pipeline asks whether another process's writer waits for it, and then the
        # next batch hands it over (unlock, then lock again, in one statement: the waiting writer goes
        # first). The writer lets it go when idle (`_release_turn`).
        # A batch of staff reads' `viewed` records only takes no turn: it reads nothing and inserts new
        # audit rows (ids from a sequence), which no other writer's transaction reads or updates, so
        # there is nothing for writers of two processes to collide on; the audit chain's sealer does not
        # need ids to commit in order (audit_chain.py). It is one INSERT in autocommit: one round trip.
        viewed = [req.frame.values for _i, req in todo if isinstance(req.frame, Viewed)]
        if len(viewed) == len(todo) and one_statement(lookup, INSERT_AUDITS, viewed):
            self._attempt_viewed(lookup, viewed, todo, outcomes)
            return
        try:
            if not self._turn_held or self._turn_wanted or \
                    time.monotonic() - self._lookup_at > WRITER_LEASE_SECONDS / 2:  # (the lease: kept alive)
                lookup.execute(_WRITER_HANDOFF if self._turn_held else _WRITER_LOCK, {"k": WRITER_LOCK_KEY})
                lookup.rollback()
                self._turn_held, self._turn_wanted = True, False
                self._lookup_at = time.monotonic()
            # else: nobody waited for the lock when the last batch committed (the commit's pipeline
            # asked): keep it without a round trip; a writer that queued since is let in after this batch
        except BaseException:
            self._close_connections()
            raise
        self._attempt_locked(conn, lookup, todo, outcomes, look_up)

    def _attempt_viewed(self, lookup: Connection, audits: list[dict[str, Any]], todo: list[tuple[int, _Request]],
                        outcomes: dict[int, Any]) -> None:
        """PostgreSQL, a batch of `viewed` records only: the rows `_attempt_locked` would insert through
        `_one`, as ONE multi-row INSERT on the autocommit connection: one statement is one transaction
        (all the records or none), committed and flushed before it answers, in one round trip (no BEGIN,
        no COMMIT, no ORM session, no prefetch, no writers' turn). Not pipelined: on this host psycopg's
        pipeline mode cost more CPU than the round trip it saves (~110-140 against ~70-80 µs a transaction)."""
        try:
            execute_many(lookup, INSERT_AUDITS, audits)  # one statement (execute_many's multi-row VALUES)
            lookup.rollback()  # ends SQLAlchemy's view of the autocommit "transaction": no round trip
            self._lookup_at = time.monotonic()
        except BaseException:
            self._close_connections()
            raise
        for i, _req in todo:
            outcomes[i] = None  # a recorded `viewed` record has no answer (Viewed.answer)

    def _release_turn(self) -> None:
        """Let the PostgreSQL writer lock go (the writer is idle, or stops)."""
        if not self._turn_held:
            return
        self._turn_held = False
        assert self._lookup is not None  # the turn is held on the lookup connection (dropping it drops the turn)
        try:
            self._lookup.execute(_WRITER_UNLOCK, {"k": WRITER_LOCK_KEY})
            self._lookup.rollback()
            self._lookup_at = time.monotonic()
        except Exception:  # noqa: BLE001  a broken connection is dropped, and the lock with it
            log.debug("releasing the writer lock failed", exc_info=True)
            self._close_connections()

    def _attempt_locked(self, conn: Connection, lookup: Connection | None, todo: list[tuple[int, _Request]],
                        outcomes: dict[int, Any], look_up: bool) -> None:
        reqs = [req for _i, req in todo]
        keys: dict[tuple[str, str], dict[str, Any]] = {}
        if look_up and lookup is not None:
            try:
                keys = self._known_keys(lookup, reqs)
            finally:
                lookup.rollback()  # ends SQLAlchemy's view of the autocommit "transaction": no round trip
        answers: dict[int, Any] = {}
        marker: CommitMarker | None = None  # written with the COMMIT (PostgreSQL, when needed)
        session = Session(bind=conn, expire_on_commit=False)
        session.info[_IN_BATCH] = True
        try:
            session.begin()
            if look_up and lookup is None:
                keys = self._known_keys(session, reqs)
            audits: list[dict[str, Any]] = []
            _prefetch(session, reqs, self.app.clock.now())
            book = book_of(session)
            conn = session.connection()
            for i, req in todo:
                answers[i] = self._one(session, book, conn, i, req, audits, keys, look_up)
            # the book, every request's audit and idempotency record (one statement per table) and the
            # commit, sent together (PostgreSQL: one round trip)
            fresh = [rec for rec in keys.values() if not rec.get("stored")]
            write_evented = _evented(session)
            waiting = None
            # PostgreSQL: should the COMMIT's answer be lost, a keyed request is answered by its idempotency
            # record (stored before, or by this batch); a request of an operation declared `keyed` without
            # one (an in-process caller's; a refusal, which stores none) needs the batch's commit marker to
            # tell whether it was applied. Not one declared keyed=False (a medical quote, a balance: run
            # again, it does no harm; which is why it needs no key over the network) nor a staff read's
            # `viewed` record (run again, a second record of the same read)
            unresolved = [i for i, req in todo if isinstance(req.frame, Request) and req.frame.decl.keyed
                          and not (req.key and (req.frame.scope, req.key) in keys)]
            with self.app.db.pipeline(session, commit=True):
                write_evented()
                book.flush()
                for other in _area_books(session):  # the medical book: settlements, movements, balances
                    other.flush()
                execute_many(conn, INSERT_AUDITS, audits)
                execute_many(conn, INSERT_KEYS, fresh)
                if lookup is not None:  # PostgreSQL: does another process's writer wait for our turn?
                    driver = conn.connection.driver_connection
                    assert driver is not None  # the batch's open connection
                    waiting = driver.cursor()
                    waiting.execute(_TURN_WANTED)
                    if unresolved:  # (queued with the rest: no round trip of its own)
                        marker = self.app.db.mark_commit(session)
                session.commit()  # (PostgreSQL: its COMMIT queued with the rest, one sync at the block's end)
            if waiting is not None:
                row = waiting.fetchone()
                self._turn_wanted = bool(row and row[0])
            if self._checkpointer is not None:
                self._checkpointer.committed()
        except (_Unclean, _NeedsLookup):
            session.rollback()  # raised by us, between statements: an ordinary rollback
            raise
        except BaseException as exc:
            lost = marker is not None and isinstance(exc, Exception) and is_disconnect(exc)
            try:
                session.rollback()
            except Exception:
                if not lost:
                    raise
                log.debug("rollback on a broken connection failed", exc_info=True)
            # after an error inside a pipeline SQLAlchemy may consider the transaction gone while the
            # server still holds it aborted: hand the connections back to the pool, whose reset rolls
            # back for certain, and start the next attempt on fresh ones
            self._close_connections()
            if lost:  # the COMMIT may have been applied: asked of the marker, never run again blindly
                assert marker is not None  # (lost)
                raise _LostCommit(marker, answers, unresolved) from exc
            raise
        finally:
            session.close()
        outcomes.update(answers)

    @contextlib.contextmanager
    def _file_turn(self) -> Iterator[None]:
        if self._turn_file is None:
            path = self.app.db.sqlite_path()
            if path is None:  # an in-memory database: one process
                yield
                return
            self._turn_file = open(f"{path}.writer-lock", "a+b")  # noqa: SIM115  kept open by the writer
        fcntl.flock(self._turn_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._turn_file.fileno(), fcntl.LOCK_UN)

    def _connections(self) -> tuple[Connection, Connection | None]:
        """The writer's own connections, kept open across batches (no pool checkout and reset per
        batch): one for the batches' transactions and, on PostgreSQL, an autocommit one for the
        idempotency lookups (one round trip, no predicate locks)."""
        postgres = self.app.db.dialect == "postgresql"
        stale = postgres and time.monotonic() - self._lookup_at > WRITER_LEASE_SECONDS * 0.8  # (ended by the lease)
        if stale or any(c is None or c.closed or c.invalidated
                        for c in (self._conn, *([self._lookup] if postgres else []))):
            self._close_connections()
            engine = self.app.db.engine
            self._conn = engine.connect()
            if self._checkpointer is not None:  # the checkpointer thread does it (db.WalCheckpointer)
                driver = self._conn.connection.driver_connection
                assert driver is not None  # a connection just opened
                driver.execute("PRAGMA wal_autocheckpoint=0")
            self._lookup = engine.connect().execution_options(isolation_level="AUTOCOMMIT") if postgres else None
            if self._lookup is not None:
                lease = f"{int(WRITER_LEASE_SECONDS * 1000)}ms"
                self._conn.exec_driver_sql(f"SET idle_in_transaction_session_timeout = '{lease}'")
                self._conn.commit()
                if (engine.dialect.server_version_info or (0,)) >= (14,):  # (idle_session_timeout came in 14)
                    self._lookup.exec_driver_sql(f"SET idle_session_timeout = '{lease}'")
                    self._lookup.rollback()
                self._lookup_at = time.monotonic()
        assert self._conn is not None  # opened above when missing or closed
        return self._conn, self._lookup

    def _close_connections(self) -> None:
        """Drop the writer's connections. The lookup connection may hold the writer lock: it is closed
        for real (invalidated), not handed back to the pool with the lock."""
        for conn, really in ((self._conn, False), (self._lookup, True)):
            if conn is not None:
                try:
                    if self._checkpointer is not None and not really and not conn.invalidated:
                        conn.rollback()
                        driver = conn.connection.driver_connection
                        assert driver is not None  # a connection not invalidated
                        driver.execute("PRAGMA wal_autocheckpoint=1000")  # as it came
                    conn.invalidate() if really else conn.close()
                except Exception:  # noqa: BLE001  a broken connection is dropped anyway
                    log.debug("closing a writer connection failed", exc_info=True)
        self._conn = self._lookup = None
        self._turn_held = False  # the lock went with the lookup connection

    @staticmethod
    def _known_keys(session: Session | Connection, batch: list[_Request]) -> dict[tuple[str, str], dict[str, Any]]:
        """The idempotency records already stored for this batch's keys, in one query."""
        wanted = {(r.frame.scope, r.key) for r in batch if r.key}
        if not wanted:
            return {}
        rows = session.execute(_SELECT_KEYS, {"scopes": sorted({sc for sc, _k in wanted}),
                                              "keys": sorted({k for _s, k in wanted})}).all()
        return {(r.scope, r.key): {**r._asdict(), "stored": True} for r in rows if (r.scope, r.key) in wanted}

    def _one(self, session: Session, book: Book, conn: Connection, position: int, req: _Request,
             audits: list[dict[str, Any]], keys: dict[tuple[str, str], dict[str, Any]], looked_up: bool) -> Any:
        """One request, through the operation frame's own steps (operation.Request/Outcome): the same
        replay, body, audit record and idempotency record as on its own; only how they are stored
        differs (one statement per table for the batch)."""
        frame = req.frame
        if frame.key:
            seen = keys.get((frame.scope, frame.key))  # stored before this batch, or by an earlier request of it
            if seen is not None:
                return _answer_of(frame.replay(seen["request_hash"], seen["status"], seen["response"]))
        outbox.discard(session)  # nothing queued by a request before this one is kept for it
        before = (book.changes, _area_changes(session), conn.info.get(WRITES, 0))
        try:
            outcome = frame.run(session)
        except Exception as exc:
            if is_retryable(exc):
                raise
            raise _Unclean(position) from exc  # settled alone, through the ordinary frame
        if not outcome.kept:
            if (book.changes, _area_changes(session), conn.info.get(WRITES, 0)) != before or _changed(session):
                raise _Unclean(position) from None
            if frame.key and not looked_up:
                # such a refusal stores no answer, so the unique index cannot tell a retry of an
                # answered request (whose rerun may refuse: pending_already_resolved): look it up
                raise _NeedsLookup from None
            values = outcome.audit()
            if values is not None:  # the refusal record, in the batch's transaction (nothing else was written)
                audits.append(values)
            return outcome.error
        _settle_objects(session)
        values = outcome.audit()
        assert values is not None  # kept: a success, or a refusal with commit=True, which has its record
        _audit(session, audits, values)
        memo = outcome.memo()
        if memo is not None:
            assert frame.key is not None  # a memo is made only for a keyed request (Outcome.memo)
            keys[(frame.scope, frame.key)] = memo
        return _answer_of(outcome.answer)


class Viewed:
    """A staff read's one `viewed` audit record (services.operation.query), queued for the writer like a
    request: it goes through the same steps of `_one` (it is its own outcome: kept, nothing to remember
    under a key, no answer) and is inserted with the batch's other audit records, in its one commit.
    The reader waits for that commit before it answers."""

    __slots__ = ("actor", "name", "values")
    key = None
    scope = ""
    args: tuple[Any, ...] = ()
    alone = False  # a read's record always rides with the batch
    kept = True
    answer = None
    error = None

    def __init__(self, actor: Actor, name: str, values: dict[str, Any]):
        self.actor, self.name, self.values = actor, name, values

    def argument(self, name: str) -> Any:
        return None

    def run(self, session: Session) -> Viewed:
        return self

    def audit(self) -> dict[str, Any]:
        return self.values

    def memo(self) -> None:
        return None

    def write_alone(self, app: App) -> None:
        """Its own short transaction (the writer is stopping, or its batch could not commit)."""
        app.db.run(lambda s: s.add(AuditRecord(**self.values)))


def record_viewed(app: App, actor: Actor, name: str, *values: dict[str, Any]) -> None:
    """Write a staff read's `viewed` audit records, group-committed with other requests; return once they
    are committed (or, under `AwaitedViews`, once they are queued: the event loop awaits the commit)."""
    batcher(app).record(*(Viewed(actor, name, v) for v in values))


class AwaitedViews:
    """The `viewed` records of the declared reads that a worker thread runs for an event loop (the API's GET
    lane), handed to the writer when the thread is done instead of each blocking the thread until its
    batch commits: the writer's answer is what wakes the loop (one wake-up for a batch's records of one
    loop, where a blocked thread cost a wake-up of its own, then another of the loop when the thread
    returned). The loop awaits them before it sends the answer, so a read is still answered only once
    its record is committed, or not at all when it could not be.

    Use: `views = AwaitedViews.within(context, loop)`; run the call in that context in a worker thread,
    then (whether it answered or raised) `views.release(wake)` there; on the loop, `await
    views.settled(await wake)`."""

    __slots__ = ("loop", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.pending: list[tuple[Batcher, _Request]] = []

    @classmethod
    def within(cls, context: contextvars.Context, loop: asyncio.AbstractEventLoop) -> AwaitedViews:
        """A new one, in force for the code run in `context` (the worker thread's copy of the request's)."""
        views = cls(loop)
        context.run(_AWAITED.set, views)
        return views

    def queue(self, writer: Batcher, req: _Request) -> None:
        self.pending.append((writer, req))

    def release(self, wake: asyncio.Future[Any]) -> None:
        """In the worker thread, once its call is over (what it answered or raised is stored): queue the
        records for the writer, whose answer to the last one resolves `wake`; none to write, resolve it
        here. Queued only now, so the loop wakes after the call's outcome is stored."""
        loop = self.loop
        try:
            if not self.pending:
                loop.call_soon_threadsafe(_resolve_all, [(wake, None)])
                return
            last = len(self.pending) - 1
            stopped = []
            for i, (writer, req) in enumerate(self.pending):
                # made here, in the worker thread, resolved only on the loop (call_soon_threadsafe)
                req._async = (loop, wake if i == last else loop.create_future())
                if writer._closed:  # stopped since: the loop writes it alone (`settled`), as `record` would
                    stopped.append((req, _ALONE))
                else:
                    writer._queue.put(req)
            _answer_all(stopped)
        except RuntimeError:  # the loop has closed (server shutdown): nobody waits
            log.debug("a read's answer for a closed event loop dropped")

    async def settled(self, last: Any) -> None:
        """On the loop, given the writer's answer to the last record (what `wake` resolved to): return once
        every record is committed; after waiting for them all, raise the first failure (the read must
        then not be answered, as when its thread waited)."""
        failed: BaseException | None = None
        for i, (writer, req) in enumerate(self.pending):
            assert req._async is not None  # queued by `release`
            out = last if i == len(self.pending) - 1 else await req._async[1]
            if out is _ALONE:  # the writer is stopping: the record in its own transaction, as `record` does
                assert isinstance(req.frame, Viewed)
                try:
                    await run_in_threadpool(req.frame.write_alone, writer.app)
                except Exception as exc:  # noqa: BLE001  raised below, once every record is settled
                    out = exc
            if isinstance(out, BaseException) and failed is None:
                failed = out
        if failed is not None:
            raise failed


_AWAITED: contextvars.ContextVar[AwaitedViews | None] = contextvars.ContextVar("sscard.batching.awaited_views",
                                                                               default=None)


def _answer_of(answer: Any) -> Any:
    """The writer hands a refusal to its caller as the exception to raise."""
    return answer.error if isinstance(answer, Refused) else answer


class _NeedsLookup(Exception):
    """A keyed request was refused without storing its answer: run the batch again with the stored
    answers read first."""


class _LostCommit(Exception):
    """The connection broke once the batch's COMMIT, with its commit marker, may have been sent: whether it
    was applied is asked of the marker (its cause: the connection's error)."""

    def __init__(self, marker: CommitMarker, answers: dict[int, Any], unresolved: list[int]):
        super().__init__(marker.token)
        self.marker = marker
        self.answers = answers  # by position: what each request was answered in the batch
        self.unresolved = unresolved  # positions no idempotency record would answer


class _Unclean(Exception):
    """A request the batch cannot keep (it failed unexpectedly, or refused after writing)."""

    def __init__(self, position: int):
        super().__init__(position)
        self.position = position


def _count_writes(conn: Connection, cursor: DBAPICursor, statement: str, parameters: Any,
                  context: ExecutionContext | None, executemany: bool) -> None:
    if statement.lstrip()[:6].upper() != "SELECT":
        conn.info[WRITES] = conn.info.get(WRITES, 0) + 1


NOT_FOR_READS.add(_count_writes)  # it counts writes: a declared read's statements are none (Database.read)


def _audit(session: Session, audits: list[dict[str, Any]], values: dict[str, Any]) -> None:
    """Queue a kept request's audit record for the batch's one insert; one whose operation queued
    events for partners (a pension credit, a new card) is queued with its events (`_evented`)."""
    items = outbox.take(session, flush=False)  # _settle_objects has flushed
    if not items:
        audits.append(values)
        return
    session.info.setdefault(_EVENTED, []).append((values, items))


def _evented(session: Session) -> Callable[[], None]:
    """The batch's audit records whose events name them, with their events' rows (one query for their
    cards' facts, when an event does not carry them), written by the function returned, which the commit's
    pipeline calls. On PostgreSQL each record is inserted alone and its events right after it, naming it
    by the id its insert took (outbox.insert_rows): no round trip waits for the ids (a batch with a
    replacement waited for them, session 31). On SQLite the records are inserted first, returning their
    ids (no round trip to save)."""
    evented: list[tuple[dict[str, Any], list[dict[str, Any]]]] = session.info.pop(_EVENTED, None) or []
    if not evented:
        return lambda: None
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        ids = conn.execute(_INSERT_AUDITS_RETURNING, [values for values, _items in evented]).scalars().all()
        rows = outbox.rows_for_batch(session, [(items, values["operation"], values["at"], audit_id)
                                               for (values, items), audit_id in zip(evented, ids, strict=True)])
        return lambda: outbox.insert_rows(session, rows)
    rows = outbox.rows_for_batch(session, [(items, values["operation"], values["at"], None)
                                           for values, items in evented])

    def write() -> None:
        at = 0
        for values, items in evented:
            execute_many(conn, INSERT_AUDITS, [values])
            outbox.insert_rows(session, rows[at:at + len(items)], of_the_audit_record_just_inserted=True)
            at += len(items)
    return write


def _changed(session: Session) -> bool:
    """Does the session hold changes a flush would write? An object whose attributes were only set to the
    values they had is not a change (such a refusal can stay in its batch)."""
    return bool(session.new or session.deleted) or any(session.is_modified(obj) for obj in session.dirty)


def _settle_objects(session: Session) -> None:
    """Write the ORM changes a kept request made (a PIN counter), so the next request starts clean."""
    if session.dirty or session.new or session.deleted:
        session.flush()


PRUNE_SECONDS = 60.0  # how often the writer deletes old commit markers while batches come
WRITER_LOCK_KEY = 0x5353434152440001  # pg_advisory_lock key of the group-commit writers ("SSCARD" 1)
_WRITER_LOCK = text("SELECT pg_advisory_lock(:k)")
_WRITER_UNLOCK = text("SELECT pg_advisory_unlock(:k)")
_WRITER_HANDOFF = text("SELECT pg_advisory_unlock(:k), pg_advisory_lock(:k)")  # in this order
# a writer waiting for that lock (a bigint advisory key shows in pg_locks as classid, objid, objsubid 1);
# a function scan: no predicate lock in the batch's SERIALIZABLE transaction
_TURN_WANTED = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    " AND classid = 1397965633 AND objid = 1380188161 AND objsubid = 1"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))")
assert (WRITER_LOCK_KEY >> 32, WRITER_LOCK_KEY & 0xFFFFFFFF) == (1397965633, 1380188161)
# those whose events name them, in one statement whose ids come back in the rows' order
_INSERT_AUDITS_RETURNING = insert(AUDITS).returning(AUDITS.c.id, sort_by_parameter_order=True)
_EVENTED = "sscard.batching.evented"  # session.info: (audit values, events) of the batch's kept requests
# By the primary key (scope, key): both lists, so the index is walked (a key alone is not its first column:
# a list of keys only read the whole table, 6.7 ms at 31,000 records, every batch that looked its keys up:
# session 21's probe); the few pairs the lists cross that no request asked for are left out after.
_SELECT_KEYS = select(KEYS.c.scope, KEYS.c.key, KEYS.c.request_hash, KEYS.c.status, KEYS.c.response).where(
    KEYS.c.scope.in_(bindparam("scopes", expanding=True)), KEYS.c.key.in_(bindparam("keys", expanding=True)))


def read_ahead_alone(session: Session, request: Request) -> None:
    """A batched operation run on its own (operation.execute: the bench's (d), a request its batch could
    not keep): read its accounts as a batch of one does, in one query, and on PostgreSQL lock their
    ledger accounts first, in id order (banking.lock_accounts). Only the accounts: the other areas'
    read-ahead is for batches."""
    from .banking import lock_accounts, moving_terminal, prefetch_accounts

    pans = _pans(request.args)
    if not pans:
        return
    now = request.app.clock.now()
    if request.app.db.dialect != "postgresql":
        prefetch_accounts(session, pans, [request.actor], now)
        return
    movers = moving_terminal(request.name, request.actor)
    # BEGIN, the locks and the read-ahead: one round trip
    prefetch_accounts(session, pans, movers, now, usage=False, first=lock_accounts(session, pans, movers))


def locks_alone(request: Request) -> tuple[str, list[Any]] | None:
    """PostgreSQL, a batched operation run on its own: the advisory locks `Database.run` takes before
    its transaction (banking.advisory_locks: the ledger accounts `read_ahead_alone` locks again in the
    transaction); None when it names no account, and on SQLite (its writers already take turns)."""
    from .banking import advisory_locks, moving_terminal

    pans = _pans(request.args)
    if not pans or request.app.db.dialect != "postgresql":
        return None
    return advisory_locks(request.app.db.engine, pans, moving_terminal(request.name, request.actor))


def _pans(args: tuple[Any, ...]) -> set[str]:
    return {a for a in args if isinstance(a, str) and len(a) == 19 and ascii_digits(a)}


def _prefetch(session: Session, batch: list[_Request], now: datetime) -> None:
    """Every PAN the batch names (positional arguments of 19 digits) and its ledger account and day's
    limit usage, the terminals' own ledger accounts, and what the other areas read ahead for their
    requests (`reads_ahead`): all sent together, in the round trip of the transaction's BEGIN."""
    from .banking import prefetch_accounts

    frames = [r.frame for r in batch]
    planned = [ahead for plan in _READS_AHEAD if (ahead := plan(session, frames, now)) is not None]
    reads = [read for ahead in planned for read in ahead.reads]
    pans = {a for r in batch for a in _pans(r.args)}
    rows = prefetch_accounts(session, pans, {r.actor for r in batch}, now, first=reads)
    for ahead in planned:
        ahead.take(rows[:len(ahead.reads)])
        rows = rows[len(ahead.reads):]


_IN_BATCH = "sscard.batching.in_batch"


def in_batch(session: Session) -> bool:
    """Is this the session of a group-committed batch? There, a request whose insert breaks a unique
    index needs no savepoint of its own: the batch runs again without it and it is answered alone."""
    return bool(session.info.get(_IN_BATCH))


@dataclass(slots=True)
class Ahead:
    """An area's read-ahead for a batch: its reads (SELECTs, or SQL text with the driver's parameters, as
    db.fetch_together takes them) and `take`, called with their rows (one list per read, in order)."""

    reads: list[tuple[Any, Any]]
    take: Callable[[list[list[Any]]], None]


ReadsAhead = Callable[[Session, list[Request | Viewed], datetime], Ahead | None]
_READS_AHEAD: list[ReadsAhead] = []


def reads_ahead(fn: ReadsAhead) -> ReadsAhead:
    """Register `fn(session, requests, now)`, asked at the start of every batch's transaction for what the
    batch's requests of an area will read one by one (rows by primary key then come from the session's
    identity map), or None. Every area's reads go in one round trip with the accounts' and the BEGIN: the
    writer waits for each round trip with its batch's callers behind it (a batch of a teller's deposit and
    a clerk's replacement waited three times before the first statement of its own, session 31)."""
    _READS_AHEAD.append(fn)
    return fn


class AreaBook(Protocol):
    changes: int  # how many things are recorded (a refusal that recorded one cannot stay in its batch)

    def flush(self) -> None: ...


_AREA_BOOKS: list[Callable[[Session], AreaBook | None]] = []


def area_book(find: Callable[[Session], AreaBook | None]) -> Callable[[Session], AreaBook | None]:
    """Register `find(session)`: an area's book of the session (or None), which records changes in memory
    like the ledger's book. A batch counts its changes to tell a clean refusal, and flushes it in the
    commit's pipeline."""
    _AREA_BOOKS.append(find)
    return find


def _area_books(session: Session) -> list[AreaBook]:
    return [b for find in _AREA_BOOKS if (b := find(session)) is not None]


def _area_changes(session: Session) -> int:
    return sum(b.changes for b in _area_books(session))


_lock = threading.Lock()


def batcher(app: App) -> Batcher:
    """The App's one writer (created on first use; App.close() stops it)."""
    found: Batcher | None = app.extras.get("ledger_batcher")
    if found is not None:
        return found
    with _lock:
        found = app.extras.get("ledger_batcher")
        if found is None:
            found = app.extras["ledger_batcher"] = Batcher(app)
        return found


def call(app: App, op_fn: Operation[..., Any], actor: Actor, *args: Any, idempotency_key: str | None = None,
         **kwargs: Any) -> Any:
    """Call an operation: group-committed if it is declared `batched`, else on its own (the same as
    calling `op_fn` itself)."""
    if not op_fn.declaration.batched:
        return op_fn(app, actor, *args, idempotency_key=idempotency_key, **kwargs)
    return batcher(app).call(op_fn, actor, *args, idempotency_key=idempotency_key, **kwargs)


async def acall(app: App, op_fn: Operation[..., Any], actor: Actor, *args: Any, idempotency_key: str | None = None,
                **kwargs: Any) -> Any:
    """`call` from an async route: a batched operation waits for its batch without holding a thread;
    any other runs in the thread pool."""
    if not op_fn.declaration.batched:
        return await run_in_threadpool(
            functools.partial(op_fn, app, actor, *args, idempotency_key=idempotency_key, **kwargs))
    note_operation(op_fn.operation_name, actor)  # the writer thread runs it: name it for the request's log
    return await batcher(app).acall(op_fn, actor, *args, idempotency_key=idempotency_key, **kwargs)
