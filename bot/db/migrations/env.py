"""Alembic environment. Used two ways:

- programmatically by :meth:`bot.db.session.Database.migrate`, which passes an open connection in
  ``config.attributes["connection"]``;
- from the command line (``alembic -c alembic.ini upgrade head`` / ``revision --autogenerate``), where the
  URL comes from the settings (``DATABASE_URL`` or the embedded SQLite file).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from bot.db.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online_from_settings() -> None:
    from bot.settings import Settings

    url = context.config.get_main_option("sqlalchemy.url") or Settings().effective_database_url
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_online_from_settings())
