"""schedules: the current window of routines that share a timing

A settle tick used to rewrite every due routine's window (100,000 rows at city scale,
as much work as the settlements themselves). Now routines with the same zone, start, end,
grace and window date share a schedule row, and the tick moves the row. Inactivity
routines keep their own due time (`routines.next_due_at`, `routines.window_date`);
`routines.window_start_at` goes.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 19:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_TIMING = 'timezone, start, "end", grace_s, window_date, window_start_at, next_due_at'


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("start", sa.String(length=5), nullable=False),
        sa.Column("end", sa.String(length=5), nullable=False),
        sa.Column("grace_s", sa.Integer(), nullable=False),
        sa.Column("window_date", sa.Date(), nullable=False),
        sa.Column("window_start_at", sa.DateTime(), nullable=False),
        sa.Column("next_due_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_schedules_next_due_at"), "schedules", ["next_due_at"])
    # Plain ALTERs, not a batch copy of the table: settlements refer to routines, and SQLite
    # (3.35+) adds a column with its reference and drops an unindexed one in place.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE routines ADD COLUMN schedule_id INTEGER REFERENCES schedules (id)")
    else:
        op.add_column(
            "routines",
            sa.Column("schedule_id", sa.Integer(), sa.ForeignKey("schedules.id"), nullable=True),
        )
    op.create_index(op.f("ix_routines_schedule_id"), "routines", ["schedule_id"])
    windowed = "active AND kind != 'inactivity' AND next_due_at IS NOT NULL"
    op.execute(
        f"INSERT INTO schedules ({_TIMING}) "
        f"SELECT DISTINCT {_TIMING} FROM routines WHERE {windowed}"
    )
    op.execute(
        f"""UPDATE routines SET schedule_id = (
            SELECT min(s.id) FROM schedules AS s
            WHERE s.timezone = routines.timezone AND s.start = routines.start
              AND s."end" = routines."end" AND s.grace_s = routines.grace_s
              AND s.window_date = routines.window_date
              AND s.window_start_at = routines.window_start_at
              AND s.next_due_at = routines.next_due_at)
        WHERE {windowed}"""
    )
    op.execute(
        "UPDATE routines SET window_date = NULL, next_due_at = NULL "
        "WHERE kind != 'inactivity' OR NOT active"
    )
    op.drop_column("routines", "window_start_at")


def downgrade() -> None:
    # Plain ALTERs again: a batch copy of routines would break the settlements' reference.
    op.add_column("routines", sa.Column("window_start_at", sa.DateTime(), nullable=True))
    of_schedule = "FROM schedules AS s WHERE s.id = routines.schedule_id"
    op.execute(
        f"""UPDATE routines SET
            window_date = (SELECT s.window_date {of_schedule}),
            window_start_at = (SELECT s.window_start_at {of_schedule}),
            next_due_at = (SELECT s.next_due_at {of_schedule})
        WHERE schedule_id IS NOT NULL"""
    )
    op.drop_index(op.f("ix_routines_schedule_id"), table_name="routines")
    op.drop_column("routines", "schedule_id")
    op.drop_index(op.f("ix_schedules_next_due_at"), table_name="schedules")
    op.drop_table("schedules")
