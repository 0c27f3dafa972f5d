"""events by resident and time carry kind and value: routine probes read only the index

"Did this resident's window see a matching event?" is asked for every routine by the
settle tick and by the board (windows still waiting). With (resident_id, ts) alone each
event in the window cost a table lookup for its kind and value; with both in the index
the probe never leaves it (the board's waiting windows at 10,000 residents: 50 -> 35 ms).
Same number of indexes, so ingestion writes as many entries as before.

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


def upgrade() -> None:
    op.drop_index("ix_events_resident_ts", table_name="events")
    op.create_index(
        "ix_events_resident_ts", "events", ["resident_id", "ts", "kind", "value"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_events_resident_ts", table_name="events")
    op.create_index("ix_events_resident_ts", "events", ["resident_id", "ts"], unique=False)
