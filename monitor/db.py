"""Database engine and sessions, and schema upgrades through Alembic."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

# Alembic scripts live at the top of the project, beside the packages (see docs/architecture.md).
MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"

# SQLite copies the WAL back into the database file (a checkpoint) inside whichever COMMIT
# takes the WAL past `wal_autocheckpoint` pages, 1000 by default. After a settle tick over
# a city that is tens of thousands of pages, and the tick would wait for them. The runtime
# checkpoints in a scheduled job of its own (curtainwatch.runtime) and raises the threshold to
# this safety net (400 MiB of 4 KiB pages) for when no process runs that job.
WAL_SAFETY_NET_PAGES = 100_000
# A checkpointed WAL is reused rather than shrunk; this is what may stay on disk after it.
WAL_SIZE_LIMIT = 64 * 2**20


def make_engine(url: str, *, wal_autocheckpoint: int | None = None, **kwargs: Any) -> Engine:
    """The engine for `url`. On SQLite, `wal_autocheckpoint` (pages) replaces SQLite's
    default threshold for checkpointing at commit: only for a process that checkpoints
    by other means (see `checkpoint`)."""
    if make_url(url).get_backend_name() == "postgresql":
        # PostgreSQL JIT-compiles any query its planner costs high. For the settle tick's
        # INSERT ... SELECT (100,000 rows) that took 0.7 s of 2.2 s, far more than it saved;
        # the app's queries are many and short, where JIT does not pay either.
        connect_args = dict(kwargs.get("connect_args", {}))
        connect_args["options"] = f"{connect_args.get('options', '')} -c jit=off".strip()
        kwargs["connect_args"] = connect_args
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", partial(_sqlite_pragmas, autocheckpoint=wal_autocheckpoint))
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, autocheckpoint: int | None = None) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the dashboard read while ingestion writes; the timeout rides out short locks.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    if autocheckpoint is not None:
        cur.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
    cur.close()


def checkpoint(engine: Engine) -> tuple[int, int, int] | None:
    """Copy what the SQLite WAL holds into the database file, without waiting for readers
    or writers (PASSIVE: frames a reader still needs stay for the next time). Returns
    SQLite's (busy, frames in the WAL, frames checkpointed); None on PostgreSQL, which
    checkpoints by itself."""
    if engine.dialect.name != "sqlite":
        return None
    with engine.connect() as conn:
        busy, frames, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    return int(busy), int(frames), int(done)


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
