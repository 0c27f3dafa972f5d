"""Database engine and sessions, and schema upgrades through Alembic."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

# Alembic scripts live at the top of the project, beside the packages (see DESIGN.md).
MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def make_engine(url: str, **kwargs: Any) -> Engine:
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the dashboard read while ingestion writes; the timeout rides out short locks.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at `url` up to `revision` (creates it on an empty database)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, revision)


def dialect_insert_for(session: Session, table: Any) -> Any:
    """The dialect's INSERT (with ON CONFLICT support) for `table`."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def upsert(
    session: Session,
    table: Any,
    rows: list[dict[str, Any]],
    keys: list[str],
    update: Callable[[Any], dict[str, Any]] | None = None,
) -> None:
    """INSERT rows in one statement; on a key conflict apply `update(excluded)` (a mapping of
    column -> expression), or do nothing when `update` is None."""
    if not rows:
        return
    stmt = dialect_insert_for(session, table)
    if update is None:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    else:
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_=update(stmt.excluded))
    session.execute(stmt, rows)


def won(result: Any) -> bool:
    """Did a conditional UPDATE touch a row, i.e. did this instance claim the work?"""
    return bool(getattr(result, "rowcount", 0))
