"""Publishing the outbox to NATS JetStream (issue 18): in feed order, at least once, resumable.

Each event goes to stream `SSCARD`, subject `sscard.events.<bank code, or ss>.<type>`, with its uuid
as the `Nats-Msg-Id` header (JetStream drops a repeat inside its duplicate window, and a consumer can
drop one outside it). The last published id is recorded in `event_publications` only after
JetStream's ack: after a crash of the publisher, or while NATS is down, nothing is lost; what was
published but not yet recorded is published again, under the same id. The payload is the feed's
(services.events.payload) as the card's bank reads it: NATS permissions on `sscard.events.<bank>.>`
are what keep a bank to its own cards.

`Publisher(app, url).run_once()` publishes what is pending (the CLI's `sscard events publish --once`);
`start(app, url)` runs it in a background thread (the server starts one when SSCARD_NATS_URL is set).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models.events import Event, EventPublication
from ..models.foundation import Bank, ServiceCenter
from .app import App
from .events import payload
from .operation import json_default

log = logging.getLogger("sscard.events.publisher")
T = TypeVar("T")

STREAM = "SSCARD"
SUBJECTS = "sscard.events.>"
NAME = "nats"
ENV_URL = "SSCARD_NATS_URL"


def subject(bank_code: str | None, type_: str) -> str:
    return f"sscard.events.{bank_code or 'ss'}.{type_}"


def position(app: App, name: str = NAME) -> int:
    """The last event id this publisher's broker acknowledged (0: none yet)."""
    with app.db.read_committed() as session:
        return session.scalar(select(EventPublication.last_id).where(EventPublication.name == name)) or 0


def record(app: App, last_id: int, name: str = NAME) -> None:
    """Remember that every event up to `last_id` is acknowledged; never moves backwards (two
    publishers at once only publish twice, under the same ids)."""
    now = app.clock.now()

    def work(session: Session) -> None:
        done = cast("CursorResult[Any]", session.execute(
            update(EventPublication)
            .where(EventPublication.name == name, EventPublication.last_id < last_id)
            .values(last_id=last_id, updated_at=now)
        )).rowcount
        if not done and session.get(EventPublication, name) is None:
            session.add(EventPublication(name=name, last_id=last_id, updated_at=now))

    try:
        app.db.run(work)
    except IntegrityError:  # another publisher created the row first
        app.db.run(work)


def pending(app: App, after: int, limit: int) -> list[tuple[int, str, str, bytes]]:
    """(id, uuid, subject, payload) of the events after `after`, in feed order."""
    with app.db.read_committed() as session:
        rows = session.scalars(select(Event).where(Event.id > after).order_by(Event.id).limit(limit)).all()
        if not rows:
            return []
        banks = dict(session.execute(select(Bank.id, Bank.code)).all())
        centers = dict(session.execute(select(ServiceCenter.id, ServiceCenter.code)).all())
        out = []
        for e in rows:
            body = payload(e, banks, centers, full_pan=e.bank_id is not None)
            data = json.dumps(body, default=json_default, ensure_ascii=False, sort_keys=True).encode()
            out.append((e.id, e.uuid, subject(banks.get(e.bank_id) if e.bank_id is not None else None, e.type), data))
        return out


class Publisher:
    def __init__(self, app: App, url: str, *, name: str = NAME, batch: int = 200, ack_timeout: float = 2.0):
        self.app, self.url, self.name = app, url, name
        self.batch = batch
        self.ack_timeout = ack_timeout
        self.published = 0  # messages sent and acknowledged by this publisher (repeats included)
        self._nc: Any = None  # nats.aio.client.Client once connected (nats-py is imported on first use)
        self._js: Any = None

    async def connect(self) -> None:
        import nats

        if self._nc is not None and self._nc.is_connected:
            return
        await self.close()
        # once connected, the client reconnects by itself for as long as it takes; but nats-py applies
        # the same unlimited attempts to the first connection, so that one is bounded here
        self._nc = await asyncio.wait_for(nats.connect(
            self.url, connect_timeout=2, allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
            name="sscard-events", error_cb=_connection_error,
        ), timeout=5)
        self._js = self._nc.jetstream()
        await ensure_stream(self._js)

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            try:
                await nc.close()
            except Exception:  # noqa: BLE001  a connection that is already gone
                log.debug("closing the NATS connection failed", exc_info=True)

    async def publish_pending(self) -> int:
        """Publish every pending event, recording progress after each acknowledged batch; the number
        published. Raises when NATS does not acknowledge (the caller retries from the recorded id)."""
        await self.connect()
        total = 0
        while True:
            after = position(self.app, self.name)
            rows = pending(self.app, after, self.batch)
            if not rows:
                return total
            last = after
            try:
                for event_id, uuid, subj, data in rows:
                    await self._js.publish(subj, data, timeout=self.ack_timeout, headers={"Nats-Msg-Id": uuid})
                    last = event_id
                    self.published += 1
                    total += 1
            finally:
                if last > after:
                    record(self.app, last, self.name)  # only what JetStream acknowledged

    async def run_once(self) -> int:
        try:
            return await self.publish_pending()
        finally:
            await self.close()

    async def run(self, stop: threading.Event, poll: float = 0.2) -> None:
        """Publish until `stop` is set: pending events at once, then every `poll` seconds; after an
        error (NATS down, no ack), again after a short pause, from the recorded id."""
        pause = poll
        while not stop.is_set():
            try:
                await self.publish_pending()
                pause = poll
            except Exception as exc:  # noqa: BLE001  NATS away or the database busy: try again
                log.warning("publishing events failed (%s: %s); retrying", type(exc).__name__, exc)
                pause = min(2.0, max(pause * 2, 0.2))
            await asyncio.sleep(pause)
        await self.close()


async def _connection_error(exc: Exception) -> None:
    """One line per connection error (nats-py's default prints a traceback for every attempt)."""
    log.warning("NATS: %s: %s", type(exc).__name__, exc)


async def ensure_stream(js: Any) -> None:
    """The stream exists (created on first use, file storage, a 2-minute duplicate window)."""
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(name=STREAM, subjects=[SUBJECTS], duplicate_window=120.0)


class PublisherThread:
    """A publisher on its own thread and event loop; close() stops it (App.close() does)."""

    def __init__(self, app: App, url: str, *, poll: float = 0.2, **kwargs: Any) -> None:
        self.publisher = Publisher(app, url, **kwargs)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self.publisher.run(self._stop, poll)), name="sscard-events-publisher",
            daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def start(app: App, url: str | None = None) -> PublisherThread | None:
    """Start the App's publisher when a NATS URL is given or SSCARD_NATS_URL is set (once per App)."""
    url = url or os.environ.get(ENV_URL)
    if not url:
        return None
    found = app.extras.get("event_publisher")
    if found is None:
        found = app.extras["event_publisher"] = PublisherThread(app, url)
    return found


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also from a thread whose event loop is already running (an embedding host, a test
    process with a browser driver's loop): then the coroutine runs to its end on a loop of its own in a
    helper thread, and this thread waits for it."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001  handed back to the caller below
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="sscard-coroutine")
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]  # target() set "value" when it did not set "error"
    return value
