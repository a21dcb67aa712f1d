"""Migration 0003 (staff) matches the models exactly, and goes down and up again, on SQLite and on
PostgreSQL (its own scratch database, so the shared test database is left alone)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from bot.db.models import Base
from bot.db.session import alembic_config
from tests.conftest import REAL_DATABASE_URL

STAFF_TABLES = {"staff_account", "invite_code", "handoff", "handoff_note", "canned_reply"}


def _alembic(connection: Connection, url: str, action: str, target: str) -> None:
    cfg = alembic_config(url)
    cfg.attributes["connection"] = connection
    getattr(command, action)(cfg, target)


def _state(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    return {
        "tables": set(inspector.get_table_names()),
        "chat": {c["name"] for c in inspector.get_columns("chat")},
        "audit": {c["name"] for c in inspector.get_columns("audit_log")},
        "diff": compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
        ),
    }


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.real_services)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrate.db'}"
        return
    admin = create_async_engine(REAL_DATABASE_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text("DROP DATABASE IF EXISTS huiyin_staff_migration"))
        await conn.execute(text("CREATE DATABASE huiyin_staff_migration"))
    yield REAL_DATABASE_URL.rsplit("/", 1)[0] + "/huiyin_staff_migration"
    async with admin.connect() as conn:
        await conn.execute(text("DROP DATABASE IF EXISTS huiyin_staff_migration WITH (FORCE)"))
    await admin.dispose()


async def test_staff_migration_matches_the_models_and_reverses(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_alembic, database_url, "upgrade", "head")
        async with engine.connect() as conn:
            up = await conn.run_sync(_state)
        assert up["diff"] == [], up["diff"]
        assert STAFF_TABLES <= up["tables"] and "purpose" in up["chat"] and "community_id" in up["audit"]

        async with engine.begin() as conn:
            # Down past the merge revision 0004, then take the staff branch (0003) off alone.
            await conn.run_sync(_alembic, database_url, "downgrade", "0002")
            await conn.run_sync(_alembic, database_url, "downgrade", "0003@-1")
        async with engine.connect() as conn:
            down = await conn.run_sync(_state)
        assert not STAFF_TABLES & down["tables"]
        assert "purpose" not in down["chat"] and "community_id" not in down["audit"]

        async with engine.begin() as conn:
            await conn.run_sync(_alembic, database_url, "upgrade", "head")
        async with engine.connect() as conn:
            again = await conn.run_sync(_state)
        assert again["diff"] == [] and STAFF_TABLES <= again["tables"]
    finally:
        await engine.dispose()
