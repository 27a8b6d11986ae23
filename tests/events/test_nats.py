"""The outbox published to NATS JetStream: in feed order, at least once, through restarts of NATS and of
the publisher; a repeat carries the same Nats-Msg-Id (the event's uuid)."""

from __future__ import annotations

import json
import time

from sscard.core.roles import SYSTEM_ACTOR
from sscard.services import banking, batching, events, loss, publisher
from tests.events.nats_server import nats_server  # noqa: F401  (fixture)


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def feed_all(app, actor) -> list[dict]:
    out, after = [], 0
    while True:
        page = events.feed(app, actor, after, 500)
        if not page["events"]:
            return out
        out += page["events"]
        after = page["next_after"]


def stream_messages(url: str) -> list[tuple[str, str, dict]]:
    """Every message the stream holds: (subject, Nats-Msg-Id, payload), in stream order."""

    async def read():
        import nats

        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            info = await js.stream_info(publisher.STREAM)
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(publisher.STREAM, seq)
                out.append((msg.subject, msg.headers["Nats-Msg-Id"], json.loads(msg.data)))
            return out
        finally:
            await nc.close()

    return publisher.run_coroutine(read())


def credits(app, pan: str, start: int, stop: int) -> None:
    """Pension credits through the group-commit writer (its events are written by the writer)."""
    for month in range(start, stop):
        batching.call(app, banking.credit_pension, SYSTEM_ACTOR, pan, 100 + month, period=f"p{month}")


def test_every_event_reaches_jetstream_through_a_nats_restart_and_a_publisher_restart(city, nats_server,  # noqa: F811
                                                                                       monkeypatch):
    app = city.app
    card = city.issued_card("孙八")
    loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)  # the loss at the window
    credits(app, card.pan, 0, 60)

    # NATS goes down mid-stream: right after the publisher has recorded its first acknowledged batch
    real_record = publisher.record
    stopped = []

    def record_then_stop_nats(app_, last_id, name=publisher.NAME):
        real_record(app_, last_id, name)
        if not stopped:
            stopped.append(last_id)
            nats_server.stop()

    monkeypatch.setattr(publisher, "record", record_then_stop_nats)
    first = publisher.PublisherThread(app, nats_server.url, poll=0.05, batch=10, ack_timeout=0.5)
    wait_until(lambda: stopped)
    credits(app, card.pan, 60, 90)  # events keep coming while NATS is down
    time.sleep(1.0)  # the publisher tries, gets no ack, and records nothing more
    first.close()  # the publisher restarts too
    last_id = feed_all(app, city.actor("operator"))[-1]["id"]
    assert stopped[0] == publisher.position(app) < last_id

    nats_server.start()
    monkeypatch.setattr(publisher, "record", real_record)
    second = publisher.PublisherThread(app, nats_server.url, poll=0.05, batch=10)
    credits(app, card.pan, 90, 100)
    everything = feed_all(app, city.actor("operator"))
    wait_until(lambda: publisher.position(app) == everything[-1]["id"])
    second.close()

    messages = stream_messages(nats_server.url)
    by_uuid: dict[str, list] = {}
    for subject, msg_id, body in messages:
        assert msg_id == body["uuid"]  # a repeat carries the same id
        by_uuid.setdefault(msg_id, []).append((subject, body))
    assert set(by_uuid) == {e["uuid"] for e in everything}  # every event arrived
    for copies in by_uuid.values():
        assert all(c == copies[0] for c in copies)  # and every copy of one is the same message
    first_seen = list(dict.fromkeys(msg_id for _s, msg_id, _b in messages))
    assert first_seen == [e["uuid"] for e in everything]  # in feed order

    losses = [(s, b) for s, _m, b in messages if b["after"] == "formal_loss"]
    assert len(losses) == 1
    assert losses[0][0] == "sscard.events.GSB.card.ss_status_changed" and losses[0][1]["pan"] == card.pan
    assert sum(1 for e in everything if e["type"] == "bank.pension_credited") == 100


def test_publish_once_from_the_command_line_resumes_from_the_last_acknowledged_event(city, nats_server,  # noqa: F811
                                                                                      monkeypatch):
    import typer
    from typer.testing import CliRunner

    from sscard import cli
    from sscard.cli import events as events_cli

    app = city.app
    card = city.issued_card("周九")
    monkeypatch.setattr(cli, "load_app", lambda: app)
    command = typer.Typer()  # only this area's commands: the global app's others keep their own load_app
    events_cli.register(command)
    runner = CliRunner()
    out = runner.invoke(command, ["events", "publish", "--once", "--url", nats_server.url])
    assert out.exit_code == 0, out.output
    first = publisher.position(app)
    assert first == feed_all(app, city.actor("operator"))[-1]["id"]

    loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)
    out = runner.invoke(command, ["events", "publish", "--once", "--url", nats_server.url])
    assert out.exit_code == 0 and "published 1;" in out.output, out.output
    assert len(stream_messages(nats_server.url)) == first + 1

    nats_server.stop()
    out = runner.invoke(command, ["events", "publish", "--once", "--url", nats_server.url])
    assert out.exit_code == 1  # NATS away: it says so, and the position stays
    assert publisher.position(app) == first + 1


def test_the_server_publishes_by_itself_when_sscard_nats_url_is_set(city, nats_server, monkeypatch):  # noqa: F811
    from fastapi.testclient import TestClient

    from sscard.composition import create_app

    app = city.app
    card = city.issued_card("冯二")
    monkeypatch.setenv(publisher.ENV_URL, nats_server.url)
    with TestClient(create_app(app)):
        loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)
        last = feed_all(app, city.actor("operator"))[-1]
        wait_until(lambda: publisher.position(app) == last["id"])
    assert stream_messages(nats_server.url)[-1][1] == last["uuid"]
