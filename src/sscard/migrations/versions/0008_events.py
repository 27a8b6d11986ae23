"""events: the outbox of events for partners and the publishers' positions"""

from sscard.migrations.helpers import ID, INT, JSON, TS, columns, create_table, drop_tables, null, s

revision = "0008_events"
down_revision = "0007_audit_chain"


def upgrade() -> None:
    create_table(
        "events",
        columns(id=ID, uuid=s(36), type=s(48), side=s(8), occurred_at=TS, bank_id=null(INT),
                center_id=null(INT), card_number=null(s(9)), pan=null(s(19)), before=null(s(16)),
                after=null(s(16)), operation=s(48), audit_id=null(ID), data=JSON),
        unique=["uuid"],
        indexes={"ix_events_bank_id_id": ["bank_id", "id"], "ix_events_side_id": ["side", "id"]},
        sqlite_autoincrement=True,
    )
    create_table(
        "event_publications",
        columns(name=s(32), last_id=ID, updated_at=TS),
        pk="name",
    )


def downgrade() -> None:
    drop_tables("event_publications", "events")
