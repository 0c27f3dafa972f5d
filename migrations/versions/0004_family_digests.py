"""family digests and consent

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 12:13:56.591133
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest_day", sa.Date(), nullable=True))
        batch_op.alter_column("alert_id", existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_unique_constraint(
            "uq_deliveries_digest", ["digest_day", "person_id", "channel"]
        )

    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest_at", sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column("digest_next_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("consented_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("consent_version", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("opted_out_at", sa.DateTime(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_people_digest_next_at"), ["digest_next_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_people_digest_next_at"))
        batch_op.drop_column("opted_out_at")
        batch_op.drop_column("consent_version")
        batch_op.drop_column("consented_at")
        batch_op.drop_column("digest_next_at")
        batch_op.drop_column("digest_at")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        # WARNING: constraint name is None; this directive will fail as
        # rendered.  Add a name, or use a naming convention; see
        # https://alembic.sqlalchemy.org/en/latest/naming.html
        batch_op.drop_constraint("uq_deliveries_digest", type_="unique")
        batch_op.alter_column("alert_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("digest_day")
