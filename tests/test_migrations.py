"""The Alembic migrations build exactly the schema the models describe, `curtainwatch db
upgrade` is idempotent, and upgrading a database made by the first migration keeps every
row. Runs on the backend ``db_url`` points at (SQLite or PostgreSQL, see conftest)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from curtainwatch.cli import main
from monitor.db import make_engine, upgrade
from monitor.models import (
    Alert,
    AwayPeriod,
    Base,
    Community,
    DeadLetter,
    Delivery,
    Device,
    Event,
    Person,
    Resident,
    Routine,
    Settlement,
    UnknownDevice,
)

# Every table migration 0001 made, with the columns it had then.
TABLES_0001 = (
    "alerts",
    "community",
    "dead_letters",
    "events",
    "people",
    "residents",
    "unknown_devices",
    "away_periods",
    "devices",
    "routines",
    "settlements",
)

# Rows as the 0.1 code wrote them: no explicit ids where the database numbers rows, so
# the sequences (PostgreSQL) have moved on exactly as in a real installation.
ROWS_0001 = [
    "INSERT INTO community (id, timezone, escalation, imported_at)"
    ' VALUES (1, \'Asia/Shanghai\', \'[{"after_minutes": 10, "to": "building_volunteers"}]\','
    " '2026-11-01 02:00:00')",
    "INSERT INTO residents (id, name, building, unit, timezone, active) VALUES"
    " ('r-1', 'Wang Shulan', '3', '301', 'Asia/Shanghai', TRUE),"
    " ('r-2', 'Zhao Guiying', '3', '302', 'Asia/Shanghai', FALSE)",
    "INSERT INTO devices (id, resident_id, kind, light_threshold, state, last_seen, battery,"
    " online, alive_until, created_at) VALUES"
    " ('curtain-1', 'r-1', 'curtain', 30.0, 'open', '2026-11-22 23:40:00', 87.5, TRUE,"
    " '2026-11-23 23:40:00', '2026-11-01 02:00:00'),"
    " ('card-1', 'r-1', 'help_card', 30.0, NULL, NULL, NULL, NULL, NULL, '2026-11-01 02:00:00')",
    "INSERT INTO unknown_devices (id, topic, first_seen, last_seen, messages, last_payload)"
    " VALUES ('stray', 'zigbee2mqtt/stray', '2026-11-20 01:00:00', '2026-11-22 01:00:00', 7,"
    " '{\"position\": 40}')",
    "INSERT INTO events (resident_id, device_id, kind, value, ts, received_at) VALUES"
    " ('r-1', 'curtain-1', 'curtain', 'closed', '2026-11-22 13:10:00', '2026-11-22 13:10:01'),"
    " ('r-1', 'curtain-1', 'curtain', 'open', '2026-11-22 23:40:00', '2026-11-22 23:40:00')",
    "INSERT INTO away_periods (resident_id, first_day, last_day)"
    " VALUES ('r-2', '2026-12-20', '2026-12-27')",
    'INSERT INTO routines (resident_id, kind, slot, start, "end", grace_s, hours, timezone,'
    " match_kind, match_value, window_date, window_start_at, next_due_at, active) VALUES"
    " ('r-1', 'curtain_open', 'curtain_open', '07:00', '09:00', 600, NULL, 'Asia/Shanghai',"
    " 'curtain', 'open', '2026-11-23', '2026-11-22 23:00:00', '2026-11-23 01:10:00', TRUE),"
    " ('r-1', 'inactivity', 'inactivity', NULL, NULL, 0, 12.5, 'Asia/Shanghai',"
    " NULL, NULL, NULL, NULL, '2026-11-23 11:40:00', TRUE)",
    "INSERT INTO settlements (routine_id, resident_id, kind, window_date, due_at, outcome,"
    " settled_at) SELECT id, 'r-1', 'curtain_open', '2026-11-22', '2026-11-22 01:10:00',"
    " 'satisfied', '2026-11-22 01:10:05' FROM routines WHERE slot = 'curtain_open'",
    "INSERT INTO alerts (resident_id, device_id, routine_id, kind, cause, severity, status,"
    " detail, due_at, raised_at, last_raised_at, repeats, resolved_at, outcome, resolved_by,"
    " note, escalation_level, next_escalation_at) VALUES"
    " ('r-1', 'card-1', NULL, 'help', 'help', 'critical', 'open', '', NULL,"
    " '2026-11-23 01:00:00', '2026-11-23 01:00:00', 0, NULL, NULL, NULL, NULL, 1,"
    " '2026-11-23 01:10:00'),"
    " ('r-1', NULL, NULL, 'help', 'help', 'critical', 'resolved', 'earlier', NULL,"
    " '2026-11-20 01:00:00', '2026-11-20 01:00:00', 2, '2026-11-20 01:30:00', 'ok', 'v-li',"
    " '\u5df2\u786e\u8ba4', 0, NULL)",
    "INSERT INTO people (id, name, role, language, buildings, resident_id, consent, notify)"
    " VALUES ('v-li', 'Li Ming', 'volunteer', 'zh-CN', '[\"3\"]', NULL, NULL,"
    " '[\"ntfy://ntfy.example/li\"]'),"
    " ('f-wang', 'Wang Jun', 'family', 'en', '[]', 'r-1', '2026-10-01', '[]')",
]


def _columns(conn: Connection) -> dict[str, list[str]]:
    return {
        table: [c["name"] for c in conn.dialect.get_columns(conn, table)] for table in TABLES_0001
    }


def _snapshot(conn: Connection, columns: dict[str, list[str]]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in `columns`, those columns only, in a stable order."""
    snapshot = {}
    for table, names in columns.items():
        quoted = ", ".join(conn.dialect.identifier_preparer.quote(n) for n in names)
        rows = conn.execute(text(f"SELECT {quoted} FROM {table} ORDER BY 1, 2"))
        snapshot[table] = [tuple(row) for row in rows]
    return snapshot


