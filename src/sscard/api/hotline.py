"""/api/v1 routes of the hotline area: the voice webhook (TwiML) and the agent-transfer queue.

POST /api/v1/hotline/{line}/voice speaks Twilio's webhook: form fields CallSid, Digits (absent on the
call's first request; empty when a Gather timed out), From. `line` is `12333`, `bank:<code>` or a
bank's hotline number. The answer is TwiML built with twilio's VoiceResponse: Say (zh-CN / en-US),
Gather (numDigits, finishOnKey, timeout) whose action posts back here with the turn number, a Redirect
back here when the Gather hears nothing, and Hangup.

Requests must carry a valid X-Twilio-Signature under SSCARD_TWILIO_AUTH_TOKEN; without a token they are
refused (403), unless SSCARD_HOTLINE_UNSIGNED=true (the demo of `make run`) lets anyone drive the menus.
The signature covers the public URL Twilio called: behind a TLS-terminating proxy, SSCARD_HOTLINE_PUBLIC_URL
gives its base (`signed_url`).
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

from ..config import Settings
from ..core.errors import SscardError
from ..core.identifiers import whole_number
from ..hotline import calls
from ..hotline.calls import take_turn
from ..hotline.engine import Reply, load_menu
from ..http import RouteBook
from ..services import hotline as svc
from . import responses as r
from .deps import ActorDep, AppDep, KeyDep

router = RouteBook(prefix="/api/v1", tags=["hotline"])
log = logging.getLogger("sscard.hotline")


def voice_url(line: str, turn: int) -> str:
    return f"/api/v1/hotline/{quote(line, safe=':')}/voice?turn={turn}"


def twiml(reply: Reply, line: str, turn: int, voices: dict[str, str] | None = None) -> str:
    """A Reply as TwiML: lines as Say, the prompt inside a Gather posting back here, or a Hangup."""
    language = (voices or {}).get(reply.lang) or ("en-US" if reply.lang == "en" else "zh-CN")
    response = VoiceResponse()
    for line_text in reply.lines:
        response.say(line_text, language=language)
    if reply.gather and not reply.hangup:
        url = voice_url(line, turn)
        kwargs = {"input": "dtmf", "action": url, "method": "POST", "timeout": reply.gather.timeout,
                  "action_on_empty_result": True}
        if reply.gather.num_digits:
            kwargs["num_digits"] = reply.gather.num_digits
        kwargs["finish_on_key"] = reply.gather.finish_on_key
        gather = response.gather(**kwargs)
        if reply.prompt:
            gather.say(reply.prompt, language=language)
        response.redirect(url, method="POST")  # heard nothing: come back as a timeout
    else:
        response.hangup()
    return str(response)


def _apology(err: SscardError) -> str:
    """A refusal the menus did not expect: say so in both languages and end the call politely."""
    response = VoiceResponse()
    response.say(f"对不起，暂时无法办理：{err.message('zh')}。请稍后再拨。", language="zh-CN")
    response.say(f"Sorry, this cannot be done now: {err.message('en')}. Please call again later.", language="en-US")
    response.hangup()
    return str(response)


def say_who_may_call(settings: Settings) -> None:
    """At start-up, in the server's log (JSON when configured): who may drive the hotline's menus."""
    if settings.twilio_auth_token is None:
        log.warning("hotline webhooks: anyone may drive the menus (SSCARD_HOTLINE_UNSIGNED, a demo)"
                    if settings.hotline_unsigned else
                    "hotline webhooks closed (403): set SSCARD_TWILIO_AUTH_TOKEN to take calls")


def _check_signature(request: Request, form: dict, settings: Settings) -> None:
    """Only the telephony provider drives the hotline: a request signed under the auth token, or, in a
    demo that says so (hotline_unsigned), anyone. Neither configured: refused (config.Settings)."""
    token = settings.twilio_auth_token
    if not token:
        if settings.hotline_unsigned:
            return
        raise SscardError("forbidden")
    signature = request.headers.get("x-twilio-signature", "")
    if not RequestValidator(token).validate(signed_url(request, settings), form, signature):
        raise SscardError("forbidden")


def signed_url(request: Request, settings: Settings) -> str:
    """The URL the telephony provider requested, which its signature covers. Behind a TLS-terminating
    reverse proxy the server receives http://internal-host/...: with SSCARD_HOTLINE_PUBLIC_URL set, the
    URL is that public base with the request's own path and query; without it, the URL as received."""
    base = settings.hotline_public_url
    if not base:
        return str(request.url)
    query = request.url.query
    return base + request.url.path + (f"?{query}" if query else "")


@router.post("/hotline/{line}/voice", response_class=Response, responses=r.TWIML)
async def voice(line: str, request: Request, app: AppDep) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    _check_signature(request, form, app.settings)
    turn_param = request.query_params.get("turn")
    turn = whole_number(turn_param)
    digits = form.get("Digits")
    try:
        result = await run_in_threadpool(take_turn, app, line, form.get("CallSid", ""), digits,
                                         caller=form.get("From", ""), turn=turn)
    except SscardError as err:
        if err.code in ("hotline_not_found", "invalid_request"):
            raise
        return Response(content=_apology(err), media_type="application/xml")
    menu = load_menu("12333" if line == svc.LINE_12333 else "bank")
    body = twiml(result.reply, line, result.turn, menu.voices)
    return Response(content=body, media_type="application/xml")


@router.post("/hotline/{line}/status", status_code=204, response_class=Response)
async def call_status(line: str, request: Request, app: AppDep) -> Response:
    """Twilio's status callback: a completed (hung up, failed, unanswered) call's state is closed."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    _check_signature(request, form, app.settings)
    await run_in_threadpool(calls.call_status, app, line, form.get("CallSid", ""), form.get("CallStatus", ""))
    return Response(status_code=204)


@router.get("/hotline/agent-queue")
def agent_queue(app: AppDep, actor: ActorDep, include_taken: bool = True) -> r.HotlineAgentQueueOut:
    return svc.agent_queue(app, actor, include_taken=include_taken)


@router.post("/hotline/agent-queue/{request_id}/take")
def take_agent_request(request_id: int, app: AppDep, actor: ActorDep, key: KeyDep) -> r.AgentRequestOut:
    return svc.take_agent_request(app, actor, request_id, idempotency_key=key)


@router.post("/hotline/agent-queue/{request_id}/close")
def close_agent_request(request_id: int, app: AppDep, actor: ActorDep, key: KeyDep) -> r.AgentRequestOut:
    return svc.close_agent_request(app, actor, request_id, idempotency_key=key)
