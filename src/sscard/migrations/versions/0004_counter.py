"""counter: powers of attorney, window visits, replacement applications, fee receipts

Revision ID: 0004_counter
Revises: 0003_medical
"""

import sqlalchemy as sa
from alembic import op

import sscard.models.base

revision = "0004_counter"
down_revision = "0003_medical"
branch_labels = None
depends_on = None

UTC_DT = sscard.models.base.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "powers_of_attorney",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("agent_name", sa.String(length=32), nullable=False),
        sa.Column("agent_citizen_id", sa.String(length=18), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("document_ref", sa.String(length=64), nullable=False),
        sa.Column("center_id", sa.Integer(), nullable=True),
        sa.Column("recorded_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("revoked_at", UTC_DT, nullable=True),
        sa.Column("revoked_by", sa.String(length=32), nullable=True),
        sa.Column("revoke_reason", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"], name=op.f("fk_powers_of_attorney_person_id_persons")),
        sa.ForeignKeyConstraint(["center_id"], ["service_centers.id"],
                                name=op.f("fk_powers_of_attorney_center_id_service_centers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_powers_of_attorney")),
    )
    op.create_index(op.f("ix_powers_of_attorney_person_id"), "powers_of_attorney", ["person_id"])

    op.create_table(
        "counter_visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("center_id", sa.Integer(), nullable=True),
        sa.Column("staff_id", sa.String(length=32), nullable=False),
        sa.Column("presenter", sa.String(length=16), nullable=False),
        sa.Column("attorney_id", sa.Integer(), nullable=True),
        sa.Column("checked_at", UTC_DT, nullable=False),
        sa.Column("ended_at", UTC_DT, nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"], name=op.f("fk_counter_visits_person_id_persons")),
        sa.ForeignKeyConstraint(["center_id"], ["service_centers.id"],
                                name=op.f("fk_counter_visits_center_id_service_centers")),
        sa.ForeignKeyConstraint(["attorney_id"], ["powers_of_attorney.id"],
                                name=op.f("fk_counter_visits_attorney_id_powers_of_attorney")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_counter_visits")),
    )
    op.create_index(op.f("ix_counter_visits_person_id"), "counter_visits", ["person_id"])

    op.create_table(
        "replacement_applications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("old_card_id", sa.Integer(), nullable=False),
        sa.Column("new_card_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("fee_fen", sa.BigInteger(), nullable=False),
        sa.Column("fee_status", sa.String(length=16), nullable=False),
        sa.Column("apply_center_id", sa.Integer(), nullable=False),
        sa.Column("collect_center_id", sa.Integer(), nullable=False),
        sa.Column("attorney_id", sa.Integer(), nullable=True),
        sa.Column("staff_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"],
                                name=op.f("fk_replacement_applications_person_id_persons")),
        sa.ForeignKeyConstraint(["old_card_id"], ["cards.id"],
                                name=op.f("fk_replacement_applications_old_card_id_cards")),
        sa.ForeignKeyConstraint(["new_card_id"], ["cards.id"],
                                name=op.f("fk_replacement_applications_new_card_id_cards")),
        sa.ForeignKeyConstraint(["apply_center_id"], ["service_centers.id"],
                                name=op.f("fk_replacement_applications_apply_center_id_service_centers")),
        sa.ForeignKeyConstraint(["collect_center_id"], ["service_centers.id"],
                                name=op.f("fk_replacement_applications_collect_center_id_service_centers")),
        sa.ForeignKeyConstraint(["attorney_id"], ["powers_of_attorney.id"],
                                name=op.f("fk_replacement_applications_attorney_id_powers_of_attorney")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replacement_applications")),
        sa.UniqueConstraint("new_card_id", name=op.f("uq_replacement_applications_new_card_id")),
    )
    op.create_index(op.f("ix_replacement_applications_person_id"), "replacement_applications", ["person_id"])
    op.create_index(op.f("ix_replacement_applications_old_card_id"), "replacement_applications", ["old_card_id"])

    op.create_table(
        "fee_receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("receipt_no", sa.String(length=24), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("center_id", sa.Integer(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("due_fen", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("staff_id", sa.String(length=32), nullable=False),
        sa.Column("staff_name", sa.String(length=32), nullable=False),
        sa.Column("waived_by", sa.String(length=32), nullable=True),
        sa.Column("waive_reason", sa.String(length=128), nullable=False),
        sa.Column("attorney_id", sa.Integer(), nullable=True),
        sa.Column("ledger_transfer_id", sa.BigInteger(), nullable=True),
        sa.Column("paid_at", UTC_DT, nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["replacement_applications.id"],
                                name=op.f("fk_fee_receipts_application_id_replacement_applications")),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"], name=op.f("fk_fee_receipts_person_id_persons")),
        sa.ForeignKeyConstraint(["center_id"], ["service_centers.id"],
                                name=op.f("fk_fee_receipts_center_id_service_centers")),
        sa.ForeignKeyConstraint(["attorney_id"], ["powers_of_attorney.id"],
                                name=op.f("fk_fee_receipts_attorney_id_powers_of_attorney")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fee_receipts")),
        sa.UniqueConstraint("receipt_no", name=op.f("uq_fee_receipts_receipt_no")),
        sa.UniqueConstraint("application_id", name=op.f("uq_fee_receipts_application_id")),
    )
    op.create_index(op.f("ix_fee_receipts_person_id"), "fee_receipts", ["person_id"])
    op.create_index(op.f("ix_fee_receipts_center_id"), "fee_receipts", ["center_id"])
    op.create_index(op.f("ix_fee_receipts_paid_at"), "fee_receipts", ["paid_at"])


def downgrade() -> None:
    op.drop_table("fee_receipts")
    op.drop_table("replacement_applications")
    op.drop_table("counter_visits")
    op.drop_table("powers_of_attorney")
