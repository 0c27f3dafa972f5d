"""day marks: the board's times of each resident's day, kept as events are stored

The board showed today's first curtain open, last close, first light on and last door
event by grouping the day's events for every resident on every request (a third of its
time at 10,000 residents, growing through the day). The ingestor now keeps the first three
per resident and local day in `day_marks` as it stores the events (monitor.rules.day_marks);
the last door event is its device's state_at. The marks of yesterday and today are filled
here from the events already stored, in the community's zone (the board's "today").
Instances still running the previous version during a rolling upgrade store events
without marks: their curtain and light times are missing from the board until the next
day (stop them all, then upgrade, to avoid it).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 16:50:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

from monitor.models import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Which events feed which mark, and whether the mark keeps the latest (else the earliest).
FEEDS = {
    ("curtain", "open"): ("curtain_opened", False),
    ("curtain", "closed"): ("curtain_closed", True),
    ("light", "on"): ("light_on", False),
}


def upgrade() -> None:
    marks = op.create_table(
        "day_marks",
        sa.Column("resident_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("curtain_opened", UTCDateTime(), nullable=True),
        sa.Column("curtain_closed", UTCDateTime(), nullable=True),
        sa.Column("light_on", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["resident_id"], ["residents.id"]),
        sa.PrimaryKeyConstraint("resident_id", "day"),
    )
    _backfill(marks)


def _backfill(marks: sa.Table) -> None:
    bind = op.get_bind()
    zone = ZoneInfo(
        bind.execute(sa.text("SELECT timezone FROM community")).scalar() or "Asia/Shanghai"
    )
    events = sa.table(
        "events",
        sa.column("resident_id", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("value", sa.String()),
        sa.column("ts", UTCDateTime()),
    )
    yesterday = (datetime.now(UTC) - timedelta(days=1)).astimezone(zone).date()
    since = datetime.combine(yesterday, time(0), tzinfo=zone)
    rows: dict[tuple[str, object], dict[str, object]] = {}
    for resident_id, kind, value, ts in bind.execute(
        sa.select(events.c.resident_id, events.c.kind, events.c.value, events.c.ts).where(
            events.c.ts >= since, events.c.kind.in_(("curtain", "light"))
        )
    ):
        target = FEEDS.get((kind, value))
        if target is None:
            continue
        column, latest = target
        day = ts.astimezone(zone).date()
        row = rows.setdefault(
            (resident_id, day),
            {
                "resident_id": resident_id,
                "day": day,
                "curtain_opened": None,
                "curtain_closed": None,
                "light_on": None,
            },
        )
        old = row[column]
        if old is None or (ts > old if latest else ts < old):  # type: ignore[operator]
            row[column] = ts
    if rows:
        op.bulk_insert(marks, list(rows.values()))


def downgrade() -> None:
    op.drop_table("day_marks")
