"""foundation: people, cards, bank accounts, staff, terminals, audit"""

from sscard.migrations.helpers import (
    BIG,
    BOOL,
    DATE,
    ID,
    INT,
    JSON,
    TEXT,
    TS,
    columns,
    create_table,
    drop_tables,
    null,
    s,
)

revision = "0001_foundation"
down_revision = None


def upgrade() -> None:
    create_table(
        "audit_records",
        columns(id=ID, at=TS, actor_kind=s(16), actor_id=s(32), actor_role=s(24), on_behalf_of=null(INT),
                attorney_id=null(INT), channel=s(24), place=s(32), operation=s(48), object_type=s(24),
                object_id=s(40), person_id=null(INT), before=s(32), after=s(32), result=s(40),
                idempotency_key=null(s(80)), detail=JSON),
        index=["at", "channel", "object_id", "operation", "person_id"],
    )
    create_table(
        "banks",
        columns(id=INT, code=s(16), name=s(64), name_en=s(64), bin=s(6), hotline=s(16)),
        unique=["bin", "code"],
    )
    create_table(
        "idempotency_records",
        columns(scope=s(48), key=s(80), request_hash=s(64), status=INT, response=TEXT, created_at=TS),
        pk=("scope", "key"),
    )
    create_table(
        "persons",
        columns(id=INT, citizen_id=s(18), name=s(32), sex=s(1), birth_date=DATE, phone=s(20), address=s(128),
                area_code=s(6), first_card_number=null(s(9)), query_pw_hash=null(s(128)),
                query_pw_initial=BOOL, query_pw_failures=INT, query_pw_locked_until=null(TS), created_at=TS),
        unique=["citizen_id"],
    )
    create_table(
        "service_centers",
        columns(id=INT, code=s(16), name=s(64), area_code=s(6), address=s(128), instant_issue=BOOL),
        unique=["code"],
    )
    create_table(
        "outlets",
        columns(id=INT, bank_id=INT, code=s(16), name=s(64), address=s(128)),
        fks={"bank_id": "banks"},
        unique=["code"],
    )
    create_table(
        "production_batches",
        columns(id=INT, code=s(24), center_id=INT, status=s(16), card_count=INT, created_at=TS, due_date=DATE,
                completed_at=null(TS)),
        fks={"center_id": "service_centers"},
        unique=["code"],
    )
    create_table(
        "cards",
        columns(id=INT, person_id=INT, card_number=s(9), ident_code=s(32), bank_id=INT, ss_status=s(16),
                reason=s(16), replaces_card_id=null(INT), spec_version=s(8), apply_center_id=null(INT),
                ready_center_id=null(INT), batch_id=null(INT), applied_at=TS, ready_at=null(TS),
                collected_at=null(TS), issue_date=null(DATE), expiry_date=null(DATE), status_changed_at=TS,
                loss_expires_at=null(TS), ss_pw_digest=null(s(64)), ss_pw_failures=INT, ss_pw_locked=BOOL,
                version=INT),
        fks={"apply_center_id": "service_centers", "bank_id": "banks", "batch_id": "production_batches",
             "person_id": "persons", "ready_center_id": "service_centers", "replaces_card_id": "cards"},
        unique=["card_number", "ident_code"],
        index=["person_id", "ss_status"],
        indexes={"ix_cards_person_status": ["person_id", "ss_status"]},
    )
    create_table(
        "staff_users",
        columns(id=INT, username=s(32), display_name=s(32), role=s(24), password_hash=s(128),
                center_id=null(INT), bank_id=null(INT), outlet_id=null(INT), active=BOOL, created_at=TS),
        fks={"bank_id": "banks", "center_id": "service_centers", "outlet_id": "outlets"},
        unique=["username"],
    )
    create_table(
        "terminals",
        columns(id=INT, code=s(24), kind=s(16), name=s(64), bank_id=null(INT), outlet_id=null(INT),
                center_id=null(INT), merchant_name=s(64), institution_id=null(INT), active=BOOL),
        fks={"bank_id": "banks", "center_id": "service_centers", "outlet_id": "outlets"},
        unique=["code"],
    )
    create_table(
        "api_tokens",
        columns(id=INT, digest=s(64), label=s(64), staff_user_id=null(INT), terminal_id=null(INT),
                created_at=TS, revoked=BOOL),
        fks={"staff_user_id": "staff_users", "terminal_id": "terminals"},
        unique=["digest"],
    )
    create_table(
        "bank_accounts",
        columns(id=INT, card_id=INT, person_id=INT, bank_id=INT, pan=s(19), status=s(16),
                activation_deadline=null(DATE), window_extended=BOOL, activated_at=null(TS),
                activated_outlet_id=null(INT), pin_digest=null(s(64)), pin_failures=INT,
                pin_locked_until=null(TS), pin_locked=BOOL, loss_expires_at=null(TS), status_changed_at=TS,
                ledger_account_id=null(BIG), version=INT),
        fks={"activated_outlet_id": "outlets", "bank_id": "banks", "card_id": "cards", "person_id": "persons"},
        unique=["card_id", "ledger_account_id", "pan"],
        index=["person_id"],
    )
    create_table(
        "web_sessions",
        columns(digest=s(64), kind=s(16), staff_user_id=null(INT), person_id=null(INT), csrf=s(64),
                channel=s(24), must_change_password=BOOL, created_at=TS, last_seen=TS, ended_at=null(TS)),
        pk="digest",
        fks={"person_id": "persons", "staff_user_id": "staff_users"},
    )


def downgrade() -> None:
    drop_tables("web_sessions", "bank_accounts", "api_tokens", "terminals", "staff_users", "cards",
                "production_batches", "outlets", "service_centers", "persons", "idempotency_records", "banks",
                "audit_records")