def test_migrations_match_the_models(db_url: str, db_backend: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        mode = conn.execute(text("PRAGMA journal_mode")).scalar() if db_backend == "sqlite" else ""
    engine.dispose()
    assert diff == []
    if db_backend == "sqlite":
        # WAL lets the dashboard read while ingestion writes (monitor.db); SQLite only.
        assert mode == "wal"


def test_db_upgrade_twice_is_harmless(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database", db_url, "db", "upgrade"]) == 0
    assert main(["--database", db_url, "db", "upgrade"]) == 0
    assert capsys.readouterr().out.count("is up to date") == 2


def test_upgrade_from_the_first_migration_keeps_data(db_url: str) -> None:
    upgrade(db_url, "0001")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        for statement in ROWS_0001:
            conn.execute(text(statement))
        conn.execute(
            text(
                "INSERT INTO dead_letters (topic, payload, error, received_at)"
                " VALUES ('zigbee2mqtt/x', :payload, 'not JSON', '2026-11-22 05:00:00')"
            ),
            {"payload": b"\x00\xff{"},
        )
        columns_0001 = _columns(conn)
        before = _snapshot(conn, columns_0001)
    assert sum(len(rows) for rows in before.values()) == 17

    upgrade(db_url)

    # 0013 moved the windows of windowed routines to schedules (checked below).
    moved = {"window_date", "window_start_at", "next_due_at"}
    routine_columns = columns_0001["routines"]
    columns_0001["routines"] = [c for c in routine_columns if c not in moved]
    before["routines"] = [
        tuple(v for v, c in zip(row, routine_columns, strict=True) if c not in moved)
        for row in before["routines"]
    ]
    with engine.connect() as conn:
        assert _snapshot(conn, columns_0001) == before
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    # The models read the old rows, with the later columns' defaults filled in.
    with Session(engine) as s:
        community = s.get_one(Community, 1)
        assert community.escalation == [{"after_minutes": 10, "to": "building_volunteers"}]
        assert community.imported_at == datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
        wang, zhao = s.query(Resident).order_by(Resident.id).all()
        assert (wang.name, wang.active, zhao.active) == ("Wang Shulan", True, False)
        assert (wang.phone, wang.contact, wang.notes) == ("", "", "")
        curtain = s.get_one(Device, "curtain-1")
        assert (curtain.state, curtain.battery, curtain.online) == ("open", 87.5, True)
        assert curtain.alive_until == datetime(2026, 11, 23, 23, 40, tzinfo=UTC)
        assert s.get_one(UnknownDevice, "stray").messages == 7
        assert [e.value for e in s.query(Event).order_by(Event.ts)] == ["closed", "open"]
        away = s.query(AwayPeriod).one()
        assert (away.first_day, away.last_day) == (date(2026, 12, 20), date(2026, 12, 27))
        window = s.query(Routine).filter_by(slot="curtain_open").one()
        assert (window.end, window.window_date) == ("09:00", date(2026, 11, 23))
        assert (window.window_start_at, window.next_due_at) == (
            datetime(2026, 11, 22, 23, tzinfo=UTC),
            datetime(2026, 11, 23, 1, 10, tzinfo=UTC),
        )
        inactivity = s.query(Routine).filter_by(slot="inactivity").one()
        assert (inactivity.hours, inactivity.next_due_at, inactivity.schedule) == (
            12.5,
            datetime(2026, 11, 23, 11, 40, tzinfo=UTC),
            None,
        )
        assert s.query(Settlement).one().outcome == "satisfied"
        li = s.get_one(Person, "v-li")
        assert (li.buildings, li.notify, li.rota, li.quiet_hours) == (
            ["3"],
            ["ntfy://ntfy.example/li"],
            [],
            None,
        )
        assert s.get_one(Person, "f-wang").consent == date(2026, 10, 1)
        open_help = s.query(Alert).filter_by(status="open").one()
        assert (open_help.escalation_level, open_help.claimed_by, open_help.delivery_problem) == (
            1,
            None,
            None,
        )
        resolved = s.query(Alert).filter_by(status="resolved").one()
        assert (resolved.repeats, resolved.note) == (2, "\u5df2\u786e\u8ba4")
        assert s.query(DeadLetter).one().payload == b"\x00\xff{"

        # New rows get fresh ids (sequences carried over) and the later tables work.
        newer = Event(
            resident_id="r-1",
            device_id="curtain-1",
            kind="curtain",
            value="closed",
            ts=datetime(2026, 11, 23, 12, tzinfo=UTC),
            received_at=datetime(2026, 11, 23, 12, tzinfo=UTC),
        )
        s.add(newer)
        s.add(
            Delivery(
                alert_id=open_help.id,
                step=1,
                person_id="v-li",
                channel=0,
                scheme="ntfy",
                created_at=datetime(2026, 11, 23, 1, 10, tzinfo=UTC),
            )
        )
        s.commit()
        assert newer.id == 3
    engine.dispose()


def test_one_open_alert_per_cause_after_upgrading_from_the_first_migration(db_url: str) -> None:
    """The partial unique index (open alerts only) survives the upgrade path: a resolved
    alert and an open one for the same cause coexist; a second open one is refused."""
    upgrade(db_url, "0001")
    upgrade(db_url)
    engine = make_engine(db_url)
    at = datetime(2026, 11, 23, 1, tzinfo=UTC)

    def alert(status: str) -> Alert:
        return Alert(
            resident_id="r-1",
            kind="help",
            cause="help",
            severity="critical",
            status=status,
            raised_at=at,
            last_raised_at=at,
        )

    with Session(engine) as s:
        s.add_all([alert("resolved"), alert("resolved"), alert("open")])
        s.commit()
        s.add(alert("claimed"))
        with pytest.raises(IntegrityError):
            s.commit()
    engine.dispose()
