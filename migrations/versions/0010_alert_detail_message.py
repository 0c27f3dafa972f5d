"""alerts.detail_message and note_message: what the engine says of an alert as messages

`detail` (and, for an alert the engine resolved, `note`) keep the English text (API, CSV
export, logs). `detail_message` and `note_message` hold the same as JSON
`[message id, {parameters}]` (monitor.messages), so the dashboard and the phone page can
say it in the reader's language and local time. Alerts raised before this revision have
none and show their English text. (note_message was added to this revision after it was
first committed, before any release.)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 19:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("detail_message", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("note_message", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("note_message")
        batch_op.drop_column("detail_message")
