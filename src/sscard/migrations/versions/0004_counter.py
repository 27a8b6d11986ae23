"""counter: powers of attorney, window visits, replacement applications, fee receipts"""

from sscard.migrations.helpers import BIG, DATE, INT, JSON, TS, columns, create_table, drop_tables, null, s

revision = "0004_counter"
down_revision = "0003_medical"


def upgrade() -> None:
    create_table(
        "powers_of_attorney",
        columns(id=INT, person_id=INT, agent_name=s(32), agent_citizen_id=s(18), scope=JSON, valid_from=DATE,
                valid_to=DATE, document_ref=s(64), center_id=null(INT), recorded_by=s(32), created_at=TS,
                revoked_at=null(TS), revoked_by=null(s(32)), revoke_reason=s(128)),
        fks={"person_id": "persons", "center_id": "service_centers"},
        index=["person_id"],
    )
    create_table(
        "counter_visits",
        columns(id=INT, person_id=INT, center_id=null(INT), staff_id=s(32), presenter=s(16),
                attorney_id=null(INT), checked_at=TS, ended_at=null(TS)),
        fks={"person_id": "persons", "center_id": "service_centers", "attorney_id": "powers_of_attorney"},
        index=["person_id"],
    )
    create_table(
        "replacement_applications",
        columns(id=INT, person_id=INT, old_card_id=INT, new_card_id=INT, reason=s(16), fee_fen=BIG,
                fee_status=s(16), apply_center_id=INT, collect_center_id=INT, attorney_id=null(INT),
                staff_id=s(32), created_at=TS),
        fks={"person_id": "persons", "old_card_id": "cards", "new_card_id": "cards",
             "apply_center_id": "service_centers", "collect_center_id": "service_centers",
             "attorney_id": "powers_of_attorney"},
        unique=["new_card_id"],
        index=["person_id", "old_card_id"],
    )
    create_table(
        "fee_receipts",
        columns(id=INT, receipt_no=s(24), application_id=INT, person_id=INT, center_id=INT, amount_fen=BIG,
                due_fen=BIG, method=s(8), staff_id=s(32), staff_name=s(32), waived_by=null(s(32)),
                waive_reason=s(128), attorney_id=null(INT), ledger_transfer_id=null(BIG), paid_at=TS),
        fks={"application_id": "replacement_applications", "person_id": "persons",
             "center_id": "service_centers", "attorney_id": "powers_of_attorney"},
        unique=["receipt_no", "application_id"],
        index=["person_id", "center_id", "paid_at"],
    )


def downgrade() -> None:
    drop_tables("fee_receipts", "replacement_applications", "counter_visits", "powers_of_attorney")
