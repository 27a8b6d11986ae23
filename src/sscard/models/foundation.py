"""People, cards, the bank account behind each card, staff, terminals, audit and idempotency."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text, cast, text
from sqlalchemy.orm import Mapped, mapped_column

from ..core.roles import CENTER_STAFF_ROLES
from .base import Base


class Bank(Base):
    __tablename__ = "banks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(64), default="")
    bin: Mapped[str] = mapped_column(String(6), unique=True)
    hotline: Mapped[str] = mapped_column(String(16))


class Outlet(Base):
    """A bank outlet (网点): tellers work at one; its cash drawer is a ledger account."""

    __tablename__ = "outlets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id"))
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(96), default="")
    address: Mapped[str] = mapped_column(String(128), default="")


class ServiceCenter(Base):
    """A social security card service center or hall (window)."""

    __tablename__ = "service_centers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(96), default="")
    area_code: Mapped[str] = mapped_column(String(6))
    address: Mapped[str] = mapped_column(String(128), default="")
    instant_issue: Mapped[bool] = mapped_column(Boolean, default=False)


class StaffUser(Base):
    __tablename__ = "staff_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(24))
    password_hash: Mapped[str] = mapped_column(String(128))
    center_id: Mapped[int | None] = mapped_column(ForeignKey("service_centers.id"), nullable=True)
    bank_id: Mapped[int | None] = mapped_column(ForeignKey("banks.id"), nullable=True)
    outlet_id: Mapped[int | None] = mapped_column(ForeignKey("outlets.id"), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    # wrong passwords in a row and the lock they started (services.staff.login, policy login.staff_*)
    pw_failures: Mapped[int] = mapped_column(Integer, default=0)
    pw_locked_until: Mapped[datetime | None] = mapped_column(nullable=True)
    # a password reset by the operator or a supervisor (a one-time password they have seen): the next sign-in
    # opens only the change page (services.staff.reset_password, change_password; migration 0035)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)


class Terminal(Base):
    """ATM, POS, hospital/pharmacy terminal or self-service kiosk, with its own credentials."""

    __tablename__ = "terminals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # atm | pos | hospital | pharmacy | kiosk
    name: Mapped[str] = mapped_column(String(64))
    bank_id: Mapped[int | None] = mapped_column(ForeignKey("banks.id"), nullable=True)
    outlet_id: Mapped[int | None] = mapped_column(ForeignKey("outlets.id"), nullable=True)
    center_id: Mapped[int | None] = mapped_column(ForeignKey("service_centers.id"), nullable=True)
    merchant_name: Mapped[str] = mapped_column(String(64), default="")
    institution_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # medical institution (issue 5)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ApiToken(Base):
    """A bearer token for a staff API client or a terminal; only its keyed digest is kept."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(64), default="")
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), nullable=True)
    terminal_id: Mapped[int | None] = mapped_column(ForeignKey("terminals.id"), nullable=True)
    created_at: Mapped[datetime]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Person(Base):
    """An insured person. The social security number is the citizen ID and never changes.

    The query password belongs to the person, not the card. While it is the initial one no hash is
    kept: the initial value is derived by the policy from the first card number or the SS number."""

    __tablename__ = "persons"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    citizen_id: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(32))
    sex: Mapped[str] = mapped_column(String(1))
    birth_date: Mapped[date] = mapped_column(Date)
    phone: Mapped[str] = mapped_column(String(20), default="")
    address: Mapped[str] = mapped_column(String(128), default="")
    area_code: Mapped[str] = mapped_column(String(6))
    first_card_number: Mapped[str | None] = mapped_column(String(9), nullable=True)
    query_pw_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    query_pw_initial: Mapped[bool] = mapped_column(Boolean, default=True)
    query_pw_failures: Mapped[int] = mapped_column(Integer, default=0)
    query_pw_locked_until: Mapped[datetime | None] = mapped_column(nullable=True)
    # Whether the query password can be typed on a phone keypad (digits only); None: set before this was
    # kept (a password with letters from before the digits-only rule), learnt at the next web login.
    query_pw_phone_ok: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    # Counted up by every change or reset of the query password: a cardholder's API token carries the value
    # it was issued under, and a token of an earlier generation is refused (api.sessions).
    query_pw_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime]


