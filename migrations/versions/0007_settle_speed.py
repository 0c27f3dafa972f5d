"""settlements keyed by date first: cheap index writes for a big settle tick

The settlements key was (routine_id, due_at) plus an index on resident_id. A tick that
settles 100,000 windows put one entry on nearly every page of both (they grow with the
history), so its writes cost several times the query that finds the windows. Both give
way to one unique key led by the window's local date, where a tick's entries land
together: (window_date, routine_id, due_at), also the settle claim. Readers look up a
date's windows by routine through it (the resident page by its resident's routines). It
still allows one row per routine and due time: a routine's window date follows from its
due time.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 14:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Migration 0001 left the old key unnamed; this names it so batch mode (SQLite) can drop it.
OLD_KEY = "uq_settlements_routine_id"
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # SQLite cannot drop a table constraint: batch mode rebuilds the table without it.
        with op.batch_alter_table(
            "settlements", recreate="always", naming_convention=NAMING
        ) as batch_op:
            batch_op.drop_constraint(OLD_KEY, type_="unique")
            batch_op.drop_index("ix_settlements_resident_id")
    else:
        [old] = [
            uc["name"]
            for uc in sa.inspect(bind).get_unique_constraints("settlements")
            if uc["column_names"] == ["routine_id", "due_at"]
        ]
        op.drop_constraint(old, "settlements", type_="unique")
        op.drop_index("ix_settlements_resident_id", table_name="settlements")
    op.create_index(
        "uq_settlements_window",
        "settlements",
        ["window_date", "routine_id", "due_at"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_settlements_window", table_name="settlements")
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.create_unique_constraint(OLD_KEY, ["routine_id", "due_at"])
        batch_op.create_index("ix_settlements_resident_id", ["resident_id"], unique=False)
