"""hotline: phone call state and the agent-transfer queue

Revision ID: 0006_hotline
Revises: 0005_insurance
"""

import sqlalchemy as sa
from alembic import op

import sscard.models.base

revision = "0006_hotline"
down_revision = "0005_insurance"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sscard.models.base.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "hotline_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("line", sa.String(length=24), nullable=False),
        sa.Column("caller", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("node", sa.String(length=48), nullable=False),
        sa.Column("lang", sa.String(length=2), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("timeouts", sa.Integer(), nullable=False),
        sa.Column("invalid", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("identified_by", sa.String(length=16), nullable=False),
        sa.Column("after_identify", sa.String(length=48), nullable=False),
        sa.Column("slots", sa.JSON(), nullable=False),
        _ts("started_at"),
        _ts("updated_at"),
        _ts("ended_at", nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"], name=op.f("fk_hotline_calls_person_id_persons")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hotline_calls")),
        sa.UniqueConstraint("call_sid", name=op.f("uq_hotline_calls_call_sid")),
    )
    op.create_index(op.f("ix_hotline_calls_person_id"), "hotline_calls", ["person_id"], unique=False)
    op.create_table(
        "hotline_agent_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("line", sa.String(length=24), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("node", sa.String(length=48), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("lang", sa.String(length=2), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _ts("requested_at"),
        sa.Column("taken_by", sa.String(length=32), nullable=True),
        _ts("taken_at", nullable=True),
        _ts("closed_at", nullable=True),
        sa.Column("note", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["hotline_calls.id"], name=op.f("fk_hotline_agent_requests_call_id_hotline_calls")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_hotline_agent_requests_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hotline_agent_requests")),
    )
    op.create_index(
        "ix_hotline_agent_requests_line_status", "hotline_agent_requests", ["line", "status"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_hotline_agent_requests_line_status", table_name="hotline_agent_requests")
    op.drop_table("hotline_agent_requests")
    op.drop_index(op.f("ix_hotline_calls_person_id"), table_name="hotline_calls")
    op.drop_table("hotline_calls")
