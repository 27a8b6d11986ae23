"""audit chain: each audit record's place in the tamper-evident hash chain"""

import sqlalchemy as sa
from alembic import op

revision = "0007_audit_chain"
down_revision = "0006_hotline"


def upgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seal_seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    # unique: a record is sealed at most once; NULLs (not yet sealed) are many, and the sealer finds them here
    op.create_index(op.f("ix_audit_records_seal_seq"), "audit_records", ["seal_seq"], unique=True)
    # the records still to seal, in id order: partial, so the sealer never walks the sealed ones
    unsealed = sa.text("seal_seq IS NULL")
    op.create_index("ix_audit_records_unsealed", "audit_records", ["id"], unique=False,
                    sqlite_where=unsealed, postgresql_where=unsealed)


def downgrade() -> None:
    op.drop_index("ix_audit_records_unsealed", table_name="audit_records")
    op.drop_index(op.f("ix_audit_records_seal_seq"), table_name="audit_records")
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("seal_seq")
