"""A call's turns, for any channel: load the state, let the engine move it, save it back.

`take_turn(app, line, call_sid, digits)` is all a channel calls: the voice webhook with Twilio's CallSid
and Digits, the terminal simulator with its own call id. The state lives in the database (through
services.hotline), so consecutive turns may be served by different processes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from ..core.clock import as_utc
from ..core.errors import SscardError
from ..services import hotline as svc
from ..services.app import App
from .engine import Engine, Gather, Reply, load_menu


@dataclass
class Turn:
    reply: Reply
    turn: int  # the number the channel sends back with the next keys (a retried request is answered again)
    status: str


def line_info(app: App, line: str) -> dict:
    return svc.line_info(app, svc.GATEWAY_12333, line)


def menu_for(info: dict):
    return load_menu("12333" if info["line"] == svc.LINE_12333 else "bank")


KEEPS_THE_CALL = ("hotline_not_found", "invalid_request", "call_not_found", "call_conflict")
"""Refusals that leave the call as it is: a request that is not a turn of this line's call, or one that
another request of the same call (a twin) overtook, which goes on."""


def take_turn(app: App, line: str, call_sid: str, digits: str | None, *, caller: str = "",
              turn: int | None = None) -> Turn:
    """One turn of a call. A first request for a call id starts the call; `digits` None or "" is a
    timeout; a `turn` other than the call's current one is a retry and hears the current prompt again.
    A refusal the menus did not expect ends the call (the channel apologizes and hangs up), and with it
    what the call held."""
    if not call_sid or len(call_sid) > 64:
        raise SscardError("invalid_request")
    info = line_info(app, line)
    try:
        return _take_turn(app, info, call_sid, digits, caller=caller, turn=turn)
    except SscardError as err:
        if err.code not in KEEPS_THE_CALL:
            try:
                _hang_up(app, info, call_sid)
            except SscardError:
                pass  # the refusal is what the caller hears; a call left over is the idle sweep's
        raise


def _take_turn(app: App, info: dict, call_sid: str, digits: str | None, *, caller: str, turn: int | None) -> Turn:
    state = _call_on(app, info, call_sid)
    engine = Engine(app, menu_for(info), info)
    if state is not None:  # the number is not kept with the call: it rides along for a callback request
        state["callback_number"] = caller
    if state is None:
        state = {"call_sid": call_sid, "line": info["line"], "caller": _mask_caller(caller), "lang": "zh",
                 "slots": {}, "node": engine.menu.start, "person_id": None, "identified_by": "",
                 "after_identify": "", "callback_number": caller}
        reply = engine.start(state)
        _forget_when_ended(state)
        _remember(state, None, reply)
        try:
            saved = svc.create_call(app, state)
        except SscardError as err:
            if err.code != "call_conflict":
                raise
            return _twins_answer(app, engine, call_sid, None, None)  # a twin of the first request started it
        return Turn(reply, saved["turn"], saved["status"])
    if state["status"] != "active":
        return Turn(Reply(state["lang"], hangup=True), state["turn"], state["status"])
    last = _answered(state, turn, digits)
    if last is not None:  # a retry of the request answered last: its answer again, nothing done again
        return Turn(last, state["turn"], state["status"])
    idle = app.clock.now() - as_utc(state["updated_at"])
    expired = idle > timedelta(minutes=engine.menu.idle_minutes)
    if not expired and turn is not None and turn != state["turn"]:
        return Turn(engine.reprompt(state), state["turn"], state["status"])
    if _taken(state) or not svc.claim_turn(app, state, {**state["slots"], TAKEN: _mark(state)}):
        # a twin of this request (the provider's copy, sent at once or while this turn runs) took this
        # turn first: nothing runs here (the action would run twice, refused the second time); the twin's
        # answer is this one's
        return _twins_answer(app, engine, call_sid, turn, digits)
    reply = engine.expire(state) if expired else engine.step(state, digits)
    _forget_when_ended(state)
    _remember(state, turn, reply)
    try:
        saved = svc.save_call(app, state)
    except SscardError as err:
        if err.code != "call_conflict":
            raise
        # a twin of this request (the provider's retry, sent while this one ran) moved the call first:
        # its answer is this request's too (session 22's probe: one copy apologized and hung up on a
        # caller whose loss was recorded)
        again = svc.load_call(app, call_sid)
        twin = _answered(again, turn, digits) if again is not None else None
        if twin is None or again is None:
            raise
        return Turn(twin, again["turn"], again["status"])
    return Turn(reply, saved["turn"], saved["status"])


TAKEN = "_taken"
"""The call's slot marking the turn a request has taken and is running (the turn's number, and when by the
wall clock: a lease between server processes); the request's save replaces the call's slots, mark and all.
A mark older than TAKEN_FOR (its server stopped) is taken over."""
TAKEN_FOR = 30.0


def _mark(state: dict) -> dict:
    return {"turn": state["turn"], "at": time.time()}


def _taken(state: dict) -> bool:
    mark: Any = (state.get("slots") or {}).get(TAKEN)
    return bool(mark) and mark.get("turn") == state["turn"] and time.time() - float(mark.get("at", 0)) < TAKEN_FOR


TWIN_WAIT_SECONDS = 8.0  # Twilio waits 15 s for an answer; a twin waits for its first copy's about half that


def _twins_answer(app: App, engine: Engine, call_sid: str, turn: int | None, digits: str | None) -> Turn:
    """The answer the twin that took this turn gives, once it has saved it; if it never does in time (its
    server stopped), the call's current prompt, which the caller can answer again."""
    deadline = time.monotonic() + TWIN_WAIT_SECONDS
    while True:
        state = svc.load_call(app, call_sid)
        if state is None:
            raise SscardError("call_not_found")
        if state["status"] != "active":
            return Turn(Reply(state["lang"], hangup=True), state["turn"], state["status"])
        answer = _answered(state, turn, digits)
        if answer is not None:
            return Turn(answer, state["turn"], state["status"])
        if time.monotonic() >= deadline:
            return Turn(engine.reprompt(state), state["turn"], state["status"])
        time.sleep(0.05)


