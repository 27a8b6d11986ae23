"""Tables of the hotline area: the state of each phone call, and callers waiting for a human agent.

A call's state is kept here (not in a server process) so any process can take the next turn of the
call. It never holds an entered secret: passwords and PINs are checked at the step they are typed
and only the outcome is kept.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class HotlineCall(Base):
    __tablename__ = "hotline_calls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    line: Mapped[str] = mapped_column(String(24))  # "12333" or "bank:<code>"
    caller: Mapped[str] = mapped_column(String(32), default="")  # masked caller number
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | ended | agent
    node: Mapped[str] = mapped_column(String(48))
    lang: Mapped[str] = mapped_column(String(2), default="zh")
    turn: Mapped[int] = mapped_column(Integer, default=0)
    timeouts: Mapped[int] = mapped_column(Integer, default=0)  # no input in a row
    invalid: Mapped[int] = mapped_column(Integer, default=0)  # wrong menu keys in a row
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # refused inputs at the current step
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), nullable=True, index=True)
    identified_by: Mapped[str] = mapped_column(String(16), default="")  # query_password | pin | personal_data
    after_identify: Mapped[str] = mapped_column(String(48), default="")
    slots: Mapped[dict] = mapped_column(JSON, default=dict)  # non-secret facts gathered in the call
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class HotlineAgentRequest(Base):
    """A caller who pressed 0: waits for a human agent; shown on the window (or bank) console."""

    __tablename__ = "hotline_agent_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("hotline_calls.id"))
    line: Mapped[str] = mapped_column(String(24))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), nullable=True)
    node: Mapped[str] = mapped_column(String(48), default="")  # where in the menu the caller asked
    topic: Mapped[str] = mapped_column(String(64), default="")
    lang: Mapped[str] = mapped_column(String(2), default="zh")
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | taken | closed
    requested_at: Mapped[datetime]
    taken_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    taken_at: Mapped[datetime | None] = mapped_column(nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    note: Mapped[str] = mapped_column(String(128), default="")
    # the caller's number, for the agent who calls back; erased once the request is done
    callback_number: Mapped[str] = mapped_column(String(24), default="", server_default="")


Index("ix_hotline_agent_requests_line_status", HotlineAgentRequest.line, HotlineAgentRequest.status)
