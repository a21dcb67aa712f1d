"""Shared set-up of the benchmarks: a fresh PostgreSQL database and an empty Redis database."""

from __future__ import annotations


async def prepare_real_services(database_url: str, redis_url: str) -> None:
    """Drop and re-create the database named in ``database_url`` and flush ``redis_url``'s database."""
    import asyncpg  # type: ignore[import-untyped]
    import redis.asyncio as aioredis

    admin = database_url.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
    name = database_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
