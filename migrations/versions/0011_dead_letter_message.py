"""dead_letters.error_message: why a payload was refused, as a message id and parameters

`error` keeps the English reason (logs). `error_message` holds the same as JSON
`[message id, {parameters}]` (monitor.messages), so the devices page can say it in the
reader's language. Rows from before this revision have none and show their English.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 20:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_message", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_column("error_message")
