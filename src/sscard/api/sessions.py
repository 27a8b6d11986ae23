"""Signed cardholder tokens for the API (stateless, short-lived, bound to the server key)."""

from __future__ import annotations

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

from ..core.roles import Actor, Channel, Role
from ..services.app import App

CARDHOLDER_PREFIX = "ch."
TOKEN_MAX_AGE = 30 * 60


def _serializer(app: App) -> URLSafeTimedSerializer:
    clock = app.clock

    class _ClockSigner(TimestampSigner):
        """Token age from the app's clock, not the wall clock: expiry is testable and consistent."""

        def get_timestamp(self) -> int:
            return int(clock.now().timestamp())

    return URLSafeTimedSerializer(app.settings.secret_key, salt="sscard.cardholder", signer=_ClockSigner)


def issue_cardholder_token(app: App, person_id: int) -> str:
    return CARDHOLDER_PREFIX + _serializer(app).dumps({"p": person_id})


def cardholder_from_token(app: App, token: str, channel: Channel = Channel.API) -> Actor | None:
    if not token.startswith(CARDHOLDER_PREFIX):
        return None
    try:
        data = _serializer(app).loads(token[len(CARDHOLDER_PREFIX) :], max_age=TOKEN_MAX_AGE)
    except BadData:  # a bad signature, an expired one, or a payload that is not ours
        return None
    pid = int(data["p"])
    return Actor(kind="cardholder", id=str(pid), role=Role.CARDHOLDER, channel=channel, person_id=pid)
