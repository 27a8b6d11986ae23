"""The ISO 8583 gateway, driven by a terminal built from pyiso8583 and psec over a real TCP socket."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from sscard.core import terminal_keys
from sscard.core.roles import CLI_OPERATOR, Channel
from sscard.iso8583 import gateway as gateway_module
from sscard.iso8583 import server
from sscard.iso8583.client import Terminal, balances
from sscard.models.foundation import AuditRecord, BankAccount
from sscard.services import loss, staff
from tests.iso8583.conftest import serving, terminal_of
from tests.ledger.helpers import PIN, activated, add_terminal, balance_of, invariants

pytestmark = pytest.mark.keys_required


def test_a_withdrawal_with_its_pin_enciphered_dispenses_and_answers_the_balance_under_the_hosts_mac(city, app, atm):
    card = activated(city, opening_fen=50_000)
    answer = atm.send(atm.message("withdraw", card.pan, 20_000, PIN))  # the client checks the answer's MAC
    assert answer["t"] == "0210" and answer["39"] == "00" and len(answer["38"]) == 6
    assert balances(answer) == {"01": 30_000, "02": 30_000}
    assert answer["11"] == f"{atm.stan:06d}" and answer["2"] == card.pan
    assert balance_of(app, card.pan) == 30_000
    with app.db.session() as s:
        record = s.scalars(select(AuditRecord).where(AuditRecord.operation == "bank.withdraw")
                           .order_by(AuditRecord.id.desc())).first()
    assert (record.actor_id, record.channel, record.result) == ("ATM00001", Channel.TERMINAL.value, "ok")
    assert record.idempotency_key == f"iso8583:{answer['7']}:{answer['11']}" and PIN not in str(record.detail)
    assert invariants(app)["ok"]


def test_a_repeated_message_gets_its_first_answer_and_moves_the_money_once(city, app, atm):
    card = activated(city, opening_fen=50_000)
    first = atm.message("withdraw", card.pan, 10_000, PIN)
    answers = [atm.send(first), atm.send(first | {"t": "0201"})]
    assert [a["39"] for a in answers] == ["00", "00"] and answers[0]["38"] == answers[1]["38"]
    assert balance_of(app, card.pan) == 40_000
    other = atm.send(first | {"4": f"{20_000:012d}"})  # the same STAN and time with another amount
    assert other["39"] == "94" and balance_of(app, card.pan) == 40_000


def test_a_message_whose_mac_fails_does_nothing_and_tries_no_pin(city, app, atm):
    card = activated(city, opening_fen=50_000)
    forged = Terminal("ATM00001", atm.tpk, bytes(16), port=atm.port, clock=atm.clock)  # the right PIN key, another MAC key
    raw = gateway_module.encode(forged.message("withdraw", card.pan, 10_000, PIN), forged.tak)
    answer = atm.send_raw(raw)  # answered under the true key: the client's MAC check passes
    assert answer["39"] == "A0"
    unsigned = atm.send(atm.message("withdraw", card.pan, 10_000, PIN), mac=False)
    assert unsigned["39"] == "A0"
    assert balance_of(app, card.pan) == 50_000
    with app.db.session() as s:
        account = s.scalar(select(BankAccount).where(BankAccount.pan == card.pan))
        assert account.pin_failures == 0
        assert s.scalar(select(AuditRecord).where(AuditRecord.operation == "bank.withdraw")) is None


def test_wrong_pins_in_blocks_count_toward_the_lockout_and_an_unreadable_block_is_a_wrong_pin(city, app, atm):
    card = activated(city, opening_fen=50_000)
    codes = [atm.send(atm.message("withdraw", card.pan, 100, "999999"))["39"]]
    garbled = atm.message("withdraw", card.pan, 100, PIN) | {"52": "0123456789ABCDEF"}
    codes.append(atm.send(garbled)["39"])
    while codes[-1] == "55" and len(codes) < 10:
        codes.append(atm.send(atm.message("withdraw", card.pan, 100, "999999"))["39"])
    assert codes[:2] == ["55", "55"] and codes[-1] == "75", codes
    assert atm.send(atm.message("withdraw", card.pan, 100, PIN))["39"] == "75"  # locked: even the right one
    assert balance_of(app, card.pan) == 50_000


def test_an_atm_takes_no_payment_and_a_pos_dispenses_no_cash(city, app, atm, pos):
    card = activated(city, opening_fen=50_000)
    assert atm.send(atm.message("purchase", card.pan, 1_000, PIN))["39"] == "58"
    assert pos.send(pos.message("withdraw", card.pan, 1_000, PIN))["39"] == "58"
    paid = pos.send(pos.message("purchase", card.pan, 1_000, PIN))
    assert paid["39"] == "00" and balances(paid)["02"] == 49_000
    assert pos.send(pos.message("balance", card.pan, None, PIN))["39"] == "00"
    deposit = atm.send(atm.message("deposit", card.pan, 5_000))
    assert deposit["39"] == "00" and balances(deposit)["01"] == 54_000
    assert invariants(app)["ok"]


def test_a_lost_card_and_an_overdraft_are_refused_with_their_response_codes(city, app, atm):
    card = activated(city, opening_fen=1_000)
    assert atm.send(atm.message("withdraw", card.pan, 5_000, PIN))["39"] == "51"
    loss.report_oral_loss(app, city.cardholder(card, Channel.HOTLINE_BANK), card.pan)
    assert atm.send(atm.message("withdraw", card.pan, 100, PIN))["39"] == "41"
    assert atm.send(atm.message("withdraw", "6222020000000000000", 100, PIN))["39"] in ("14", "30")
    assert balance_of(app, card.pan) == 1_000


def test_sign_on_unknown_terminals_and_unsupported_messages(city, app, atm, gateway):
    signed = atm.sign_on()  # field 70 needs the secondary bitmap: the MAC is field 128
    assert (signed["t"], signed["39"], signed["70"]) == ("0810", "00", "001") and "128" in signed
    stranger = Terminal("ATM09999", atm.tpk, atm.tak, port=gateway, clock=atm.clock)
    card = activated(city, opening_fen=1_000)
    assert stranger.send(stranger.message("withdraw", card.pan, 100, PIN))["39"] == "03"
    stranger.close()
    authorization = atm.message("withdraw", card.pan, 100, PIN) | {"t": "0100"}
    assert atm.send(authorization)["39"] == "40"
    reversal = atm.message("withdraw", card.pan, 100, PIN) | {"t": "0400"}  # a reversal without field 90
    assert atm.send(reversal)["39"] == "30"
    assert atm.send(atm.message("withdraw", card.pan, 100, PIN) | {"3": "501000"})["39"] == "40"
    assert balance_of(app, card.pan) == 1_000


def test_the_log_holds_no_pan_pin_block_or_mac(city, app, atm, caplog):
    card = activated(city, opening_fen=50_000)
    message = atm.message("withdraw", card.pan, 100, PIN)
    with caplog.at_level(logging.DEBUG):
        atm.send(message)
        atm.send(atm.message("withdraw", card.pan, 100, "999999"))
    text = caplog.text
    assert "ATM00001" in text and "answer=00" in text and "answer=55" in text
    for secret in (card.pan, message["52"], PIN, terminal_keys.pin_block(atm.tpk, "999999", card.pan)):
        assert secret not in text


def test_the_key_ceremony_is_recorded_with_check_values_only(city, app):
    add_terminal(city, "ATM00002", "atm", outlet_code="GSB-001")
    out = staff.issue_terminal_keys(app, CLI_OPERATOR, "ATM00002")
    with app.db.session() as s:
        record = s.scalars(select(AuditRecord).where(AuditRecord.operation == "staff.issue_terminal_keys")).one()
    text = str(record.detail)
    for key in out["keys"].values():
        assert key["kcv"] in text
        assert all(c not in text and c[:8] not in text for c in key["components"])
    again = staff.issue_terminal_keys(app, CLI_OPERATOR, "ATM00002")
    assert again["keys"]["tpk"]["kcv"] == out["keys"]["tpk"]["kcv"]  # the same key, other components
    assert again["keys"]["tpk"]["components"] != out["keys"]["tpk"]["components"]
    from sscard.core.errors import SscardError
    with pytest.raises(SscardError):
        staff.issue_terminal_keys(app, CLI_OPERATOR, "ATM-GSB-1")  # 9 characters: no ISO 8583 terminal id


def test_a_captured_message_is_not_taken_an_hour_later_when_its_stored_answer_may_be_gone(city, app, atm, clock):
    card = activated(city, opening_fen=50_000)
    captured = atm.message("withdraw", card.pan, 10_000, PIN)
    assert atm.send(captured)["39"] == "00"
    clock.advance(hours=2)
    assert atm.send(captured)["39"] == "30"  # stale, whatever the idempotency records hold
    late = atm.message("withdraw", card.pan, 10_000, PIN, at=clock.now() - timedelta(minutes=61))
    assert atm.send(late)["39"] == "30"
    assert atm.send(atm.message("withdraw", card.pan, 10_000, PIN))["39"] == "00"  # the terminal's clock is right
    assert balance_of(app, card.pan) == 30_000


def test_field_7_is_read_in_the_year_that_makes_it_nearest():
    from sscard.iso8583.gateway import fresh

    new_year = datetime(2027, 1, 1, 0, 0, 30, tzinfo=UTC)
    assert fresh("1231235959", new_year) and fresh("0101000100", new_year)
    assert not fresh("1231225959", new_year) and not fresh("0230120000", new_year) and not fresh("12312359", new_year)


def test_a_pin_block_round_trips_and_another_pan_reads_no_pin():
    key = terminal_keys.derive(b"k" * 32, "ATM00001", "tpk")
    block = terminal_keys.pin_block(key, "147258", "6222021234567890123")
    assert terminal_keys.pin_from_block(key, block, "6222021234567890123") == "147258"
    assert terminal_keys.pin_from_block(key, block, "6222029999999999999") != "147258"
    assert terminal_keys.derive(b"k" * 32, "ATM00001", "tak") != key
    assert datetime.now(UTC)  # (the client stamps field 7 from the wall clock)


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_any_bytes_get_an_answer_or_a_closed_connection_never_an_exception(raw):
    from tests.support import in_fresh_loop

    class NoApp:  # a message that reaches the terminal lookup has a readable MTI and field 41: not this test's
        secrets = None

    try:
        out = in_fresh_loop(lambda: gateway_module.answer(NoApp(), b"0200" + raw))
    except AttributeError:  # it got as far as looking the terminal up: decoded, so not a format question
        return
    assert out is None or out[:4].isdigit()


def test_a_frame_longer_than_the_limit_closes_the_connection(city, atm):
    import socket
    import struct

    with socket.create_connection(("127.0.0.1", atm.port), timeout=10) as sock:
        sock.sendall(struct.pack(">H", 60_000) + b"0" * 100)
        assert sock.recv(10) == b""  # closed, nothing answered
    card = activated(city, opening_fen=1_000)
    assert atm.send(atm.message("balance", card.pan, None, PIN))["39"] == "00"  # the gateway serves on


def test_another_banks_atm_reaches_no_card_of_this_bank(city, app, gateway):
    card = activated(city, opening_fen=50_000)  # a GSB card
    add_terminal(city, "JSBATM01", "atm", outlet_code="JSB-001")
    other = terminal_of(city, gateway, "JSBATM01")
    try:
        assert other.send(other.message("withdraw", card.pan, 100, PIN))["39"] == "14"
        assert other.send(other.message("balance", card.pan, None, PIN))["39"] == "14"
    finally:
        other.close()
    assert balance_of(app, card.pan) == 50_000



def test_a_terminal_that_sends_and_never_reads_its_answers_is_cut_off(monkeypatch):
    """Session 24's probe: a client that sent messages and never read the answers left the connection
    waiting in `drain()` with no time limit, holding it and every unread answer (3 MB after a minute of
    echoes, on the demo server) for as long as the client kept its socket open. Now an answer must be
    taken within WRITE_SECONDS, or the connection is aborted (not closed: a close waits for the unread
    answers to be flushed). The peer that never reads is a writer whose drain never ends."""
    import struct

    from tests.support import in_fresh_loop

    class NeverRead:
        def __init__(self) -> None:
            self.written, self.aborted, self.closed = b"", False, False
            self.transport = self

        def write(self, data: bytes) -> None:
            self.written += data

        async def drain(self) -> None:
            await asyncio.Event().wait()  # the peer's window stays shut

        def abort(self) -> None:
            self.aborted = True

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(server, "WRITE_SECONDS", 0.2, raising=False)
    peer = NeverRead()

    async def run() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(struct.pack(">H", 5) + b"0200X")  # unreadable: answered 0210 with 30, no app needed
        await asyncio.wait_for(server._connection(None, reader, peer), 5)  # (the old code: held, timed out)

    in_fresh_loop(run)
    assert peer.written[2:6] == b"0210" and peer.aborted and peer.closed


def test_a_balance_too_large_for_field_54_is_left_out_never_written_with_a_digit_too_many(city, app, atm):
    """Session 24's probe: two ATM deposits of 9,999,999,999.99 yuan (each within the money's bound) made a
    balance of 13 digits of fen, which field 54 wrote whole: every character after it moved, and the
    terminal (the simulator's `balances`) could not read the answer. Now the answer leaves field 54 out."""
    card = activated(city, opening_fen=0)
    for _ in range(2):
        assert atm.send(atm.message("deposit", card.pan, 999_999_999_999))["39"] == "00"
    answer = atm.send(atm.message("balance", card.pan, None, PIN))
    assert answer["39"] == "00" and "54" not in answer
    assert balance_of(app, card.pan) == 2 * 999_999_999_999
    small = activated(city, name="李四", opening_fen=1_000)
    assert balances(atm.send(atm.message("balance", small.pan, None, PIN))) == {"01": 1_000, "02": 1_000}


def test_a_stan_or_processing_code_that_is_not_six_digits_is_a_format_error_and_moves_nothing(city, app, atm):
    """Session 24's probe: a deposit with STAN `ABCDEF` (field 11, n6) was approved, and so was one with
    processing code `21ZZZZ` (field 3, n6): both are answered 30 now, and nothing moves."""
    card = activated(city, opening_fen=1_000)
    for field, value in (("11", "ABCDEF"), ("3", "21ZZZZ"), ("11", "00001 ")):
        doc = atm.message("deposit", card.pan, 100)
        doc[field] = value
        assert atm.send(doc)["39"] == "30", (field, value)
    assert balance_of(app, card.pan) == 1_000
    assert atm.send(atm.message("deposit", card.pan, 100))["39"] == "00"


def test_a_connection_that_never_sends_a_message_is_closed_after_the_read_time_not_the_idle_time(monkeypatch):
    """Session 24's probe: a connection that sent nothing (or one byte of a length) was held for the idle
    300 s, so a client could hold thousands for five minutes each. The first message must come within
    READ_SECONDS (a terminal connects to send); between messages the idle time still holds."""
    import struct

    from tests.support import in_fresh_loop

    class Peer:
        def __init__(self) -> None:
            self.written, self.closed = b"", False
            self.transport = self

        def write(self, data: bytes) -> None:
            self.written += data

        async def drain(self) -> None:
            return None

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(server, "READ_SECONDS", 0.2)
    monkeypatch.setattr(server, "IDLE_SECONDS", 30.0)

    async def silent() -> Peer:
        peer, reader = Peer(), asyncio.StreamReader()
        reader.feed_data(b"\x00")  # one byte of a length, then nothing
        await asyncio.wait_for(server._connection(None, reader, peer), 5)  # (the old code: held, timed out)
        return peer

    assert in_fresh_loop(silent).closed

    async def talking() -> tuple[Peer, bool]:
        peer, reader = Peer(), asyncio.StreamReader()
        reader.feed_data(struct.pack(">H", 5) + b"0200X")  # one message, answered; then quiet
        task = asyncio.ensure_future(server._connection(None, reader, peer))
        await asyncio.sleep(0.6)  # past READ_SECONDS: a connection that has spoken waits IDLE_SECONDS
        held = not task.done()
        task.cancel()
        return peer, held

    peer, held = in_fresh_loop(talking)
    assert peer.written[2:6] == b"0210" and held


def test_connections_past_the_bound_take_the_oldest_silent_ones_place_and_a_freed_place_is_taken_again():
    """Session 24's probe held 15,000 idle connections, bounded only by the process's open files. At most
    `max_connections` are open at once. Past it (session 27) a new connection takes the place of the oldest
    one on which no terminal's MAC has been seen (here: two that never said a word), which is closed; once
    one of the open ones ends, a new connection is kept without closing anyone (a terminal has its
    READ_SECONDS to send its first message)."""
    from tests.support import in_fresh_loop

    async def still_open(reader: asyncio.StreamReader) -> bool:
        try:
            return await asyncio.wait_for(reader.read(1), 0.5) != b""
        except TimeoutError:
            return True  # open, waiting for its first message

    async def probe() -> tuple[list[bool], list[bool]]:
        gateway = await server.start(None, "127.0.0.1", 0, max_connections=2)
        port = gateway.sockets[0].getsockname()[1]
        async with gateway:
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            await asyncio.sleep(0.1)
            third = await asyncio.open_connection("127.0.0.1", port)
            after_third = [await still_open(r) for r, _w in (*held, third)]
            held[1][1].close()
            await asyncio.sleep(0.2)  # (the server sees the second one end)
            fourth = await asyncio.open_connection("127.0.0.1", port)
            after_fourth = [await still_open(r) for r, _w in (third, fourth)]
            for _r, w in (third, fourth):
                w.close()
            return after_third, after_fourth

    after_third, after_fourth = in_fresh_loop(probe)
    assert after_third == [False, True, True]  # the oldest silent one gave its place to the third
    assert after_fourth == [True, True]  # a freed place: nobody closed


def test_an_account_type_the_card_does_not_have_is_refused_and_moves_nothing(city, app, atm, pos):
    """Field 3's last four digits name the accounts moved from and to (session 24 left them unread): a
    purchase "from the credit account" was taken from the debit one. The card has one savings account:
    00 (default) and 10 name it; 20 (cheque) is answered 52, 30 (credit) 39, any other 12."""
    card = activated(city, opening_fen=10_000)
    for processing_code, expected in (("002000", "52"), ("003000", "39"), ("004000", "12"), ("000099", "12"),
                                      ("00AB00", "30")):
        doc = pos.message("purchase", card.pan, 100, PIN)
        doc["3"] = processing_code
        assert pos.send(doc)["39"] == expected, processing_code
    assert balance_of(app, card.pan) == 10_000
    for processing_code in ("000000", "001000"):
        doc = pos.message("purchase", card.pan, 100, PIN)
        doc["3"] = processing_code
        assert pos.send(doc)["39"] == "00", processing_code
    deposit = atm.message("deposit", card.pan, 100)
    deposit["3"] = "210010"  # into the savings account
    assert atm.send(deposit)["39"] == "00"
    assert balance_of(app, card.pan) == 10_000 - 200 + 100
    invariants(app)


def test_a_connection_sending_only_unreadable_messages_is_closed_after_three(city, atm):
    """Session 24's probe: a connection whose every frame was answered 30 as undecodable was kept for the
    300 s idle time. Three in a row close it; a readable message between them starts the count again."""
    import socket
    import struct

    garbage = b"0200" + b"\xff" * 20  # a request's MTI, then nothing this gateway decodes
    with socket.create_connection(("127.0.0.1", atm.port), timeout=10) as sock:
        for _ in range(3):
            sock.sendall(struct.pack(">H", len(garbage)) + garbage)
            (length,) = struct.unpack(">H", sock.recv(2))
            assert b"30" in sock.recv(length)  # each answered 30
        assert sock.recv(10) == b""  # then closed
    card = activated(city, opening_fen=1_000)
    with socket.create_connection(("127.0.0.1", atm.port), timeout=10) as sock:

        def exchange(raw: bytes) -> bytes:
            sock.sendall(struct.pack(">H", len(raw)) + raw)
            (length,) = struct.unpack(">H", sock.recv(2))
            return sock.recv(length)

        for _ in range(3):  # two unreadable, then a good one: the count starts again, the connection stays
            for _ in range(2):
                assert exchange(garbage)
            good = gateway_module.decode(exchange(gateway_module.encode(
                atm.message("balance", card.pan, None, PIN), atm.tak)))
            assert good["39"] == "00"


def test_a_message_whose_mti_is_no_request_is_not_answered_and_never_ends_in_a_traceback(city, app, atm, caplog):
    """Session 27's probe: an MTI whose third digit is 9 (0290, 0190, from any terminal, known or not, MAC or
    none) made the answer's MTI five characters (`0210` + 1 = `02100`), which pyiso8583 refused: the
    connection ended in asyncio's "Unhandled exception in client_connected_cb" with a traceback, no answer;
    `02A0` did the same with a ValueError, and `0 00` or `0210` (an answer sent back) were "answered" `0 10` and
    `0220`. A request (third digit 0) or an advice (2) of four ASCII digits is answered; anything else is no
    message this gateway answers: the connection is closed without a word, and the gateway serves on."""
    card = activated(city, opening_fen=1_000)
    with caplog.at_level(logging.INFO):
        for mti in ("0290", "0190", "02A0", "0 00", "0210", "0230", "0810"):
            for mac in (True, False):
                doc = atm.message("balance", card.pan, None, PIN) | {"t": mti}
                with pytest.raises(ConnectionError):
                    atm.send(doc, mac=mac)
                atm.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "not a request" in caplog.text
    assert atm.send(atm.message("balance", card.pan, None, PIN) | {"t": "0400"})["t"] == "0410"
    assert atm.send(atm.message("balance", card.pan, None, PIN) | {"t": "0420"})["39"] == "40"
    assert atm.send(atm.message("balance", card.pan, None, PIN))["39"] == "00"


def test_a_terminal_lookup_that_fails_is_answered_96_and_the_connection_serves_on(city, app, atm, monkeypatch, caplog):
    """Session 27's probe: the terminal's lookup (field 41, before its MAC is checked) is the one database
    call outside the frame's error handling; when it failed (a database gone away, a pool exhausted) the
    message was not answered at all: asyncio's "Unhandled exception in client_connected_cb" ended the
    connection, and a terminal waiting for its answer had to time out. Now it is answered 96 (system
    malfunction, without a MAC: the terminal is not known yet), the traceback is in the gateway's own log,
    and the connection serves the next message."""
    from sqlalchemy.exc import OperationalError

    card = activated(city, opening_fen=1_000)

    def gone(_app, _code):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(staff, "actor_for_terminal", gone)
    with caplog.at_level(logging.INFO):
        failed = atm.send(atm.message("balance", card.pan, None, PIN))
    assert failed["39"] == "96" and "64" not in failed
    assert "iso8583 terminal lookup failed" in caplog.text
    assert not [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]
    monkeypatch.undo()
    assert atm.send(atm.message("balance", card.pan, None, PIN))["39"] == "00"  # the same connection


def test_connections_are_bounded_below_the_open_file_limit_so_new_ones_are_refused_not_left_unaccepted(tmp_path):
    """Session 27's probe, on a gateway whose open-file limit was the usual soft 1,024 (a systemd service's
    default): 1,100 connections with no key between them, each sending one message from an unknown terminal
    (answered 03, then idle for 300 s), left the process without file descriptors long before
    MAX_CONNECTIONS (2,000): accept() failed with EMFILE, asyncio logged "out of system resource" with a
    traceback ~800 times a second (7 MB of log in 20 s), and a real terminal's new connection was never
    accepted (it timed out) while the attacker held on. The bound is now kept below the process's open-file
    limit (with room for the database and the logs): past it a new connection is accepted and closed at
    once, and the log has no EMFILE. Run in a process of its own, whose limit the test sets low."""
    import os
    import socket
    import subprocess
    import sys
    import time

    script = (
        "import asyncio, resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400))\n"
        "from sscard.iso8583 import server\n"
        "async def main():\n"
        "    gw = await server.start(None, '127.0.0.1', 0)\n"
        "    print(gw.sockets[0].getsockname()[1], flush=True)\n"
        "    async with gw:\n"
        "        await asyncio.sleep(30)\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, text=True)
    held: list[socket.socket] = []
    try:
        port = int(proc.stdout.readline())
        unaccepted = 0
        for _ in range(450):
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                unaccepted += 1  # (the old code: refused or timed out once the process had no files left)
        time.sleep(1.5)
        kept = closed = 0
        for sock in held:
            sock.settimeout(0.05)
            try:
                closed += sock.recv(1) == b""
            except TimeoutError:
                kept += 1  # open: waiting for its first message
        assert unaccepted == 0 and 16 <= kept <= 400 - 100 and kept + closed == 450, (unaccepted, kept, closed)
        time.sleep(0.5)
    finally:
        for sock in held:
            sock.close()
        proc.kill()
        _out, err = proc.communicate(timeout=10)
    assert "out of system resource" not in err and "Too many open files" not in err, err[-2000:]


def test_on_the_29th_of_february_a_terminals_messages_are_taken(city, app, atm, clock):
    """Session 27's probe: field 7 (MMDDhhmmss, no year) was read in the year before, this year and the next,
    and the first of them in which the date did not exist ended the reading as stale: on 29 February 2028
    the year before (2027) has no such day, so every financial message of that day was refused 30, in every
    ATM and POS of the city, and so was one stamped 23:59 on the 29th answered just after midnight. A date
    that does not exist in one candidate year is read in the others."""
    from sscard.iso8583.gateway import fresh

    assert fresh("0229120000", datetime(2028, 2, 29, 12, 0, 30, tzinfo=UTC))
    assert fresh("0229235959", datetime(2028, 3, 1, 0, 0, 30, tzinfo=UTC))
    assert not fresh("0229120000", datetime(2027, 3, 1, 12, 0, tzinfo=UTC))  # no 29 February near 2027
    card = activated(city, opening_fen=50_000)
    clock.set(datetime(2028, 2, 29, 9, 30, tzinfo=UTC))
    answer = atm.send(atm.message("withdraw", card.pan, 10_000, PIN))
    assert answer["39"] == "00" and answer["7"].startswith("0229")
    assert balance_of(app, card.pan) == 40_000


def test_keyless_connections_holding_every_place_give_way_to_a_terminal_and_never_displace_one(city, app):
    """Session 27's probe: connections with no key between them, each sending one message of an unknown
    terminal (answered 03, then kept for the idle 300 s), took every place, and every real terminal that
    connected after them was closed at once for as long as they held on. Now a new connection, when every
    place is taken, takes the place of the oldest one on which no terminal's MAC has been seen; a terminal's
    connection (its MAC verified) is never closed for a newcomer, and when every place is a terminal's the
    newcomer is closed, as before."""
    import socket
    import struct

    card = activated(city, opening_fen=50_000)
    add_terminal(city, "ATM00001", "atm", outlet_code="GSB-001")
    with serving(app, max_connections=3) as port:
        first = terminal_of(city, port, "ATM00001")
        assert first.send(first.message("balance", card.pan, None, PIN))["39"] == "00"  # a terminal's place
        keyless = []
        for _ in range(2):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            stranger = gateway_module.encode(first.message("balance", card.pan, None, PIN) | {"41": "NOSUCH01"}, None)
            sock.sendall(struct.pack(">H", len(stranger)) + stranger)
            (length,) = struct.unpack(">H", sock.recv(2))
            assert gateway_module.decode(sock.recv(length))["39"] == "03"
            keyless.append(sock)
        late = terminal_of(city, port, "ATM00001")  # every place taken: two keyless, one a terminal's
        late.stan = 100  # (the same terminal's other connection: its own STANs)
        assert late.send(late.message("withdraw", card.pan, 10_000, PIN))["39"] == "00"  # (the old code: closed)
        assert keyless[0].recv(10) == b""  # the oldest keyless one gave its place
        assert first.send(first.message("balance", card.pan, None, PIN))["39"] == "00"  # still served
        other = terminal_of(city, port, "ATM00001")
        other.stan = 200
        assert other.send(other.message("balance", card.pan, None, PIN))["39"] == "00"  # took the second's
        assert keyless[1].recv(10) == b""
        with socket.create_connection(("127.0.0.1", port), timeout=10) as past:
            assert past.recv(10) == b""  # every place a terminal's: the newcomer is closed
        for term in (first, late, other):
            assert term.send(term.message("balance", card.pan, None, PIN))["39"] == "00"
            term.close()
        for sock in keyless:
            sock.close()
    assert balance_of(app, card.pan) == 40_000
