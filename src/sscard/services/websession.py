"""Browser sessions for the staff consoles and the cardholder portal.

The cookie carries a random token; the server keeps its keyed digest, the CSRF token, who it is and
when it was last used. A session idle longer than its timeout, or older than its absolute lifetime however
busy it is kept (by the injected clock), is over; logout ends it at once; a forged or ended cookie is simply not found.
"""

from __future__ import annotations

import secrets as pysecrets
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.clock import as_utc
from ..core.errors import SscardError
from ..core.roles import Actor, Channel, Role
from ..models.foundation import Person, StaffUser, WebSession
from .app import App
from .passwords import cardholder_actor, login_with_query_password, query_password_is_initial
from .staff import authenticate_staff, staff_actor

IDLE_TIMEOUT = {"staff": timedelta(minutes=15), "cardholder": timedelta(minutes=10)}
# However busy it is kept, a session ends this long after its login (OWASP's absolute timeout): a stolen
# cookie replayed every few minutes, or a console left signed in and used by whoever passes, lasts no longer
# than a working day at a desk, an hour on the portal. Then the login page, as after idling.
ABSOLUTE_TIMEOUT = {"staff": timedelta(hours=10), "cardholder": timedelta(hours=1)}
PORTAL_GATEWAY = Actor(kind="channel", id="portal", role=Role.SYSTEM, name="portal login", channel=Channel.PORTAL)


class WebLogin:
    def __init__(self, token: str, csrf: str, actor: Actor, must_change_password: bool = False):
        self.token, self.csrf, self.actor, self.must_change_password = token, csrf, actor, must_change_password


def _open(app: App, kind: str, actor: Actor, channel: Channel, must_change: bool = False,
          generation: int | None = None) -> WebLogin:
    """Open a session. A cardholder's is opened only under the query-password generation its password was
    checked in (`generation`, from query_password.login): a change or reset commits between that check's
    transaction and this one ends every portal session there is, not the one still to be opened, which
    would live on, signed in with the password the reset was for (session 24's timing probe). Read in the
    same transaction as the insert, so one of the two sees the other (serialized, or SERIALIZABLE)."""
    token, csrf = pysecrets.token_urlsafe(32), pysecrets.token_urlsafe(24)
    now = app.clock.now()

    def work(session: Session) -> None:
        if kind == "cardholder" and (session.scalar(select(Person.query_pw_generation).where(
                Person.id == actor.person_id)) or 0) != generation:
            raise SscardError("wrong_password")
        session.add(
            WebSession(
                digest=app.secrets.token_digest(token),
                kind=kind,
                staff_user_id=int(actor.id) if kind == "staff" else None,
                person_id=actor.person_id if kind == "cardholder" else None,
                csrf=csrf,
                channel=str(channel),
                must_change_password=must_change,
                created_at=now,
                last_seen=now,
            )
        )

    app.db.run(work)
    return WebLogin(token, csrf, actor, must_change)


def staff_login(app: App, username: str, password: str, channel: Channel) -> WebLogin | None:
    """None for any wrong user or password (the page never says which)."""
    actor = authenticate_staff(app, username, password, channel)
    if actor is None:
        return None
    return _open(app, "staff", actor, channel, actor.must_change_password)


def cardholder_login(app: App, login: str, password: str) -> WebLogin:
    """Raises SscardError (wrong_password / password_locked) like the API login; counts toward the lock."""
    result = login_with_query_password(app, PORTAL_GATEWAY, login, password)
    actor = cardholder_actor(result["person_id"], result["name"], Channel.PORTAL)
    return _open(app, "cardholder", actor, Channel.PORTAL, bool(result["must_change_password"]), result["generation"])


def resolve(app: App, token: str | None, kind: str) -> tuple[Actor, WebSession] | None:
    """The session's Actor (and row) if the token is live and of this kind; touches last_seen."""
    if not token:
        return None
    digest = app.secrets.token_digest(token)
    now = app.clock.now()

    def work(session: Session) -> tuple[Actor, WebSession] | None:
        row = session.get(WebSession, digest)
        if row is None or row.kind != kind or row.ended_at is not None:
            return None
        if (as_utc(now) - as_utc(row.last_seen) > IDLE_TIMEOUT[kind]
                or as_utc(now) - as_utc(row.created_at) > ABSOLUTE_TIMEOUT[kind]):
            row.ended_at = now
            return None
        row.last_seen = now
        if kind == "staff":
            user = session.get(StaffUser, row.staff_user_id)
            if user is None or not user.active:
                return None
            # a password reset to a one-time one (staff.reset_password): only its change until done, by the
            # frame's rule for an initial password (access.BEFORE_FIRST_CHANGE), read from the account each time
            actor = replace(staff_actor(session, user, Channel(row.channel)),
                            must_change_password=bool(user.must_change_password))
        else:
            person = session.get(Person, row.person_id)
            assert person is not None  # a cardholder's session holds its person (web_sessions.person_id, a foreign key)
            # the frame refuses all but the change while the password is initial (Actor.must_change_password),
            # as the portal's pages send such a session to the change page (web.portal: _me)
            actor = replace(cardholder_actor(person.id, person.name, Channel.PORTAL),
                            must_change_password=query_password_is_initial(person))
        session.expunge(row)
        return actor, row

    return app.db.run(work)


def session_key(app: App, token: str) -> str:
    """A session's key as it is stored (its token's keyed digest): what a service is told to keep when it
    ends a person's other sessions (passwords.change_query_password)."""
    return app.secrets.token_digest(token)


def password_changed(app: App, token: str) -> None:
    """The portal's forced change is done: lift the must-change mark on this session."""
    digest = app.secrets.token_digest(token)

    def work(session: Session) -> None:
        row = session.get(WebSession, digest)
        if row is not None:
            row.must_change_password = False

    app.db.run(work)


def logout(app: App, token: str | None) -> None:
    if not token:
        return
    digest = app.secrets.token_digest(token)
    now = app.clock.now()

    def work(session: Session) -> None:
        row = session.scalar(select(WebSession).where(WebSession.digest == digest))
        if row is not None and row.ended_at is None:
            row.ended_at = now

    app.db.run(work)
