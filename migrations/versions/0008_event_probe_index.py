"""events by resident and time carry kind and value: routine probes read only the index

"Did this resident's window see a matching event?" is asked for every routine by the
settle tick and by the board (windows still waiting). With (resident_id, ts) alone each
event in the window cost a table lookup for its kind and value; with both in the index
the probe never leaves it (the board's waiting windows at 10,000 residents: 50 -> 35 ms;
the settle benchmark's bare query 0.73 -> 0.30 s). The new index replaces the old one, so
ingestion writes as many index entries as before. On PostgreSQL it is built CONCURRENTLY
(outside the migration's transaction): months of events do not lock ingestion out while
it builds.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 16:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

OLD = "ix_events_resident_ts"
NEW = "ix_events_resident_probe"


def upgrade() -> None:
    _swap(OLD, NEW, ["resident_id", "ts", "kind", "value"])


def downgrade() -> None:
    _swap(NEW, OLD, ["resident_id", "ts"])


def _swap(old: str, new: str, columns: list[str]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                new, "events", columns, postgresql_concurrently=True, if_not_exists=True
            )
            op.drop_index(old, table_name="events", postgresql_concurrently=True, if_exists=True)
    else:
        op.create_index(new, "events", columns)
        op.drop_index(old, table_name="events")
