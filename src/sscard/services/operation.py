"""The frame every business operation runs in.

`@operation(name, roles=...)` turns `fn(op, ...)` into `fn(app, actor, ..., idempotency_key=None)` that:
1. checks the actor's role (services.access),
2. runs fn in one transaction, retried whole on serialization failure,
3. answers a retried idempotency key with the first answer (a different body: idempotency_key_reused),
4. writes exactly one audit record in the same transaction, and a refusal record for refusals,
5. for errors raised with commit=True (a wrong password's counter), commits and then raises,
6. answers a retry of an operation that ended its caller's own credential (`ends_session`: a change of the
   query password ends the cardholder's API token) with the first answer, to that ended credential only
   (`replay_to_ended`): every write is idempotent under its key, this one too.

Results are JSON-ready dicts, the same whether fresh or replayed.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import inspect
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

from sqlalchemy import Table, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..core.errors import About, SscardError
from ..core.identifiers import mask_text
from ..core.passwords import Secrets
from ..core.policy import Policy
from ..core.roles import Actor, Role
from ..core.text import unreadable
from ..db import Reads, execute_many, fetch_all
from ..logs import note_operation
from ..models.foundation import AuditRecord, IdempotencyRecord
from . import access, outbox
from .app import App
from .book import per_transaction

log = logging.getLogger("sscard.operation")

# Refusals not worth an audit record of their own: malformed input and lookups of nothing.
_UNAUDITED_STATUSES = {400, 404, 422}


def jsonable(value: Any) -> Any:
    """What `value` reads as once stored as JSON and read back (tuples become lists, dates ISO strings).

    Answers are plain dicts of strings and numbers, so the common shapes are copied directly (a JSON
    round trip per answer was a tenth of the group-commit writer's time); anything else still takes
    the round trip, so the result is always exactly what a replay from the stored JSON gives."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                break
            out[k] = v if type(v) in _PLAIN else jsonable(v)
        else:
            return out
    elif kind is list or kind is tuple:
        return [v if type(v) in _PLAIN else jsonable(v) for v in value]
    elif kind is datetime or kind is date:
        return value.isoformat()
    return json.loads(json.dumps(value, default=json_default, ensure_ascii=False))


_PLAIN = frozenset({str, int, bool, type(None)})  # JSON's own: read back as they are


def json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON-ready: {type(value).__name__}")


@dataclass
class Op:
    """What a service function sees: the session, the clock's now, the policy, who acts, and the audit."""

    app: App
    _session: Session | None
    actor: Actor
    name: str
    idempotency_key: str | None
    now: datetime = field(init=False)
    _audit: dict[str, Any] = field(default_factory=dict[str, Any])
    _reads: Reads | None = field(default=None, kw_only=True)  # a declared read's (`query`): see `rows`
    _listed: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]], kw_only=True)
    _ended_own_session: bool = field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        self.now = self.app.clock.now()
        note_operation(self.name, self.actor)  # the request's log lines name the operation
        if self._session is not None:
            self._session.info[access.REACHED] = self.reached  # (the lookups name what they find: access.REACHED)

    @property
    def session(self) -> Session:
        """The ORM session of the operation's transaction (a declared read's is made when first asked for)."""
        if self._session is None:
            assert self._reads is not None  # an operation's frame gives it a session, a read's frame its reads
            self._session = self._reads.session()
            self._session.info[access.REACHED] = self.reached
        return self._session

    def rows(self, stmt: Any, params: dict[str, Any]) -> list[Any]:
        """The rows of a SELECT in the operation's transaction (`db.fetch_all`): in a declared read, straight
        on the driver, with no ORM session made unless the body asks for one (`Database.read`)."""
        if self._reads is not None and self._session is None:
            return self._reads.rows(stmt, params)
        return fetch_all(self.session.connection(), stmt, params)

    def ends_sessions_of(self, person_id: int) -> None:
        """Say that this operation ends every credential of the person `person_id` (a query password's change
        or reset: api.sessions' tokens). When that person is the caller, the operation must be declared
        `ends_session` (run_declared checks): its retry then reaches its stored answer with the ended token."""
        if self.actor.role is Role.CARDHOLDER and self.actor.person_id == person_id:
            self._ended_own_session = True

    def listed(self, object_type: str, object_id: object, person_id: int) -> None:
        """A declared read that shows several people's data unmasked (the collection queue's names) says
        whose, one call each: each gets a `viewed` record, as a read of one person's data does."""
        self._listed.append({"object_type": object_type, "object_id": str(object_id), "person_id": person_id})

    @property
    def policy(self) -> Policy:
        return self.app.policy

    @property
    def secrets(self) -> Secrets:
        return self.app.secrets

    def audit(
        self,
        object_type: str = "",
        object_id: object = "",
        *,
        before: str = "",
        after: str = "",
        person_id: int | None = None,
        on_behalf_of: int | None = None,
        attorney_id: int | None = None,
        object_bank_id: int | None = None,
        **detail: Any,
    ) -> None:
        """Say what this operation changed; written as the operation's one audit record. A call that names
        no object (a power of attorney's check adding its id) keeps the object named so far.
        `object_bank_id`: the bank of the card or account named, when the operation knows it and the
        database may not yet when the record is inserted (a batch writes a replacement's new card after
        it); otherwise the log's insert trigger finds it from the object (audit_chain.BANK_COLUMNS)."""
        if object_type or "object_type" not in self._audit:
            self._audit.update(object_type=object_type, object_id=str(object_id))
            self._audit.pop("object_bank_id", None)  # another object's bank no longer
        self._audit.update(before=str(before or ""), after=str(after or ""))
        if person_id is not None:
            self._audit["person_id"] = person_id
        if on_behalf_of is not None:
            self._audit["on_behalf_of"] = on_behalf_of
        if attorney_id is not None:
            self._audit["attorney_id"] = attorney_id
        if object_bank_id is not None:
            self._audit["object_bank_id"] = object_bank_id
        if detail:
            self._audit.setdefault("detail", {}).update(detail)

    def note(self, *, person_id: int | None = None, on_behalf_of: int | None = None,
             attorney_id: int | None = None, **detail: Any) -> None:
        """Add to the audit record without replacing what is already described (the object and its
        states, said by `audit` here or in a plain function this operation is built from): whose data,
        on whose behalf, and details."""
        for column, value in (("person_id", person_id), ("on_behalf_of", on_behalf_of), ("attorney_id", attorney_id)):
            if value is not None:
                self._audit[column] = value
        if detail:
            self._audit.setdefault("detail", {}).update(detail)

    def reached(self, about: About) -> None:
        """The object this operation found and acts on, and whose it is: its record names them even when the
        operation is refused after (a withdrawal from a lost account, refused `account_lost`), so the
        person's access log and the object's bank see the attempt. What `audit` says later replaces it."""
        _name_about(self._audit, about)

    def event(self, type: str, card: Any = None, *, before: str | None = None, after: str | None = None,
              **data: Any) -> None:
        """Queue an event for partners (services.outbox), written with the audit record. State changes
        made through the ORM queue theirs by themselves; this is for the rest (bulk updates, credits)."""
        outbox.queue(self.session, type, card, before=before, after=after, **data)


