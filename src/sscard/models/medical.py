"""Tables of the medical area (issue 5): designated institutions, the personal account (per person, so it
follows the person from card to card), monthly contribution credits, yearly fund usage, settlements."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class MedicalInstitution(Base):
    """A hospital (level 1/2/3) or pharmacy; designated (定点) or not; with a settlement account."""

    __tablename__ = "medical_institutions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # hospital | pharmacy
    level: Mapped[int | None] = mapped_column(Integer, nullable=True)  # hospitals: 1, 2, 3
    designated: Mapped[bool] = mapped_column(Boolean, default=True)
    area_code: Mapped[str] = mapped_column(String(6), default="")
    settlement_bank_id: Mapped[int | None] = mapped_column(ForeignKey("banks.id"), nullable=True)
    settlement_account_no: Mapped[str] = mapped_column(String(32), default="")
    ledger_account_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # its account in the ledger
    created_at: Mapped[datetime]


class PersonalAccount(Base):
    """The medical personal account (个人账户) of an insured person, on the social security side."""

    __tablename__ = "medical_personal_accounts"
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), primary_key=True)
    balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    opened_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class ContributionCredit(Base):
    """A month's contribution credited to the personal account: also the proof of being insured that month."""

    __tablename__ = "medical_contribution_credits"
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    credited_at: Mapped[datetime]


class AnnualUsage(Base):
    """What a person's year has used so far: deductible met and pooled-fund payments (for the cap)."""

    __tablename__ = "medical_annual_usage"
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    deductible_used_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    fund_used_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class MedicalSettlement(Base):
    """A settlement or the refund that reverses it (a new entry with negative amounts; never an update
    of the amounts of the original)."""

    __tablename__ = "medical_settlements"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    kind: Mapped[str] = mapped_column(String(12))  # settlement | refund
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("medical_settlements.id"), nullable=True, unique=True)
    quote_nonce: Mapped[str | None] = mapped_column(String(32), nullable=True, unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"))
    institution_id: Mapped[int] = mapped_column(ForeignKey("medical_institutions.id"))
    terminal_id: Mapped[int] = mapped_column(ForeignKey("terminals.id"))
    at: Mapped[datetime]
    year: Mapped[int] = mapped_column(Integer)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    covered_fen: Mapped[int] = mapped_column(BigInteger)
    uncovered_fen: Mapped[int] = mapped_column(BigInteger)
    deductible_fen: Mapped[int] = mapped_column(BigInteger)
    copay_fen: Mapped[int] = mapped_column(BigInteger)
    fund_fen: Mapped[int] = mapped_column(BigInteger)
    personal_fen: Mapped[int] = mapped_column(BigInteger)
    self_pay_fen: Mapped[int] = mapped_column(BigInteger)
    self_pay_method: Mapped[str] = mapped_column(String(8))  # cash | bank | none
    bank_reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    personal_balance_after_fen: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[list] = mapped_column(JSON, default=list)
    reason: Mapped[str] = mapped_column(String(64), default="")


class PersonalAccountMovement(Base):
    """Every change of a personal account: monthly credit (+), settlement (-), refund (+)."""

    __tablename__ = "medical_account_movements"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    kind: Mapped[str] = mapped_column(String(12))  # credit | settlement | refund
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # signed
    balance_after_fen: Mapped[int] = mapped_column(BigInteger)
    month: Mapped[str | None] = mapped_column(String(7), nullable=True)
    # No foreign key on purpose: under SERIALIZABLE the key check reads the settlements' newest index page,
    # which every concurrent settlement writes to, and made settlements abort each other. It is written in
    # the same transaction as the settlement it names.
    settlement_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime]


Index("ix_medical_settlements_person_at", MedicalSettlement.person_id, MedicalSettlement.at)
Index("ix_medical_settlements_institution_at", MedicalSettlement.institution_id, MedicalSettlement.at)
Index("ix_medical_account_movements_person_id", PersonalAccountMovement.person_id, PersonalAccountMovement.id)

__all__ = [
    "AnnualUsage",
    "ContributionCredit",
    "MedicalInstitution",
    "MedicalSettlement",
    "PersonalAccount",
    "PersonalAccountMovement",
]