class Card(Base):
    """One physical card: the social security side's state and the SS application password."""

    __tablename__ = "cards"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    card_number: Mapped[str] = mapped_column(String(9), unique=True)
    ident_code: Mapped[str] = mapped_column(String(32), unique=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id"))
    ss_status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(String(16), default="first")  # first|lost|damaged|expiring|...
    replaces_card_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id"), nullable=True, index=True)
    spec_version: Mapped[str] = mapped_column(String(8), default="3.00")
    apply_center_id: Mapped[int | None] = mapped_column(ForeignKey("service_centers.id"), nullable=True)
    ready_center_id: Mapped[int | None] = mapped_column(ForeignKey("service_centers.id"), nullable=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("production_batches.id"), nullable=True)
    applied_at: Mapped[datetime]
    ready_at: Mapped[datetime | None] = mapped_column(nullable=True)
    collected_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # the power of attorney of the agent who collected the card; null: the cardholder in person (or not yet)
    collecting_attorney_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # powers_of_attorney.id
    issue_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    expiry_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    status_changed_at: Mapped[datetime]
    loss_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    ss_pw_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None: initial 123456
    ss_pw_failures: Mapped[int] = mapped_column(Integer, default=0)
    ss_pw_locked: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class BankAccount(Base):
    """The financial side behind a card: its state, activation window and bank PIN.

    Money lives in the ledger (issue 4); `ledger_account_id` links to it."""

    __tablename__ = "bank_accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id"))
    pan: Mapped[str] = mapped_column(String(19), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    activation_deadline: Mapped[date | None] = mapped_column(Date, nullable=True)
    window_extended: Mapped[bool] = mapped_column(Boolean, default=False)
    activated_at: Mapped[datetime | None] = mapped_column(nullable=True)
    activated_outlet_id: Mapped[int | None] = mapped_column(ForeignKey("outlets.id"), nullable=True)
    pin_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pin_failures: Mapped[int] = mapped_column(Integer, default=0)
    pin_locked_until: Mapped[datetime | None] = mapped_column(nullable=True)
    pin_locked: Mapped[bool] = mapped_column(Boolean, default=False)
    pin_failed_at: Mapped[datetime | None] = mapped_column(nullable=True)  # the last wrong PIN (a day's count)
    loss_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    status_changed_at: Mapped[datetime]
    ledger_account_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class ProductionBatch(Base):
    __tablename__ = "production_batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    center_id: Mapped[int] = mapped_column(ForeignKey("service_centers.id"))
    status: Mapped[str] = mapped_column(String(16))  # in_production | ready
    card_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    due_date: Mapped[date] = mapped_column(Date)
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AuditRecord(Base):
    """Written in the same transaction as the change it records; never updated or deleted (the database
    refuses both: migration 0022), its seal a row of its own (AuditSeal)."""

    __tablename__ = "audit_records"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(32))
    actor_role: Mapped[str] = mapped_column(String(24))
    on_behalf_of: Mapped[int | None] = mapped_column(Integer, nullable=True)  # person id, for agents
    attorney_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    channel: Mapped[str] = mapped_column(String(24))
    place: Mapped[str] = mapped_column(String(32), default="")  # outlet / center / terminal code
    operation: Mapped[str] = mapped_column(String(48))
    object_type: Mapped[str] = mapped_column(String(24), default="")
    object_id: Mapped[str] = mapped_column(String(40), default="")
    person_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    before: Mapped[str] = mapped_column(String(32), default="")
    after: Mapped[str] = mapped_column(String(32), default="")
    result: Mapped[str] = mapped_column(String(40), default="ok")
    idempotency_key: Mapped[str | None] = mapped_column(String(80), nullable=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    # The bank whose record it is, for a bank supervisor's reads (services/audit.py, `bank_records`): the
    # bank that made it (its outlet, terminal, staff or hotline) and the bank of the account or card it is
    # about. Derived from the record's own columns by the database as the record is inserted (the audit
    # log's insert trigger, services/audit_chain.py: BANK_COLUMNS), whoever inserts it; NULL where no bank
    # is concerned. Not part of the chain's hash.
    maker_bank_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    object_bank_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class AuditSeal(Base):
    """A record's place in the tamper-evident chain (services/audit_chain.py), written once by the sealer
    beside the record instead of into it: the audit log is only ever inserted into, so a record's indexes
    are written once, and the sealer never touches the pages the requests are inserting into. Never
    changed or deleted either (the database refuses both: migration 0024); on PostgreSQL partitioned by its
    record's month (0023)."""

    __tablename__ = "audit_seals"
    seal_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                          autoincrement=False)
    record_id: Mapped[int] = mapped_column(BigInteger, unique=True)  # a record is sealed once
    record_at: Mapped[datetime]  # the record's time: on PostgreSQL, its monthly partition
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditUnsealed(Base):
    """The records the sealer has still to seal, by id: one row put here by the audit log's insert trigger
    for every record inserted (whichever code inserts it), taken away by the sealer in the transaction that
    seals the record."""

    __tablename__ = "audit_unsealed"
    record_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                           autoincrement=False)
    record_at: Mapped[datetime]


