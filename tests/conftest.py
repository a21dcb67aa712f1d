"""Shared fixtures. The suite runs on the embedded defaults (SQLite file + fakeredis) unless
``HUIYIN_TEST_REAL=1``, when it runs against the real PostgreSQL and Redis of the machine
(``HUIYIN_TEST_DATABASE_URL``, ``HUIYIN_TEST_REDIS_URL``; defaults: the local ``test`` database and Redis
database 15). CI runs it both ways. Tests that only make sense on real services are marked
``real_services`` and skipped on the embedded run.

Network is off limits: tests may only talk to servers they start on loopback, or to the real services
named above.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.message import ChatType, IncomingMessage, Platform
from bot.nlu.base import NLUBackend
from bot.runtime import Runtime
from bot.settings import Settings

REAL = os.environ.get("HUIYIN_TEST_REAL") == "1"
REAL_DATABASE_URL = os.environ.get(
    "HUIYIN_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REAL_REDIS_URL = os.environ.get("HUIYIN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

# Settings read the environment; tests must not pick up a developer's own configuration.
for _var in ("DATABASE_URL", "REDIS_URL", "HUIYIN_DATABASE_URL", "HUIYIN_REDIS_URL", "HUIYIN_NLU"):
    os.environ.pop(_var, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if REAL:
        return
    skip = pytest.mark.skip(reason="needs real Redis and PostgreSQL: run with HUIYIN_TEST_REAL=1")
    for item in items:
        if "real_services" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def nlu_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nlu-cache")


@pytest.fixture(scope="session")
def shared_nlu(nlu_cache_dir: Path) -> Iterator[NLUBackend]:
    """One trained embedded NLU for the whole session (training takes a couple of seconds)."""
    import asyncio

    from bot.nlu.registry import build_nlu

    nlu = asyncio.run(build_nlu(Settings(data_dir=nlu_cache_dir)))
    yield nlu


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path / "data"}
    if REAL:
        values.update(database_url=REAL_DATABASE_URL, redis_url=REAL_REDIS_URL)
    values.update(overrides)
    return Settings(**values)


_schema_rebuilt = False


async def _reset_real_services(settings: Settings) -> None:
    """Empty the real database and Redis database so each test starts clean."""
    from bot.db.models import Base
    from bot.db.session import Database
    from bot.state import StateStore

    global _schema_rebuilt
    db = Database(settings.effective_database_url)
    if not _schema_rebuilt:
        # Once per session: build the schema from nothing, so the migrations themselves are tested.
        async with db.engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        _schema_rebuilt = True
    await db.migrate()
    async with db.engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await db.dispose()
    store = StateStore.from_url(settings.redis_url)
    await store.redis.flushdb()
    await store.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def runtime(settings: Settings, shared_nlu: NLUBackend) -> AsyncIterator[Runtime]:
    if REAL:
        await _reset_real_services(settings)
    rt = await Runtime.start(settings, nlu=shared_nlu)
    yield rt
    await rt.close()


GROUP = "group-3"
GROUP_TITLE = "幸福里3栋业主群"


def rest_message(
    text: str, who: str, name: str, *, chat_type: ChatType, chat_id: str, **kw: Any
) -> IncomingMessage:
    """A message from ``who`` (display name ``name``) in ``chat_id`` on the REST platform; ``kw`` sets
    any other :class:`IncomingMessage` field (``mentions_bot``, ``message_id``…)."""
    return IncomingMessage(
        platform=Platform.REST,
        chat_id=chat_id,
        chat_type=chat_type,
        sender_id=who,
        sender_name=name,
        text=text,
        **kw,
    )


def group_message(
    text: str, who: str = "wang", name: str = "王阿姨", *, chat_id: str = GROUP, **kw: Any
) -> IncomingMessage:
    """A resident's message in the building group ``chat_id``, titled :data:`GROUP_TITLE`."""
    return rest_message(
        text, who, name, chat_type=ChatType.GROUP, chat_id=chat_id, chat_title=GROUP_TITLE, **kw
    )


def private_message(text: str, who: str = "wang", name: str = "王阿姨", **kw: Any) -> IncomingMessage:
    """A resident's message in their private chat with the bot (the chat id is their id)."""
    return rest_message(text, who, name, chat_type=ChatType.PRIVATE, chat_id=who, **kw)


@pytest.fixture
def group_msg() -> Callable[..., IncomingMessage]:
    """Build a group message: ``group_msg("text", who="wang", name="王阿姨", mention=True)``."""

    def build(
        text: str, who: str = "wang", name: str = "王阿姨", *, mention: bool = False, **kw: Any
    ) -> IncomingMessage:
        return group_message(text, who, name, mentions_bot=mention, **kw)

    return build


@pytest.fixture
def private_msg() -> Callable[..., IncomingMessage]:
    """Build a private message: ``private_msg("text", who="wang", name="王阿姨")``."""
    return private_message
