"""One ISO 8583 message in, its answer out: `answer(app, raw) -> bytes` (the TCP framing is server.py's).

What a terminal sends (ASCII, ISO 8583:1987, pyiso8583's default ASCII field formats):
- 0800 network management, field 70: 001 sign-on, 002 sign-off, 301 echo; answered 0810.
- 0200 financial request, field 3's first two digits: 00 purchase (POS), 01 cash withdrawal (ATM),
  21 deposit (ATM), 31 balance inquiry (both); 0201 its repeat. Answered 0210.
  Fields: 2 PAN, 3 processing code, 4 amount in fen (not for 31), 7 transmission date and time
  (MMDDhhmmss), 11 STAN, 41 terminal id (the terminal's code, 8 characters), 49 currency 156,
  52 the PIN block (not for 21), 64 (or 128 with a secondary bitmap) the MAC; 12, 13, 22, 25, 37, 42
  are echoed when sent.
- 0400 reversal request (0401 its repeat; answered 0410) and 0420 reversal advice (0421 its repeat,
  sent until answered; answered 0430): the terminal's own withdrawal (01) or purchase (00) named by field
  90 (original MTI, STAN, field 7, institution ids), reversed wholly or, with field 95 (its first 12
  digits the amount actually dispensed), partly: `bank.reverse_terminal` (RULES R10.13; `_reversal`). No PIN
  block; field 4 the original's amount. Not located: 25 to a request; an advice is acknowledged 00.
- Anything else (0100 authorizations, other processing codes) is answered with response code 40, "function
  not supported". A terminal that lost an answer repeats its request (0201, same field 7 and STAN), which
  the frame answers from its first answer.
- An MTI that is neither a request (third digit 0) nor an advice (2), or not four digits (an answer sent
  back, 0210; an acknowledgement, 0x9x), is not answered: the connection is closed.

Guarantees, each from the frame or from here once for every message:
- a message is only acted on when its MAC verifies under the terminal's MAC key (A0 otherwise: nothing
  done, no PIN tried);
- the PIN is read out of the block under the terminal's PIN key and given to the operation as its
  declared secret; an unreadable block is a wrong PIN (counted, RULES §4), never an error naming why;
- field 7 + field 11 are the request's idempotency key, scoped to the terminal by the frame: a repeat gets
  the first answer (same response code, same balance), a reuse with other fields 94 "duplicate";
- the operation runs as the terminal (its kind, bank and place), so an ATM cannot take a payment nor a POS
  dispense cash (58), and its audit record is the same as over the REST terminal API;
- a financial message whose field 7 is more than `FRESH` from the host's clock (UTC, as field 7 is) is
  refused 30 and nothing is done: a captured message cannot be replayed after its stored answer (the
  frame's, kept `api.idempotency_keep_days`) is pruned;
- the answer's PAN, PIN block and MAC never reach a log: logged lines carry the MTI, the processing code,
  the terminal, the STAN and the response code only.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import iso8583
from iso8583.specs import default_ascii

from ..core import terminal_keys
from ..core.errors import SscardError
from ..core.identifiers import ascii_digits, mask_pan
from ..services import banking, batching, staff

log = logging.getLogger("sscard.iso8583")

SPEC: dict[str, Any] = copy.deepcopy(default_ascii)
MAX_MESSAGE_BYTES = 2_048  # explicit limit: the longest message this gateway reads (a 0200 is ~150 bytes)
CURRENCY_CNY = "156"  # ISO 4217 numeric
MAC_PLACEHOLDER = "0" * 16
FRESH = timedelta(hours=1)  # how far a financial message's transmission time may be from the host's

# Processing code (first two digits) -> the operation and whether it moves an amount / reads a PIN.
PROCESSING: dict[str, tuple[Any, bool, bool]] = {
    "00": (banking.purchase, True, True),
    "01": (banking.withdraw, True, True),
    "21": (banking.deposit, True, False),
    "31": (banking.balance_inquiry, False, True),
}

# A refusal's code -> ISO 8583:1987 response code (as China UnionPay's acquirers read them).
RESPONSE_CODES: dict[str, str] = {
    "insufficient_funds": "51",
    "wrong_pin": "55",
    "pin_not_set": "55",
    "pin_locked": "75",
    "limit_exceeded": "61",
    "card_lost": "41",
    "account_lost": "41",
    "account_frozen": "62",
    "card_not_usable": "62",
    "card_cancelled": "62",
    "card_expired": "54",  # expired card (RULES R10.14)
    "account_closed": "62",
    "not_activated": "62",
    "activation_window_expired": "62",
    "invalid_pan": "14",
    "account_not_found": "14",
    "card_not_found": "14",
    "wrong_bank": "14",
    "invalid_amount": "13",
    "forbidden": "58",
    "wrong_terminal_kind": "58",
    "idempotency_key_reused": "94",
    "invalid_request": "30",
    "service_busy": "91",
}
APPROVED, FORMAT_ERROR, NOT_SUPPORTED, DO_NOT_HONOUR, SYSTEM_ERROR = "00", "30", "40", "05", "96"
UNKNOWN_TERMINAL, MAC_FAILED, INVALID_TRANSACTION = "03", "A0", "12"
ECHOED = ("2", "3", "4", "7", "11", "12", "13", "22", "25", "32", "37", "41", "42", "49")


class Unreadable(bytes):
    """The answer to a message that could not be decoded (39 = 30): the server counts them in a row."""


class Authenticated(bytes):
    """The answer to a message whose MAC verified under an active terminal's key: the server keeps its
    connection as a terminal's (server.Slots: never closed to make room for a new one)."""


