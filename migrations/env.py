"""Alembic environment: runs migrations against the URL monitor.db.upgrade() passes in
(or CURTAINWATCH_DATABASE_URL when alembic is called by hand)."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import pool

from monitor.db import make_engine
from monitor.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or os.environ.get(
    "CURTAINWATCH_DATABASE_URL", "sqlite:///curtainwatch.db"
)


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
