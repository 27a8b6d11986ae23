"""Tables of the counter area: powers of attorney, window visits (the identity check), replacement
and renewal applications, and numbered fee receipts."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class PowerOfAttorney(Base):
    """授权委托书: the principal lets the agent do the operations named in `scope` between two dates."""

    __tablename__ = "powers_of_attorney"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)  # the principal
    agent_name: Mapped[str] = mapped_column(String(32))
    agent_citizen_id: Mapped[str] = mapped_column(String(18))
    scope: Mapped[list] = mapped_column(JSON, default=list)  # operation names
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date] = mapped_column(Date)
    document_ref: Mapped[str] = mapped_column(String(64))
    center_id: Mapped[int | None] = mapped_column(ForeignKey("service_centers.id"), nullable=True)
    recorded_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    revoke_reason: Mapped[str] = mapped_column(String(128), default="")


class CounterVisit(Base):
    """One identity check at a window: who presented the cardholder's ID (the cardholder, or an agent
    with a power of attorney and their own ID). Later actions of the same clerk refer to it."""

    __tablename__ = "counter_visits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    center_id: Mapped[int | None] = mapped_column(ForeignKey("service_centers.id"), nullable=True)
    staff_id: Mapped[str] = mapped_column(String(32))
    presenter: Mapped[str] = mapped_column(String(16))  # cardholder | agent
    attorney_id: Mapped[int | None] = mapped_column(ForeignKey("powers_of_attorney.id"), nullable=True)
    checked_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ReplacementApplication(Base):
    """补卡/换卡: the old card, the new one, why, the fee and where the new card is to be collected."""

    __tablename__ = "replacement_applications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    old_card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"), index=True)
    new_card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"), unique=True)
    reason: Mapped[str] = mapped_column(String(16))  # lost | damaged | expiring | data_change | bank_change
    fee_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    fee_status: Mapped[str] = mapped_column(String(16))  # none | paid | waived
    apply_center_id: Mapped[int] = mapped_column(ForeignKey("service_centers.id"))
    collect_center_id: Mapped[int] = mapped_column(ForeignKey("service_centers.id"))
    attorney_id: Mapped[int | None] = mapped_column(ForeignKey("powers_of_attorney.id"), nullable=True)
    staff_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]


class FeeReceipt(Base):
    """A numbered receipt for a production fee paid (cash or card) or waived by a supervisor."""

    __tablename__ = "fee_receipts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    receipt_no: Mapped[str] = mapped_column(String(24), unique=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("replacement_applications.id"), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    center_id: Mapped[int] = mapped_column(ForeignKey("service_centers.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # what was paid (0 when waived)
    due_fen: Mapped[int] = mapped_column(BigInteger)  # what the policy asked
    method: Mapped[str] = mapped_column(String(8))  # cash | card | waived
    staff_id: Mapped[str] = mapped_column(String(32))
    staff_name: Mapped[str] = mapped_column(String(32), default="")
    waived_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    waive_reason: Mapped[str] = mapped_column(String(128), default="")
    attorney_id: Mapped[int | None] = mapped_column(ForeignKey("powers_of_attorney.id"), nullable=True)
    ledger_transfer_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    paid_at: Mapped[datetime] = mapped_column(index=True)


class Reversal(Base):
    """A center supervisor's reversal of a clerk's action (core.reversal): one row per reversed audit
    record, so an action is reversed at most once, whatever two supervisors click at the same moment."""

    __tablename__ = "reversals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_record_id: Mapped[int] = mapped_column(BigInteger, unique=True)  # the reversed action's record
    operation: Mapped[str] = mapped_column(String(64))
    center_id: Mapped[int] = mapped_column(ForeignKey("service_centers.id"), index=True)
    reversed_by: Mapped[str] = mapped_column(String(32))  # the supervisor's staff id
    reversed_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(200))
