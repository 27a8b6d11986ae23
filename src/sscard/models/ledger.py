"""Tables of the ledger area: double-entry accounts, immutable transfers, daily limit usage.

Modelled on TigerBeetle: an account keeps four running sums (debits/credits, posted/pending); a
transfer is immutable, has a client-chosen id, and moves `amount` from its debit account to its credit
account. A pending transfer holds the amount until one later transfer resolves it (post, void or
expire): `pending_id` is unique, so a pending transfer is resolved at most once.

Balances are credit-normal: balance = credits_posted - debits_posted. Customer accounts carry
`no_overdraft` (a CHECK keeps credits_posted >= debits_posted + debits_pending). The sum of all
balances is zero by construction: every transfer adds its amount to one debit and one credit sum.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base

BigId = BigInteger().with_variant(Integer, "sqlite")
NO_EARLIER_DAY = date(1, 1, 1)  # a transfer's prev day when its account had no transfer before it


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # customer | cash_drawer | atm | merchant | clearing | fee_income | pension_payer | system
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)  # system accounts
    bank_id: Mapped[int | None] = mapped_column(ForeignKey("banks.id"), nullable=True)
    bank_account_id: Mapped[int | None] = mapped_column(ForeignKey("bank_accounts.id"), unique=True, nullable=True)
    no_overdraft: Mapped[bool] = mapped_column(Boolean, default=False)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    debits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    debits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime]
    # The Shanghai day of its newest transfer (None: none yet), written with the sums by the one writer of
    # transfers (services/book.py): a statement looks for the newest transfers from that month back,
    # instead of probing every monthly partition since the account was opened (docs/SCALE.md).
    last_transfer_day: Mapped[date | None] = mapped_column(Date, nullable=True)
    # Some transfer of this account was written with a day in an earlier month than one written before it
    # (a backfill: `sscard demo-history`; or two writes racing across midnight at a month's end): its
    # transfers' prev days (below) then do not lead from month to month, and its statement reads by months
    # as it did before migration 0018 (services/ledger.history_by_months).
    out_of_order: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        CheckConstraint(
            "debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 AND credits_pending >= 0",
            name="sums_not_negative",
        ),
        CheckConstraint(
            "NOT no_overdraft OR credits_posted >= debits_posted + debits_pending", name="no_overdraft"
        ),
    )


class LedgerTransfer(Base):
    """Never updated, never deleted (triggers refuse it); corrections are new transfers."""

    __tablename__ = "ledger_transfers"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    transfer_id: Mapped[str] = mapped_column(String(64), unique=True)  # client-chosen
    kind: Mapped[str] = mapped_column(String(8))  # posted | pending | post | void | expire
    debit_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    credit_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    pending_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transfers.id"), unique=True, nullable=True)
    timeout_at: Mapped[datetime | None] = mapped_column(nullable=True)
    code: Mapped[str] = mapped_column(String(24))  # deposit, withdrawal, transfer, payment, pension, fee, ...
    ref: Mapped[str] = mapped_column(String(64), default="")
    chain: Mapped[str] = mapped_column(String(64), default="")  # linked transfers share the chain id
    limit_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)  # daily limit it counted against
    day: Mapped[date] = mapped_column(Date)  # Shanghai day
    created_at: Mapped[datetime]
    # For each side, the newest day among that account's transfers written before this one: its
    # last_transfer_day then, the day of its previous transfer (NO_EARLIER_DAY: it had none; NULL: written
    # before migration 0018, unknown). A statement follows them back one month's partition at a time.
    debit_prev_day: Mapped[date | None] = mapped_column(Date, nullable=True)
    credit_prev_day: Mapped[date | None] = mapped_column(Date, nullable=True)

    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)


class LimitUsage(Base):
    """How much of a per-day limit an account has used on a Shanghai day."""

    __tablename__ = "ledger_limit_usage"
    ledger_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    used_fen: Mapped[int] = mapped_column(BigInteger, default=0)


Index("ix_ledger_transfers_debit", LedgerTransfer.debit_account_id, LedgerTransfer.id)
Index("ix_ledger_transfers_credit", LedgerTransfer.credit_account_id, LedgerTransfer.id)
Index("ix_ledger_transfers_kind_timeout", LedgerTransfer.kind, LedgerTransfer.timeout_at)
