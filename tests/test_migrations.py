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
