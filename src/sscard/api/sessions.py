"""Signed cardholder tokens for the API (short-lived, bound to the server key and to the person's query
password: a change or reset of it ends every token issued before)."""

from __future__ import annotations

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

from ..core.roles import Actor, Channel, Role
from ..services.app import App
from ..services.passwords import query_password_state

CARDHOLDER_PREFIX = "ch."
TOKEN_MAX_AGE = 30 * 60


def _serializer(app: App) -> URLSafeTimedSerializer:
    clock = app.clock

    class _ClockSigner(TimestampSigner):
        """Token age from the app's clock, not the wall clock: expiry is testable and consistent."""

        def get_timestamp(self) -> int:
            return int(clock.now().timestamp())

    return URLSafeTimedSerializer(app.settings.secret_key, salt="sscard.cardholder", signer=_ClockSigner)


def issue_cardholder_token(app: App, person_id: int, generation: int | None = None) -> str:
    """A token for this person under their query password's current generation (`generation`: as the login
    read it in its own transaction; else read now)."""
    if generation is None:
        state = query_password_state(app, person_id)
        generation = state[0] if state else 0
    return CARDHOLDER_PREFIX + _serializer(app).dumps({"p": person_id, "g": generation})


def cardholder_claim(app: App, token: str) -> tuple[int, int] | None:
    """The person and the generation a token was issued under, if its signature is ours and it has not run
    out (no I/O); None otherwise (a token of before generations were stamped included)."""
    if not token.startswith(CARDHOLDER_PREFIX):
        return None
    try:
        data = _serializer(app).loads(token[len(CARDHOLDER_PREFIX) :], max_age=TOKEN_MAX_AGE)
    except BadData:  # a bad signature, an expired one, or a payload that is not ours
        return None
    if not isinstance(data, dict) or type(data.get("p")) is not int or type(data.get("g")) is not int:
        return None
    return data["p"], data["g"]


def cardholder_from_token(app: App, token: str, channel: Channel = Channel.API) -> Actor | None:
    """The cardholder behind a token, or None: a bad or expired signature, or no such person (one read of
    the person's generation: blocking, an async caller runs it in a thread).

    A token issued before the person's query password was last changed or reset is an ended credential
    (`Actor.ended`): refused everything (`unauthenticated`) but the stored answer of the change it made
    itself, retried with the same key and body (services.operation, `ends_session`). `session`: the token's
    keyed digest, which that stored answer is bound to (never the token itself). While the person's query
    password is the initial one the actor may only change it (`Actor.must_change_password`, RULES §4: the
    login answers `must_change_password`, and the frame refuses the rest `password_change_required`)."""
    claim = cardholder_claim(app, token)
    if claim is None:
        return None
    pid, generation = claim
    state = query_password_state(app, pid)
    if state is None:
        return None
    current, initial = state
    return Actor(kind="cardholder", id=str(pid), role=Role.CARDHOLDER, channel=channel, person_id=pid,
                 session=app.secrets.token_digest(token), ended=current != generation, must_change_password=initial)
