"""Tables of the insurance area (issue 7): employers and the monthly contribution records of the five
social insurances (pension, medical, unemployment, work injury, maternity). Amounts are integer fen."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class Employer(Base):
    """A contributing employer (参保单位), by its unified social credit code."""

    __tablename__ = "insurance_employers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(64))


class Contribution(Base):
    """One month of one insurance for one person at one employer: the contribution base and what the
    employer and the person paid (work injury and maternity: the employer only)."""

    __tablename__ = "insurance_contributions"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    insurance_type: Mapped[str] = mapped_column(String(16))  # pension|medical|unemployment|work_injury|maternity
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    year: Mapped[int] = mapped_column(Integer)
    employer_id: Mapped[int] = mapped_column(ForeignKey("insurance_employers.id"))
    base_fen: Mapped[int] = mapped_column(BigInteger)
    employer_fen: Mapped[int] = mapped_column(BigInteger)
    personal_fen: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("person_id", "insurance_type", "month", "employer_id", name="uq_insurance_contributions_key"),
    )


Index("ix_insurance_contributions_person_year", Contribution.person_id, Contribution.year)

class Certificate(Base):
    """A proof of insurance (参保证明) issued to the cardholder: what it certified, frozen at issue, so a
    third party checking the code sees exactly what the paper says. The verification code itself is
    never stored: only its keyed digest (looked up by digest) and its last 4 characters (to name it)."""

    __tablename__ = "insurance_certificates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_digest: Mapped[str] = mapped_column(String(64), unique=True)
    code_tail: Mapped[str] = mapped_column(String(4))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    issued_at: Mapped[datetime]
    period_from: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    period_to: Mapped[str] = mapped_column(String(7))
    content: Mapped[dict] = mapped_column(JSON)  # masked name and ID, months per insurance kind


Index("ix_insurance_certificates_person", Certificate.person_id)

__all__ = ["Certificate", "Contribution", "Employer"]
