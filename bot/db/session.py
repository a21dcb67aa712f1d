"""The database handle: async engine, migrations, and units of work.

A :class:`UnitOfWork` is the only way the core writes: it opens a session, hands out the repository,
and rolls back unless ``commit()`` was called (cosmicpython's pattern). One unit of work = one
transaction, which is how an appeal and its outbox row are written together or not at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, insert, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from bot.db.repository import PENDING_TRANSCRIPT, TRANSCRIPT_TABLE, Repository

if TYPE_CHECKING:  # Alembic is imported when a migration runs, not by every process that opens the DB
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
_AFTER_COMMIT = "huiyin.after_commit"


def after_commit(session: AsyncSession, action: Callable[[], Awaitable[object]]) -> None:
    """Run ``action`` once ``session``'s transaction is committed by :func:`commit` (never if it is not).

    For what mirrors the database elsewhere and must not run ahead of it: a Redis marker that says a
    conversation is no longer held is removed only once the release is durable.
    """
    session.info.setdefault(_AFTER_COMMIT, []).append(action)


async def commit(session: AsyncSession) -> None:
    """Commit ``session``, then run what :func:`after_commit` deferred to this moment."""
    await session.commit()
    for action in session.info.pop(_AFTER_COMMIT, []):
        await action()


def write_pending(session: Session) -> None:
    """Write the transcript lines added since the session's last statement, in one INSERT (no RETURNING:
    nothing needs their ids). Runs before every ORM statement and before commit (the listeners below)."""
    rows = session.info.pop(PENDING_TRANSCRIPT, None)
    if rows:
        # On the connection, as Core: through the session it would be the ORM's bulk insert, which splits
        # the rows by which of their values are None (one statement per shape).
        session.connection().execute(insert(TRANSCRIPT_TABLE), rows)


@event.listens_for(Session, "do_orm_execute")
def _before_statement(state: ORMExecuteState) -> None:
    write_pending(state.session)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    write_pending(session)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous: SessionTransaction) -> None:
    # What was deferred to a commit that will not come: the lines were never written, the actions must
    # never run.
    session.info.pop(PENDING_TRANSCRIPT, None)
    session.info.pop(_AFTER_COMMIT, None)


def alembic_config(url: str) -> Config:
    """An Alembic config that works from any working directory (the scripts ship as package data)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


class UnitOfWork:
    """One transaction. Use as ``async with db.unit_of_work() as uow: ...; await uow.commit()``."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = Repository(session)

    async def commit(self) -> None:
        await commit(self.session)

    async def rollback(self) -> None:
        await self.session.rollback()


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            path = url.split(":///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent; safe with several processes on
        PostgreSQL thanks to Alembic's version table being updated in the migration transaction)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade, self.url)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        # Leaving the block closes the session, which rolls back whatever was not committed. (Closing
        # rather than calling rollback() keeps loaded objects readable after the block.)
        async with self._sessions() as session:
            yield UnitOfWork(session)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _upgrade(connection: Connection, url: str) -> None:
    cfg = alembic_config(url)
    cfg.attributes["connection"] = connection
    # One head: parallel feature branches are joined by merge revisions (see 0004).
    from alembic import command

    command.upgrade(cfg, "head")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the web chat read while a turn writes; foreign keys are off by default in SQLite.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
