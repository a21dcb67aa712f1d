"""Several `huiyin serve` processes started at once on a new PostgreSQL database all come up: their
migrations run one after the other, not side by side (its own scratch database, so the shared test
database is left alone)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.db.session import Database
from tests.conftest import REAL_DATABASE_URL

pytestmark = pytest.mark.real_services

SCRATCH = "huiyin_concurrent_migration"


@pytest.fixture
async def fresh_database_url() -> AsyncIterator[str]:
    admin = create_async_engine(REAL_DATABASE_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)"))
        await conn.execute(text(f"CREATE DATABASE {SCRATCH}"))
    yield REAL_DATABASE_URL.rsplit("/", 1)[0] + "/" + SCRATCH
    async with admin.connect() as conn:
        await conn.execute(text(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)"))
    await admin.dispose()


_MIGRATE = (
    "import asyncio, sys; from bot.db.session import Database; asyncio.run(Database(sys.argv[1]).migrate())"
)


async def test_processes_migrating_a_new_database_at_once_all_succeed(fresh_database_url: str) -> None:
    # Separate interpreters, as separate `huiyin serve` processes are: each its own engine and its own
    # Alembic run, started together so that their first statements meet on the empty database.
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _MIGRATE, fresh_database_url, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(3)
    ]
    results = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in processes)), timeout=120)
    failures = [
        err.decode()[-400:] for p, (_out, err) in zip(processes, results, strict=True) if p.returncode != 0
    ]
    assert failures == []
    database = Database(fresh_database_url)
    try:
        async with database.engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
            appeals = (await conn.execute(text("SELECT count(*) FROM appeal"))).scalar_one()
        assert len(versions) == 1 and appeals == 0
        await database.migrate()  # and once at head, a migration changes nothing
    finally:
        await database.dispose()