AUDIT_FILTERS = ("operation", "channel", "object_id", "actor_id", "result", "person_id", "on_behalf_of",
                 "maker_bank_id", "object_bank_id")
AUDIT_SPARSE = ("person_id", "on_behalf_of", "maker_bank_id", "object_bank_id")


class IdempotencyRecord(Base):
    """The first answer to a keyed request; a retry gets it back, a different body is refused."""

    __tablename__ = "idempotency_records"
    scope: Mapped[str] = mapped_column(String(48), primary_key=True)
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer, default=200)
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class CommitMarker(Base):
    """A random token written in the same transaction as the writes of a commit whose answer, were it lost
    (a failover), no idempotency record would give back: present, the transaction committed (db.py,
    `Database.committed`). PostgreSQL only; pruned after `db.MARKER_KEEP_SECONDS` by the group-commit writer."""

    __tablename__ = "commit_markers"
    token: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime]  # the server's now() of the transaction that wrote it
    # False: written by the transaction itself. True: written by the lookup, which found no marker: that
    # transaction did not commit, and now never will (its own insert of the token would fail)
    claimed: Mapped[bool] = mapped_column(Boolean)


Index("ix_cards_person_status", Card.person_id, Card.ss_status)
# What a service center's window reads on every page (migration 0020): its queue of ready cards, oldest
# first, and the applications waiting there; the search by name and birth date
Index("ix_cards_ready_center", Card.ready_center_id, Card.ss_status, Card.ready_at)
Index("ix_cards_apply_center", Card.apply_center_id, Card.ss_status)
Index("ix_persons_name_birth", Person.name, Person.birth_date)
Index("ix_idempotency_records_created_at", IdempotencyRecord.created_at)  # the nightly prune (services/retention)
# The audit log is read newest first under one filter at a time (services/audit.py): each filter's index
# ends with the id, so the read walks it backwards and stops at its page, however rare the filter's
# records (by the filter alone, a rare value's page was a walk back through the whole log: 5 million
# records, seconds). A bank supervisor's reads walk the two bank columns'.
# The columns that are often empty (no person, no agent, no bank) index only the records that have one: an
# insert with none of them touches none of those indexes.
for _column in AUDIT_FILTERS:
    _c = AuditRecord.__table__.c[_column]
    _where = _c.is_not(None) if _column in AUDIT_SPARSE else None
    Index(f"ix_audit_records_{_column}", _c, AuditRecord.id, postgresql_where=_where, sqlite_where=_where)
AGENCY_RECORDS = ("maker_bank_id IS NULL AND (object_type <> 'bank_account'"
                  f" OR actor_role IN ({', '.join(repr(str(role)) for role in CENTER_STAFF_ROLES)}))")
"""The social security agency's records, which a center supervisor reads, from the record's own columns:
those no bank made (`maker_bank_id`: none of its outlets, terminals, staff or its hotline), except those
about a bank account made by anyone but the centers' own staff. So the agency's are its centers' work
(enrolment, loss, replacement, the window's reads: a center's work on a card is the agency's even when its
record names the card's bank account), the cardholders' social security side (query passwords, insurance,
certificates, the 12333 line), the medical settlements, the city's administration; a bank's are its
tellers', terminals' and hotline's records (deposits, withdrawals, payments, its written losses) and the
money movements on its accounts that no bank staff made (a cardholder's transfer, the pension payer's
credits): a bank's business is not the agency's (session 23's auditor found a center supervisor reading
every bank's customers' payments).

The centers' roles come from core.roles (CENTER_STAFF_ROLES), declared once; the SQL is derived from them.
Written once, as SQL text, for the read's condition (services/audit.py, `agency_records`) and for the
partial index its newest-first walk uses (migration 0026, `ix_audit_records_agency`): the same text in both,
which is what lets SQLite and PostgreSQL match the one to the other. Without it a center supervisor's page
walked back through the city's card payments, the bulk of the log, to find the agency's few."""
Index("ix_audit_records_agency", AuditRecord.id, postgresql_where=text(AGENCY_RECORDS),
      sqlite_where=text(AGENCY_RECORDS))
# The sealer finds a staff record's bank by the actor id, which is the staff user's id written as text
Index("ix_staff_users_id_text", cast(StaffUser.id, String(32)))


class WebSession(Base):
    """A signed-in browser (staff console or cardholder portal). The cookie holds a random token;
    only its keyed digest is kept, so a database leak gives no usable session."""

    __tablename__ = "web_sessions"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # staff | cardholder
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), nullable=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), nullable=True)
    csrf: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(24))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    last_seen: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
