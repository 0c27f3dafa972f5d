"""several instances: stamped events stored once, device state time

Events whose time came from the payload carry `stamped`; a partial unique index on
(device_id, ts, kind, value) over those rows lets a QoS 1 redelivery (to any instance) be
recognised instead of stored twice. `devices.state_at` is the time of the reading that set
`state`, so a late reading does not overwrite a newer state.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 14:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import monitor.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("state_at", monitor.models.UTCDateTime(), nullable=True))

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stamped", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index(
            "uq_events_stamped",
            ["device_id", "ts", "kind", "value"],
            unique=True,
            sqlite_where=sa.text("stamped"),
            postgresql_where=sa.text("stamped"),
        )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_events_stamped",
            sqlite_where=sa.text("stamped"),
            postgresql_where=sa.text("stamped"),
        )
        batch_op.drop_column("stamped")

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("state_at")
