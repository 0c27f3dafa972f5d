"""The Alembic migrations build exactly the schema the models describe, on SQLite in WAL
mode, and `curtainwatch db upgrade` is idempotent."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from monitor.cli import main
from monitor.db import make_engine, upgrade
from monitor.models import Base


def test_migrations_match_the_models(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        mode = conn.execute(text("PRAGMA journal_mode")).scalar()
    engine.dispose()
    assert diff == []
    assert mode == "wal"


def test_db_upgrade_twice_is_harmless(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database", db_url, "db", "upgrade"]) == 0
    assert main(["--database", db_url, "db", "upgrade"]) == 0
    assert capsys.readouterr().out.count("is up to date") == 2


def test_upgrade_from_the_first_migration_keeps_data(db_url: str) -> None:
    upgrade(db_url, "0001")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO people (id, name, role, language, buildings, notify) "
                "VALUES ('v-li', 'Li Ming', 'volunteer', 'zh-CN', '[\"3\"]', '[]')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO alerts (resident_id, kind, cause, severity, status, detail, raised_at,"
                " last_raised_at, repeats, escalation_level) VALUES ('r-1', 'help', 'help',"
                " 'critical', 'open', '', '2026-11-23 01:00:00', '2026-11-23 01:00:00', 0, 0)"
            )
        )
    upgrade(db_url)
    with engine.connect() as conn:
        person = conn.execute(text("SELECT name, buildings, rota FROM people")).one()
        alert = conn.execute(text("SELECT kind, status, delivery_problem FROM alerts")).one()
    engine.dispose()
    assert tuple(person) == ("Li Ming", '["3"]', "[]")
    assert tuple(alert) == ("help", "open", None)
