"""devices.moved_at: when a device last moved to another resident

A device keeps its state when it moves (it is still what the device last said), and
`state_at` keeps ordering its readings, so a late one cannot overwrite a newer state. But
a change before `moved_at` happened at the old home: the board shows no door time from
it. Devices that never moved have none.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 17:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("moved_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("moved_at")
