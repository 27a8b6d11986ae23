"""hotline: phone call state and the agent-transfer queue"""

from sscard.migrations.helpers import INT, JSON, TS, columns, create_table, drop_tables, null, s

revision = "0006_hotline"
down_revision = "0005_insurance"


def upgrade() -> None:
    create_table(
        "hotline_calls",
        columns(id=INT, call_sid=s(64), line=s(24), caller=s(32), status=s(16), node=s(48), lang=s(2),
                turn=INT, timeouts=INT, invalid=INT, attempts=INT, person_id=null(INT), identified_by=s(16),
                after_identify=s(48), slots=JSON, started_at=TS, updated_at=TS, ended_at=null(TS),
                version=INT),
        fks={"person_id": "persons"},
        unique=["call_sid"],
        index=["person_id"],
    )
    create_table(
        "hotline_agent_requests",
        columns(id=INT, call_id=INT, line=s(24), person_id=null(INT), node=s(48), topic=s(64), lang=s(2),
                status=s(16), requested_at=TS, taken_by=null(s(32)), taken_at=null(TS), closed_at=null(TS),
                note=s(128)),
        fks={"call_id": "hotline_calls", "person_id": "persons"},
        indexes={"ix_hotline_agent_requests_line_status": ["line", "status"]},
    )


def downgrade() -> None:
    drop_tables("hotline_agent_requests", "hotline_calls")