_CALL: ContextVar[str] = ContextVar("sscard_call", default="")


@contextmanager
def on_call(ref: str) -> Iterator[None]:
    """Operations called inside are a hotline call's (hotline.engine runs each action of a call's turn in
    it): each one's audit record says which call in its detail (`call`: the call's reference, its CallSid),
    its refusals' and its reads' records too, so a supervisor gathers one call's records by it (session
    23's auditor: the hotlines' records named no call). The frame puts the reference on the actor as the
    operation is called (`_on_call`), which carries it to the group-commit writer's thread."""
    token = _CALL.set(ref)
    try:
        yield
    finally:
        _CALL.reset(token)


def _on_call(actor: Actor) -> Actor:
    ref = _CALL.get()
    return replace(actor, call=ref) if ref and actor.call != ref else actor


def audit_values(actor: Actor, name: str, now: datetime, key: str | None, result: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The columns of one audit record (a dict, so a batch can insert many in one statement); the detail
    names the hotline call the operation was part of (`call`, on_call)."""
    detail = fields.get("detail")
    if detail:
        detail = {k: mask_text(v) if isinstance(v, str) else v for k, v in jsonable(detail).items()}
    if actor.call:
        detail = {**(detail or {}), "call": actor.call}
    return {
        "at": now,
        "actor_kind": actor.kind,
        "actor_id": str(actor.id),
        "actor_role": str(actor.role),
        "on_behalf_of": fields.get("on_behalf_of"),
        "attorney_id": fields.get("attorney_id"),
        "channel": str(actor.channel),
        "place": actor.place or "",
        "operation": name,
        "object_type": fields.get("object_type", ""),
        "object_id": fields.get("object_id", ""),
        "person_id": fields.get("person_id") or (actor.person_id if actor.role is Role.CARDHOLDER else None),
        "before": fields.get("before", ""),
        "after": fields.get("after", ""),
        "result": result,
        "idempotency_key": key,
        "detail": detail or {},
        "object_bank_id": fields.get("object_bank_id"),  # else the insert trigger's (audit_chain.BANK_COLUMNS)
    }


def refusal_fields(err: SscardError, fields: dict[str, Any]) -> dict[str, Any]:
    """A refusal's audit fields: what the body had named, and what the caller reached for and whose it was
    when the refusal says so (`SscardError.about`) and the body refused before naming them."""
    about = err.about
    if about is None:
        return fields
    named = dict(fields)
    _name_about(named, about)
    return named


def _name_about(fields: dict[str, Any], about: About) -> None:
    """Name the object and its holder in audit fields that name none yet (Op.reached, refusal_fields)."""
    if not fields.get("object_type"):
        fields["object_type"], fields["object_id"] = about.object_type, about.object_id
    if fields.get("person_id") is None and about.person_id is not None:
        fields["person_id"] = about.person_id


def _audit_record(actor: Actor, name: str, now: datetime, key: str | None, result: str, fields: dict[str, Any]) -> AuditRecord:
    return AuditRecord(**audit_values(actor, name, now, key, result, fields))


def request_hash(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], key: bytes | None = None,
                 session: str = "") -> str:
    """The fingerprint of a keyed request, to tell a retry from a different body under the same key.

    Keyed with the server key: the arguments may hold a PIN, and a plain hash of a 6-digit PIN is
    reversed by trying all million values. `session`: the caller's credential (Actor.session), for an
    operation that ends it (`ends_session`): its stored answer then matches a retry with that credential only."""
    parts: list[Any] = [name, args, kwargs, session] if session else [name, args, kwargs]
    body = json.dumps(parts, default=json_default, sort_keys=True, ensure_ascii=False).encode()
    if key is None:
        return hashlib.sha256(body).hexdigest()
    return hmac.new(key, b"idempotency\x00" + body, hashlib.sha256).hexdigest()


class Refused:
    """A refusal whose writes (counters, audit) must be committed before it is raised."""

    def __init__(self, error: SscardError):
        self.error = error


def _stored_error(payload: dict[str, Any]) -> SscardError:
    params: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in payload.get("params", {}).items()}
    return SscardError(payload["code"], **params)


def _refusal_recorded(err: SscardError) -> bool:
    """Refusals worth an audit record of their own (not malformed input, lookups of nothing, or a
    retry that reused a key with another body). A refusal that names what it was about (`err.about`: a
    scope check's, or a service's answering another's object as missing) is one, whatever its status."""
    return (err.status not in _UNAUDITED_STATUSES or err.about is not None) and err.code != "idempotency_key_reused"


_BODIES: dict[str, Callable[..., Any]] = {}  # operation name -> its body fn(op, ...), for the frame only


class Request:
    """One call of an operation, as the frame runs it: on its own (`execute`) or in a group-committed
    batch (services.batching). Both paths ask it the same questions (is this a retry, run the body,
    what audit record, what to remember under the key), so they answer alike."""

    __slots__ = ("app", "decl", "fn", "actor", "args", "kwargs", "key", "scope", "request_hash")

    def __init__(self, app: App, op_fn: Query[..., Any], actor: Actor, args: tuple[Any, ...], kwargs: dict[str, Any],
                 key: str | None):
        self.app, self.actor, self.args, self.kwargs, self.key = app, _on_call(actor), args, kwargs, key
        self.decl: access.Declaration = op_fn.declaration
        self.fn = _BODIES[self.decl.name]
        self.scope = key_scope(actor)
        session = actor.session if self.decl.ends_session else ""
        self.request_hash = request_hash(self.decl.name, args, kwargs, app.settings.secret_key, session) if key else ""

    @property
    def name(self) -> str:
        return self.decl.name

    def argument(self, name: str) -> Any:
        """The value given for the body's parameter `name` (positional or keyword), else None: what a
        batch reads ahead for all its requests (their cards, their accounts)."""
        if name in self.kwargs:
            return self.kwargs[name]
        names = _positional_names(self.fn)
        return self.args[names.index(name)] if name in names and names.index(name) < len(self.args) else None

    def replay(self, stored_hash: str, status: int, response: str) -> Any:
        """The answer to a retry, from what the first call stored under its key: the same answer, a
        refusal to raise (`Refused`), or idempotency_key_reused for another body under the key."""
        if stored_hash == REVERSED_FIRST:  # a terminal's reversal of this key came first (banking.reverse_terminal)
            return Refused(_stored_error(json.loads(response)))
        if stored_hash != self.request_hash:
            return Refused(SscardError("idempotency_key_reused"))
        payload = json.loads(response)
        return Refused(_stored_error(payload)) if status >= 400 else payload

    def replay_to_ended(self, rec: IdempotencyRecord | None) -> Any:
        """The answer to a retry made with an ended credential: the stored success of this very request
        (same operation, body and credential: `request_hash` holds the credential of an `ends_session`
        operation), which ended that credential. Anything else, a guessed key, another body, a refusal stored
        under the key, another ended token, is `unauthenticated`, as the ended credential is everywhere."""
        if (not self.decl.ends_session or rec is None or rec.status >= 400
                or not hmac.compare_digest(rec.request_hash, self.request_hash)):
            raise SscardError("unauthenticated")
        return json.loads(rec.response)

    def replay_record(self, rec: IdempotencyRecord | None) -> Any:
        return None if rec is None else self.replay(rec.request_hash, rec.status, rec.response)

    def run(self, session: Session) -> Outcome:
        """Run the body in `session` under its declaration; a refusal is an outcome, not an exception
        (anything else propagates)."""
        op = Op(self.app, session, self.actor, self.name, self.key)
        try:
            result = run_declared(self.decl, op, self.fn, self.args, self.kwargs)
        except SscardError as err:
            return Outcome(self, op, None, err)
        return Outcome(self, op, jsonable(result), None)


REVERSED_FIRST = "reversed-before-original"
"""`idempotency_records.request_hash` of a key a terminal reversed before its request arrived (the reversal
overtook it on the network: banking.reverse_terminal): no request's fingerprint (64 hex digits) is this, and
the request, when it comes, gets the stored refusal (`reversed_before_original`) and moves nothing."""


def key_scope(actor: Actor) -> str:
    """Whose Idempotency-Keys these are (idempotency_records.scope): one caller's keys never meet another's."""
    return f"{actor.kind}:{actor.id}"[:48]


def kept_answer(app: App, actor: Actor, key: str) -> Any | None:
    """The kept answer of this actor's own keyed request that succeeded (its idempotency record), else None
    (no such key, another actor's, a refusal): a page shown after a redirect (the window's
    redirect-after-POST) says what was done, by its key, without doing anything again."""
    if not key:
        return None
    with app.db.read_committed() as session:
        rec = session.get(IdempotencyRecord, (key_scope(actor), key))
        if rec is None or rec.status >= 400:
            return None
        return json.loads(rec.response)


@dataclass(slots=True)
class Outcome:
    """What one run of a request came to, and what the frame writes for it."""

    request: Request
    op: Op
    result: Any
    error: SscardError | None

    @property
    def kept(self) -> bool:
        """Its writes are committed: a success, or a refusal raised with commit=True (a PIN counter)."""
        return self.error is None or self.error.commit

    @property
    def answer(self) -> Any:
        return self.result if self.error is None else Refused(self.error)

    def audit(self) -> dict[str, Any] | None:
        """The columns of its audit record; None for a refusal not worth one."""
        err = self.error
        if err is not None and not err.commit and not _refusal_recorded(err):
            return None
        req = self.request
        return audit_values(req.actor, req.name, self.op.now, req.key, "ok" if err is None else err.code,
                            self.op._audit if err is None else refusal_fields(err, self.op._audit))

    def memo(self) -> dict[str, Any] | None:
        """The columns of its idempotency record (a kept outcome of a keyed request), else None."""
        req = self.request
        if not req.key or not self.kept:
            return None
        err = self.error
        status, payload = (200, self.result) if err is None else (err.status, {"code": err.code, "params": err.params})
        return {"scope": req.scope, "key": req.key, "request_hash": req.request_hash, "status": status,
                "response": json.dumps(jsonable(payload), ensure_ascii=False, default=json_default),
                "created_at": self.op.now}


AUDITS = cast(Table, AuditRecord.__table__)  # declared as a FromClause; a mapped class's table is a Table
KEYS = cast(Table, IdempotencyRecord.__table__)
INSERT_AUDITS = insert(AUDITS).inline()  # no RETURNING: written in the commit's pipeline (and the writer's)
INSERT_KEYS = insert(KEYS).inline()
_AT_COMMIT = "sscard.operation.at_commit"  # session.info: the frame's audit and idempotency rows


@dataclass
class _FrameRows:
    """The audit record and idempotency record the frame writes when its transaction commits."""

    session: Session
    audit: dict[str, Any] | None = None
    memo: dict[str, Any] | None = None

    def write(self) -> None:
        if self.audit is None:
            return
        conn = self.session.connection()
        execute_many(conn, INSERT_AUDITS, [self.audit])
        if self.memo is not None:
            execute_many(conn, INSERT_KEYS, [self.memo])


_frame_rows = per_transaction(_AT_COMMIT, _FrameRows, _FrameRows.write)  # written at commit, as a book is


def write_at_commit(session: Session, audit: dict[str, Any], memo: dict[str, Any] | None) -> None:
    """An operation's audit record and idempotency record (`memo`, a keyed request's answer), written when
    its transaction commits: on PostgreSQL in the pipeline that carries the COMMIT (Database.run's
    `queued_commit`), with the books' writes: no round trip of their own, where the ORM's flush of them
    cost two (an INSERT that reads back its id, then the key's). A twin's stored key fails the insert
    there: an IntegrityError, which `execute` answers from the twin's record. An operation whose events
    name its audit record (the outbox) needs the record's id first: it is inserted at once."""
    items = outbox.take(session)  # (flushes the operation's ORM changes: a state change queues an event)
    if items:
        record = AuditRecord(**audit)
        session.add(record)
        session.flush()  # the audit record's id, which its events name
        outbox.write(session, items, operation=audit["operation"], now=audit["at"], audit_id=record.id)
        if memo is not None:
            session.add(IdempotencyRecord(**memo))
        return
    rows = _frame_rows(session)
    rows.audit, rows.memo = audit, memo


def execute(app: App, request: Request) -> Any:
    """Run one request on its own: one transaction (retried whole on a serialization failure), its
    audit record and idempotency record in it; a refusal that wrote nothing leaves a refusal record
    in a short transaction of its own.

    A commit whose answer is lost (PostgreSQL: the connection broke, the primary died in a failover) is
    never run again blindly: a keyed request stores its answer under its key, which answers the rerun
    (`idempotent`); an unkeyed one (in-process callers: jobs, the CLI, the hotline menus) writes a commit
    marker with its COMMIT instead, and its outcome is looked up on the new connection (`marked`,
    db.Database.committed): committed, the answer computed is given; not, it runs again."""
    key = request.key
    # a commit marker only for what a rerun must not repeat: an operation declared `keyed` (it needs a key
    # over the network) called without one; one declared keyed=False (a quote, a balance) may run twice
    marked = not key and request.decl.keyed
    last: list[Outcome] = []
    # On PostgreSQL the first answer is looked up outside the SERIALIZABLE transaction: reading the
    # idempotency index inside it takes predicate locks on its pages, and while the table is small every
    # keyed request then conflicts with every other. The insert below still makes a twin fail (unique
    # key), and the retry finds the twin's answer here.
    lookup_outside = app.db.dialect == "postgresql"
    # PostgreSQL, a batched operation (it moves money): its accounts' advisory locks are taken before
    # its transaction begins, so it waits for another one on them before its snapshot, not after
    locks = None
    if request.decl.batched:
        from . import batching  # (batching builds on this module)

        locks = batching.locks_alone(request)

    def stored_answer() -> Any:
        def read() -> Any:
            with app.db.read_committed() as session:
                return request.replay_record(session.get(IdempotencyRecord, (request.scope, key)))

        return app.db.reconnecting(read)  # after a failover: on the new primary

    def work(session: Session) -> Any:
        if key and not lookup_outside:
            answer = request.replay_record(session.get(IdempotencyRecord, (request.scope, key)))
            if answer is not None:
                return answer
        if request.decl.batched:
            from . import batching  # (batching builds on this module)

            batching.read_ahead_alone(session, request)
        outcome = request.run(session)
        last[:] = [outcome]
        if not outcome.kept:
            assert outcome.error is not None  # not kept: a refusal
            raise outcome.error
        audit = outcome.audit()
        assert audit is not None  # kept: a success, or a refusal with commit=True, which has its record
        write_at_commit(session, audit, outcome.memo())
        return outcome.answer

    try:
        out = stored_answer() if key and lookup_outside else None
        if out is None:
            try:
                out = app.db.run(work, idempotent=bool(key), marked=marked, locks=locks, queued_commit=True)
            except IntegrityError:
                if not key:
                    raise
                # a concurrent twin stored the key first: answer from it
                out = stored_answer() if lookup_outside else None
                if out is None:
                    out = app.db.run(work, idempotent=bool(key), marked=marked, locks=locks, queued_commit=True)
            except SscardError:
                # With the lookup outside, a twin may commit between that lookup and our transaction,
                # which then refuses because of the twin's own writes (already_exists, illegal_transition):
                # the right answer is the twin's.
                if not (key and lookup_outside):
                    raise
                out = stored_answer()
                if out is None:
                    raise
    except SscardError as err:
        if _refusal_recorded(err):
            fields = last[0].op._audit if last and last[0].error is err else {}
            _audit_refusal(app, request.actor, request.name, key, err, fields)
        raise
    if isinstance(out, Refused):
        raise out.error
    return out


def _audit_refusal(app: App, actor: Actor, name: str, key: str | None, err: SscardError, fields: dict[str, Any]) -> None:
    """Refused attempts that matter (wrong bank, refused debits, forbidden) leave a trace too."""
    try:
        now = app.clock.now()
        named = refusal_fields(err, fields)
        app.db.run(lambda s: s.add(_audit_record(actor, name, now, key, err.code, named)))
    except Exception:  # the refusal itself must still reach the caller
        log.exception("could not write the refusal audit record for %s", name)


P = ParamSpec("P")
R = TypeVar("R", bound=Mapping[str, Any])
R_co = TypeVar("R_co", bound=Mapping[str, Any], covariant=True)
Answer = dict[str, Any]  # what a caller gets back: the body's mapping as JSON reads it (dates as ISO strings)


class Query(Protocol[P, R_co]):
    """A declared read as channels call it: `fn(app, actor, <the body's own arguments>)`."""

    operation_name: str
    declaration: access.Declaration

    @property
    def __wrapped__(self) -> Callable[Concatenate[Op, P], R_co]:
        """The service function itself (functools.wraps), for a body built on another's."""

    def __call__(self, app: App, actor: Actor, /, *args: P.args, **kwargs: P.kwargs) -> Answer: ...


class Operation(Query[P, R_co], Protocol[P, R_co]):
    """A declared operation as channels call it: `fn(app, actor, <the body's own arguments>,
    idempotency_key=None)`. A ParamSpec cannot take one more keyword: tools/mypy_operation.py adds
    `idempotency_key: str | None` to every call mypy checks."""

    def __call__(self, app: App, actor: Actor, /, *args: P.args, **kwargs: P.kwargs) -> Answer: ...


def operation(
    name: str,
    *,
    roles: set[Role] | frozenset[Role],
    scope: access.Scope,
    keyed: bool = True,
    secrets: tuple[str, ...] = (),
    terminals: frozenset[str] | None = None,
    batched: bool = False,
    alone: bool = False,
    ends_session: bool = False,
) -> Callable[[Callable[Concatenate[Op, P], R]], Operation[P, R]]:
    """Declare a business operation: its name (audit, permissions), who may do it, on what scope,
    whether a retried call needs a key (`keyed`, true for every change but failure counters), which
    arguments are secrets, and whether it may be group-committed with other requests (`batched`:
    every call, from any channel, then goes through services.batching's writer, which runs the same
    frame: the same checks, answers, audit and idempotency records). `alone` (with batched): a bulk
    operation (a sweep, a month's credits for a whole city) that the writer runs in a transaction of its
    own, between two batches: serialized with every batch as the others are (no lock queue on SQLite, no
    SERIALIZABLE conflicts with the batches on PostgreSQL), without making a batch's other callers wait
    for it or rerun with it. `ends_session`: its success may end the caller's own credential (a change of
    the query password ends the cardholder's API token): a retry with that ended credential and the same key
    and body is answered the stored first answer (`replay_to_ended`), which may then carry no secret
    (`run_declared` checks); an operation that ends its caller's credential undeclared fails (the same).
    services.access enforces the declaration for every channel.

    To build one operation out of another, call a plain function both use; the declared function is
    the entry point of channels only (calling it inside an operation would open a second transaction)."""
    if alone and not batched:
        raise ValueError(f"operation {name}: alone=True is a way of being batched")
    if ends_session and (not keyed or batched):
        raise ValueError(f"operation {name}: ends_session needs a keyed operation run on its own")
    decl = access.Declaration(name, frozenset(roles), scope, keyed, frozenset(secrets), terminals, batched, alone,
                              ends_session=ends_session)
    access.register(decl)

    def decorate(fn: Callable[Concatenate[Op, P], R]) -> Operation[P, R]:
        _check_secrets_named(fn, decl)
        _BODIES[name] = fn

        @functools.wraps(fn)
        def call(app: App, actor: Actor, /, *args: Any, idempotency_key: str | None = None, **kwargs: Any) -> Answer:
            answer: Answer
            if actor.ended:  # an ended credential: at most the stored answer of the call that ended it
                answer = replay_to_ended(app, Request(app, declared, actor, args, kwargs, idempotency_key))
                return answer
            actor = _on_call(actor)  # a hotline call's operation names the call (its refusal by `admit` too)
            if batched:
                from . import batching  # (batching builds on this module)

                answer = batching.call(app, declared, actor, *args, idempotency_key=idempotency_key, **kwargs)
                return answer
            admit(app, actor, decl, idempotency_key)
            answer = execute(app, Request(app, declared, actor, args, kwargs, idempotency_key))
            return answer

        declared = cast(Operation[P, R], call)
        declared.operation_name = name
        declared.declaration = decl
        return declared

    return decorate


def one_by_one(app: App, op_fn: Query[..., Any], actor: Actor, /, *args: Any, idempotency_key: str | None = None,
               **kwargs: Any) -> Any:
    """Run an operation on its own, in a transaction of its own, even when it is declared `batched`
    (what group commit is measured against: the benchmark's (d))."""
    admit(app, actor, op_fn.declaration, idempotency_key)
    return execute(app, Request(app, op_fn, actor, args, kwargs, idempotency_key))


def replay_to_ended(app: App, request: Request) -> Any:
    """A call with an ended credential (Actor.ended): the first answer stored under its key when that call
    ended this credential (`Request.replay_to_ended`), else `unauthenticated`. It runs nothing and writes
    nothing (a replay leaves no audit record, as every replay); read on the primary (`reconnecting`)."""
    if not request.key:
        raise SscardError("unauthenticated")

    def read() -> Any:
        with app.db.read_committed() as session:
            return request.replay_to_ended(session.get(IdempotencyRecord, (request.scope, request.key)))

    return app.db.reconnecting(read)


def admit(app: App, actor: Actor | None, decl: access.Declaration, idempotency_key: str | None) -> None:
    """The checks before anything runs (role, channel, key), for the frame and the group-commit writer
    alike; a known actor refused leaves a trace."""
    try:
        access.admit(actor, decl.name, idempotency_key)
    except SscardError as err:
        if actor is not None and err.code != "idempotency_key_required":
            _audit_refusal(app, actor, decl.name, idempotency_key, err, {})
        raise


def admit_channel(app: App, actor: Actor, operation: str | None) -> None:
    """The channel rule (access.admit_channel), applied by a channel's entry point as soon as it knows the
    caller, before it reads the rest of the request: another channel's credential is `forbidden` whatever
    the body (FastAPI validates a body only after its dependencies ran). The refused attempt leaves a trace
    under the operation the route calls (`operation`), as `admit`'s refusals do."""
    try:
        access.admit_channel(actor)
    except SscardError as err:
        _audit_refusal(app, actor, operation or "channel", None, err, {})
        raise


def run_declared(decl: access.Declaration, op: Op, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run an operation's body under its declaration: no argument holds text no channel accepts (core/text.py:
    `invalid_text`, before anything is read or written), the scope must have been checked, and no argument
    declared secret may reach the audit record."""
    if unreadable(args) or unreadable(kwargs):
        raise SscardError("invalid_text")
    with access.scope_guard(decl, op.actor):
        result = fn(op, *args, **kwargs)
    if decl.secrets and op._audit.get("detail"):
        _refuse_secret_in_audit(decl, fn, args, kwargs, op._audit["detail"])
    if op._ended_own_session and not decl.ends_session:
        raise RuntimeError(f"operation {decl.name} ended its caller's credential undeclared (ends_session)")
    if decl.ends_session:
        _refuse_secret_in_answer(decl, result)
    return result


_SECRET_KEYS = ("token", "password", "pin", "secret")


def _refuse_secret_in_answer(decl: access.Declaration, answer: Any) -> None:
    """An `ends_session` operation's answer is replayed to the credential it ended, which a thief may hold
    (with the key and the body, but still): it may name no token, password, PIN or secret, at any depth."""
    stack = [answer]
    while stack:
        value = stack.pop()
        if isinstance(value, Mapping):
            for k, v in value.items():
                if any(word in str(k).lower() for word in _SECRET_KEYS):
                    raise RuntimeError(f"operation {decl.name} ends its caller's session: its answer may carry "
                                       f"no secret ({k!r})")
                stack.append(v)
        elif isinstance(value, list | tuple):
            stack.extend(value)


MIN_SECRET_LENGTH = 6
"""Every PIN and password is at least this long (RULES §4): an argument shorter than that was never one (an
unused `bank_pin` of "a" sent with a cash payment), and finding it inside a detail would be chance."""


def _refuse_secret_in_audit(decl: access.Declaration, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], detail: dict[str, Any]) -> None:
    names = _positional_names(fn)
    given = {**{names[i]: a for i, a in enumerate(args) if i < len(names)}, **kwargs}
    secrets = {str(given[n]) for n in decl.secrets if given.get(n) and len(str(given[n])) >= MIN_SECRET_LENGTH}
    for value in detail.values():
        if isinstance(value, str) and any(written_in(value, s) for s in secrets):
            raise RuntimeError(f"operation {decl.name} put a secret argument into its audit record")


def written_in(text: str, secret: str) -> bool:
    """Is `secret` written in `text` as itself, not as a piece of a longer run of letters and digits? A
    6-digit SS password inside a medical quote's 32 random hex digits is chance (about one settlement in
    600,000 answered 500 for it), not an operation that wrote the password down."""
    # (the plain search first: a pattern is compiled only when the secret is there at all, not for every
    # PIN of every payment; each PIN is a pattern of its own, which re's cache would not keep)
    return secret in text and re.search(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", text) is not None


@functools.cache
def _positional_names(fn: Callable[..., Any]) -> tuple[str, ...]:
    params = list(inspect.signature(fn).parameters)[1:]  # after op
    return tuple(params)


_SECRET_WORDS = ("pin", "password")


def _check_secrets_named(fn: Callable[..., Any], decl: access.Declaration) -> None:
    """Every argument whose name says PIN or password must be declared secret, and every declared
    secret must be an argument: a declaration that drifts from the function fails at import."""
    names = set(_positional_names(fn))
    missing = {n for n in names if any(w in n for w in _SECRET_WORDS) and not n.endswith("_id")} - decl.secrets
    unknown = decl.secrets - names
    if missing or unknown:
        raise ValueError(f"operation {decl.name}: undeclared secrets {sorted(missing)}, unknown {sorted(unknown)}")


# Staff and terminals whose reads of a person's data are recorded (PIPL: the cardholder sees who looked at
# their record). Terminals too (session 22's probe: a kiosk's read of a card, a hospital's of a settlement,
# left no trace while the access page promised "staff, terminals or the system").
VIEW_AUDITED = frozenset({Role.CLERK, Role.CENTER_SUPERVISOR, Role.TELLER, Role.BANK_SUPERVISOR, Role.OPERATOR,
                          Role.TERMINAL})


def query(name: str, *, roles: set[Role] | frozenset[Role], scope: access.Scope, secrets: tuple[str, ...] = (),
          terminals: frozenset[str] | None = None) -> Callable[[Callable[Concatenate[Op, P], R]], Query[P, R]]:
    """A read: permission- and scope-checked and run in a (retried) read transaction, not keyed.

    A read refused as a write would be (403: a role that may not, another bank's or center's object)
    leaves one audit record of the attempt, as a refused write does: who tried to look at whose data is
    what an auditor asks (PIPL), and a rule kept by the frame is kept by every channel's reads. Refusals
    of nothing (404) and of malformed input (422) leave none, on reads as on writes. Nor does a refusal
    answered as if the object did not exist (another cardholder's card, another bank's customer by citizen
    ID: 404): its record's commit would make that answer measurably slower than a true "not found", and
    the time would tell the caller what the 404 hides.

    When staff read one person's data (the query says whose with `op.audit(..., person_id=...)`), one
    audit record `result="viewed"` is written after the read, so the read itself stays a read-only
    transaction: the group-commit writer (services.batching) commits the records of many concurrent
    reads together, and the read answers only once its record is committed; if that record cannot be
    written the read fails. Called in a worker thread for an event loop that awaits the records
    (batching.AwaitedViews: the API's GET lane), it returns once its record is queued, and the loop
    waits for the commit before it answers."""
    decl = access.Declaration(name, frozenset(roles), scope, False, frozenset(secrets), terminals, read=True)
    access.register(decl)

    def decorate(fn: Callable[Concatenate[Op, P], R]) -> Query[P, R]:
        _check_secrets_named(fn, decl)

        @functools.wraps(fn)
        def call(app: App, actor: Actor, /, *args: Any, **kwargs: Any) -> Answer:
            actor = _on_call(actor)  # a hotline call's read names the call
            admit(app, actor, decl, None)  # a known caller refused (role, terminal kind) leaves a trace
            last: list[Op] = []

            def work(reads: Reads) -> Any:
                last[:] = [Op(app, None, actor, name, None, _reads=reads)]
                return jsonable(run_declared(decl, last[0], fn, args, kwargs))

            # reads alike (the same operation by the same role) run alike: see Database.read
            try:
                out: Answer = app.db.read(work, shape=(name, actor.role))
            except SscardError as err:
                # refused on its object (another bank's customer, another center's case, not one's own):
                # the attempt is recorded as a refused write's is, with what the read had named so far
                if _refusal_recorded(err):
                    _audit_refusal(app, actor, name, None, err, last[0]._audit if last else {})
                raise
            op = last[0]
            fields = op._audit
            if actor.role in VIEW_AUDITED and (fields.get("person_id") is not None or op._listed):
                from . import batching  # (batching builds on this module)

                views = [fields] if fields.get("person_id") is not None else []
                views += [{**fields, **one} for one in op._listed]
                batching.record_viewed(app, actor, name,
                                       *[audit_values(actor, name, op.now, None, "viewed", v) for v in views])
            return out

        declared = cast(Query[P, R], call)
        declared.operation_name = name
        declared.declaration = decl
        return declared

    return decorate
