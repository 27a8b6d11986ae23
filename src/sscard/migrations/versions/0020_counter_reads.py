"""counter reads: what a service center's window reads on every page, by index at a city's million.

Found with the million of docs/SCALE.md (session 16) and PostgreSQL's log of statements over 40 ms while
tools/outside_in.py walked every route: a clerk's queue (cards ready at the center, applications not yet
in production) read every ready or applied card of the city (408 and 75 ms), and a search by name and
birth date read every person (135-306 ms). Starting a production batch and the day report count the same
cards.

- cards (ready_center_id, ss_status, ready_at): the queue's ready cards, oldest first;
- cards (apply_center_id, ss_status): the applications waiting at a center (the queue, production, the report);
- persons (name, birth_date): the window's search.
"""

from alembic import op

revision = "0020_counter_reads"
down_revision = "0019_audit_reads"

INDEXES = {
    "ix_cards_ready_center": ("cards", ["ready_center_id", "ss_status", "ready_at"]),
    "ix_cards_apply_center": ("cards", ["apply_center_id", "ss_status"]),
    "ix_persons_name_birth": ("persons", ["name", "birth_date"]),
}


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, (table, _columns) in INDEXES.items():
        op.drop_index(name, table_name=table)