LAST_REPLY = "_last_reply"
"""The call's slot holding its last answer and the turn it answered: Twilio retries a webhook it got no
answer to in time, and plays the retry's answer. A retry gets the first one (its confirmation included),
where it heard the current prompt only, or (a retry of the call's first request) counted as silence."""


def _remember(state: dict, turn: int | None, reply: Reply) -> None:
    if state.get("status", "active") != "active" or reply.hangup:
        state["slots"].pop(LAST_REPLY, None)
        return
    state["slots"][LAST_REPLY] = {"turn": turn, "reply": asdict(reply)}


def _answered(state: dict, turn: int | None, digits: str | None) -> Reply | None:
    """The answer already given to a request carrying this turn (None: the call's first request, sent
    again with no keys); None when this request is new."""
    last: Any = (state.get("slots") or {}).get(LAST_REPLY)
    if not last or last.get("turn") != turn or (turn is None and digits):
        return None
    if turn is not None and turn == state["turn"]:
        return None  # the turn the call waits for: new keys, not a retry
    raw = dict(last["reply"])
    gather = raw.pop("gather", None)
    return Reply(**raw, gather=Gather(**gather) if gather else None)


def _call_on(app: App, info: dict, call_sid: str) -> dict | None:
    """The call with this id on this line; None when there is none yet; a call of another line is
    `call_not_found`: a line's webhooks (turns and status) never reach another line's calls."""
    state = svc.load_call(app, call_sid)
    if state is not None and state["line"] != info["line"]:
        raise SscardError("call_not_found")
    return state


FINAL_STATUSES = ("completed", "busy", "failed", "no-answer", "canceled")  # Twilio's: the call is over


def call_status(app: App, line: str, call_sid: str, status: str) -> str | None:
    """A line's status callback: the line must be one of ours (`hotline_not_found`, as for its turns); a
    final status ends the call of this line with this id (none of another line's)."""
    info = line_info(app, line)
    return _hang_up(app, info, call_sid) if status in FINAL_STATUSES else None


def hang_up(app: App, line: str, call_sid: str) -> str | None:
    """The caller hung up (Twilio's status callback, or the terminal's Ctrl-D): the call on this line is over."""
    return _hang_up(app, line_info(app, line), call_sid)


def _hang_up(app: App, info: dict, call_sid: str) -> str | None:
    """End the call (dropping what it held, services.hotline.kept_slots); a turn saved meanwhile is read
    again and the call ended after it."""
    for attempt in range(3):
        state = _call_on(app, info, call_sid)
        if state is None:
            return None
        if state["status"] != "active":
            return state["status"]
        state["status"] = "ended"
        _forget_when_ended(state)
        try:
            return svc.save_call(app, state)["status"]
        except SscardError as err:
            if err.code != "call_conflict" or attempt == 2:
                raise
    return None


def _forget_when_ended(state: dict) -> None:
    if state["status"] != "active":
        state["slots"] = {k: v for k, v in (state.get("slots") or {}).items() if k in svc.KEPT_AFTER_END}


def _mask_caller(caller: str) -> str:
    caller = (caller or "")[:32]
    return caller[:3] + "*" * max(0, len(caller) - 7) + caller[-4:] if len(caller) > 7 else caller