class FormatError(ValueError):
    """A message that is not one this gateway reads (answered 30 when its MTI can be read)."""


def decode(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise FormatError("message too long")
    try:
        doc, _fields = iso8583.decode(bytearray(raw), SPEC)
    except (iso8583.DecodeError, UnicodeDecodeError, ValueError) as exc:
        raise FormatError(str(exc).split(":")[0]) from None
    return doc


def encode(doc: dict[str, Any], tak: bytes | None) -> bytes:
    """The message's bytes; with a key, its MAC in its last field (64, or 128 with a secondary bitmap)."""
    out = {k: v for k, v in doc.items() if k not in ("h", "b", "p", "s", "64", "128")}
    if tak is None:
        raw, _ = iso8583.encode(out, SPEC)
        return bytes(raw)
    mac_field = "128" if any(ascii_digits(k) and int(k) > 64 for k in out) else "64"
    out[mac_field] = MAC_PLACEHOLDER
    raw, _ = iso8583.encode(out, SPEC)
    body = bytes(raw[:-len(MAC_PLACEHOLDER)])
    return body + terminal_keys.message_mac(tak, body).encode()


def mac_verifies(raw: bytes, doc: dict[str, Any], tak: bytes) -> bool:
    """The MAC is the message's last field and matches the bytes before it."""
    highest = max((int(k) for k in doc if ascii_digits(k)), default=0)
    if highest not in (64, 128):
        return False
    return terminal_keys.mac_matches(tak, raw[:-16], str(doc[str(highest)]))


def idempotency_key(doc: dict[str, Any]) -> str:
    """The network's own retry key: transmission date and time and the STAN (a repeat keeps both)."""
    return f"iso8583:{doc['7']}:{doc['11']}"


async def answer(app: Any, raw: bytes) -> bytes | None:
    """The answer to one message, or None when not even its MTI can be read (the connection is closed)."""
    try:
        doc = decode(raw)
    except FormatError as exc:
        mti = raw[:4].decode("ascii", "replace")
        log.info("iso8583 unreadable message (%s) mti=%s", exc, mti if ascii_digits(mti) else "?")
        answer_mti = _answer_mti(mti)
        if answer_mti is not None:  # a request or an advice: answered
            return Unreadable(encode({"t": answer_mti, "39": FORMAT_ERROR}, None))
        return None
    mti = doc["t"]
    answer_mti = _answer_mti(mti)
    if answer_mti is None:
        log.info("iso8583 mti=%s is not a request nor an advice: not answered, connection closed",
                 mti if ascii_digits(mti) else "?")
        return None
    reply = {"t": answer_mti, **{k: doc[k] for k in ECHOED if k in doc}}
    code = str(doc.get("41", "")).strip()
    try:
        actor = await asyncio.to_thread(staff.actor_for_terminal, app, code) if code else None
    except Exception:  # noqa: BLE001  (the database gone away): answered, not a dropped connection
        log.exception("iso8583 terminal lookup failed")
        _log(doc, SYSTEM_ERROR)
        return encode(reply | {"39": SYSTEM_ERROR}, None)  # no MAC: the terminal is not known yet
    if actor is None:
        _log(doc, UNKNOWN_TERMINAL)
        return encode(reply | {"39": UNKNOWN_TERMINAL}, None)
    tak = app.secrets.terminal_key(code, "tak")
    if not mac_verifies(raw, doc, tak):
        _log(doc, MAC_FAILED)
        return encode(reply | {"39": MAC_FAILED}, tak)
    if mti in ("0800", "0801"):
        reply["70"] = doc.get("70", "301")
        result = APPROVED if reply["70"] in ("001", "002", "301") else NOT_SUPPORTED
        _log(doc, result)
        return Authenticated(encode(reply | {"39": result}, tak))
    if mti in REVERSALS:
        reply.update(await _reversal(app, actor, doc, advice=mti[2] == "2"))
        _log(doc, reply["39"])
        return Authenticated(encode(reply, tak))
    if mti not in ("0200", "0201"):
        _log(doc, NOT_SUPPORTED)
        return Authenticated(encode(reply | {"39": NOT_SUPPORTED}, tak))
    reply.update(await _financial(app, actor, code, doc))
    _log(doc, reply["39"])
    return Authenticated(encode(reply, tak))


async def _financial(app: Any, actor: Any, code: str, doc: dict[str, Any]) -> dict[str, str]:
    kind = str(doc.get("3", ""))[:2]
    if kind not in PROCESSING:
        return {"39": NOT_SUPPORTED}
    op_fn, moves, needs_pin = PROCESSING[kind]
    pan, amount = str(doc.get("2", "")), str(doc.get("4", ""))
    if not pan or "7" not in doc or not _numeric(doc.get("11"), 6) or not _numeric(doc.get("3"), 6) \
            or (moves and not ascii_digits(amount)) or (needs_pin and "52" not in doc):
        return {"39": FORMAT_ERROR}  # (11, the STAN, and 3 are n6: `ABCDEF` or `21ZZZZ` are no message's)
    if not fresh(str(doc["7"]), app.clock.now()):
        return {"39": FORMAT_ERROR}
    refused_type = _account_type_refusal(str(doc["3"]))
    if refused_type:
        return {"39": refused_type}
    if moves and doc.get("49", CURRENCY_CNY) != CURRENCY_CNY:
        return {"39": INVALID_TRANSACTION}  # invalid transaction: this card's account holds yuan only
    args: list[Any] = [pan] + ([int(amount)] if moves else [])
    if needs_pin:
        tpk = app.secrets.terminal_key(code, "tpk")
        args.append(terminal_keys.pin_from_block(tpk, str(doc["52"]), pan) or "")  # unreadable: a wrong PIN
    try:
        out = await batching.acall(app, op_fn, actor, *args, idempotency_key=idempotency_key(doc))
    except SscardError as err:
        return {"39": RESPONSE_CODES.get(err.code, DO_NOT_HONOUR)}
    except Exception:  # noqa: BLE001  a terminal gets "system malfunction", the log the traceback
        log.exception("iso8583 %s from %s failed", op_fn.operation_name, code)
        return {"39": SYSTEM_ERROR}
    reply = {"39": APPROVED}
    amounts = _balances(out)
    if amounts is not None:
        reply["54"] = amounts
    if out.get("transfer_id"):
        reply["38"] = _authorization_id(str(out["transfer_id"]))
    return reply


REVERSALS = ("0400", "0401", "0420", "0421")  # reversal request, its repeat; reversal advice, its repeat
REVERSED_KINDS = ("00", "01")  # field 3: a purchase (POS) or a cash withdrawal (ATM)
ORIGINAL_MTIS = ("0200", "0201")
NOT_FOUND, ADVICE_TAKEN = "25", "00"
REVERSAL_CODES = {"reversal_original_not_found": NOT_FOUND, "reversal_too_late": INVALID_TRANSACTION,
                  "invalid_amount": "13"}


def original_key(field90: str) -> str | None:
    """The idempotency key of the 0200 that field 90 (original data elements, n42: original MTI, STAN,
    transmission date and time, acquirer and forwarding institution ids, 11 digits each) names, or None
    when field 90 names no financial request of this gateway."""
    if len(field90) != 42 or not ascii_digits(field90) or field90[:4] not in ORIGINAL_MTIS:
        return None
    return f"iso8583:{field90[10:20]}:{field90[4:10]}"


async def _reversal(app: Any, actor: Any, doc: dict[str, Any], *, advice: bool) -> dict[str, str]:
    """A reversal (0400/0401 -> 0410) or a reversal advice (0420/0421 -> 0430) of this terminal's own 0200:
    `bank.reverse_terminal`, keyed by its own fields 7 and 11 as any message is (a repeated 0421 is answered
    from the first answer), the original named by field 90, the amount really dispensed by field 95 (its first
    12 digits; absent: nothing was). No PIN block: the terminal sends it, not the cardholder. An advice is
    acknowledged (0430, 39 = 00) when taken, whether or not the original was found: the terminal stops
    repeating it; a request is answered 25 when the original cannot be located."""
    kind = str(doc.get("3", ""))[:2]
    if kind not in REVERSED_KINDS:
        return {"39": NOT_SUPPORTED}  # a deposit, a balance inquiry: nothing a terminal reverses
    amount, field90, field95 = str(doc.get("4", "")), str(doc.get("90", "")), doc.get("95")
    if "7" not in doc or not _numeric(doc.get("11"), 6) or not _numeric(doc.get("3"), 6) \
            or not _numeric(amount, 12) or not field90 or (field95 is not None and not _numeric(str(field95)[:12], 12)):
        return {"39": FORMAT_ERROR}
    if not fresh(str(doc["7"]), app.clock.now()):
        return {"39": FORMAT_ERROR}
    if doc.get("49", CURRENCY_CNY) != CURRENCY_CNY:
        return {"39": REVERSAL_CODES["invalid_amount"]}  # the original moved yuan: another currency's amount is no amount of it
    key = original_key(field90)
    if key is None:
        return {"39": ADVICE_TAKEN if advice else NOT_FOUND}
    dispensed = int(str(field95)[:12]) if field95 is not None else 0
    try:
        out = await batching.acall(app, banking.reverse_terminal, actor, key, dispensed,
                                   pan=str(doc.get("2", "")) or None, amount_fen=int(amount),
                                   original_at=sent_at(field90[10:20], app.clock.now()),
                                   idempotency_key=idempotency_key(doc))
    except SscardError as err:
        if advice and err.code == "reversal_original_not_found":
            return {"39": ADVICE_TAKEN}
        return {"39": REVERSAL_CODES.get(err.code) or RESPONSE_CODES.get(err.code, DO_NOT_HONOUR)}
    except Exception:  # noqa: BLE001  a terminal gets "system malfunction" (an advice: sent again), the log the traceback
        log.exception("iso8583 reversal from %s failed", actor.id)
        return {"39": SYSTEM_ERROR}
    reply = {"39": APPROVED}
    amounts = _balances(out)
    if amounts is not None:
        reply["54"] = amounts
    return reply


# Field 3's last four digits: the account types moved from and to. The card's bank side is one savings
# (debit) account: "00" (the default) or "10" name it; a cheque or credit account it does not have.
ACCOUNT_TYPES = ("00", "10")
NO_ACCOUNT_OF_TYPE = {"20": "52", "30": "39"}  # no cheque account, no credit account


def _account_type_refusal(processing_code: str) -> str | None:
    """The response code refusing field 3's account types, or None when both name the card's account:
    a purchase from a credit account is not silently taken from the debit one."""
    for kind in (processing_code[2:4], processing_code[4:6]):
        if kind not in ACCOUNT_TYPES:
            return NO_ACCOUNT_OF_TYPE.get(kind, INVALID_TRANSACTION)
    return None


def _numeric(value: Any, length: int) -> bool:
    """A fixed-length numeric field (ISO 8583's n): exactly `length` ASCII digits."""
    return isinstance(value, str) and len(value) == length and ascii_digits(value)


def fresh(field7: str, now: datetime) -> bool:
    """Field 7 (MMDDhhmmss, UTC, no year) names a moment within FRESH of `now` (the year that makes it
    nearest: a message sent at 23:59:59 on 31 December answered on 1 January). A date one of those years
    does not have (29 February) is read in the others: ending the reading there refused every message of
    29 February 2028, which 2027 has not (session 27)."""
    at = sent_at(field7, now)
    return at is not None and abs(now - at) <= FRESH


def sent_at(field7: str, now: datetime) -> datetime | None:
    """The moment a field 7 (MMDDhhmmss, UTC, no year) names, in the year that makes it nearest `now`
    (of the year before, this one and the next: a year without its date, 29 February, is passed over);
    None when it names no moment."""
    if len(field7) != 10 or not ascii_digits(field7):
        return None
    month, day, hour, minute, second = (int(field7[i:i + 2]) for i in range(0, 10, 2))
    moments = []
    for year in (now.year - 1, now.year, now.year + 1):
        try:
            moments.append(datetime(year, month, day, hour, minute, second, tzinfo=UTC))
        except ValueError:
            continue
    return min(moments, key=lambda at: abs(now - at), default=None)


AMOUNT_DIGITS = 12  # an amount of field 54: n12, fen


def _balances(out: dict[str, Any]) -> str | None:
    """Field 54, additional amounts: account type 10 (savings), amount types 01 (ledger) and 02
    (available), currency 156, sign, 12 digits of fen; None (no field 54) for a balance of more digits
    (10 billion yuan and more: each deposit is bounded, a balance is not), which written whole shifted
    every character after it and made the terminal read another amount."""
    fen = int(out["balance_fen"]), int(out["available_fen"])
    if any(abs(f) >= 10**AMOUNT_DIGITS for f in fen):
        return None

    def one(kind: str, fen: int) -> str:
        return f"10{kind}{CURRENCY_CNY}{'C' if fen >= 0 else 'D'}{abs(fen):0{AMOUNT_DIGITS}d}"

    return one("01", fen[0]) + one("02", fen[1])


def _authorization_id(transfer_id: str) -> str:
    """Field 38: six characters naming the ledger transfer (its id's last six, upper case)."""
    return transfer_id.replace("-", "")[-6:].upper().rjust(6, "0")


def _answer_mti(mti: str) -> str | None:
    """0200 -> 0210, 0201 -> 0210, 0420 -> 0430, 0800 -> 0810: the answer's class of the request's; None for
    an MTI that is not four ASCII digits naming a request (third digit 0) or an advice (2). An answer (0210),
    an acknowledgement (0x8x, 0x9x) or a notification is answered by nothing: session 27's probe sent 0290,
    whose answer's MTI came out five characters (`02100`) and ended the connection in a traceback."""
    if len(mti) != 4 or not ascii_digits(mti) or mti[2] not in "02":
        return None
    return mti[:2] + str(int(mti[2]) + 1) + "0"


def _log(doc: dict[str, Any], code: str) -> None:
    log.info("iso8583 mti=%s proc=%s terminal=%s stan=%s pan=%s answer=%s", doc.get("t"), doc.get("3", "-"),
             str(doc.get("41", "")).strip(), doc.get("11", "-"), mask_pan(str(doc.get("2", ""))) or "-", code)
