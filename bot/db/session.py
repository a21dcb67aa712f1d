"""The database handle: async engine, migrations, and units of work.

A :class:`UnitOfWork` is the only way the core writes: it opens a session, hands out the repository,
and rolls back unless ``commit()`` was called (cosmicpython's pattern). One unit of work = one
transaction, which is how an appeal and its outbox row are written together or not at all.

Transcript lines and conversation touches, which every turn writes, are buffered in the session and
written together just before its next statement or at commit (:func:`write_pending`); on PostgreSQL in
one statement. A unit of work that wrote nothing else commits them as that one statement alone, outside
a transaction (one statement is atomic by itself): a dialog turn is then one round trip to the database
instead of seven (:func:`commit`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, event, exc, insert, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.pool import ConnectionPoolEntry

from bot.db.repository import (
    CONVERSATION_TABLE,
    PENDING_TOUCH,
    PENDING_TRANSCRIPT,
    SKIP_PENDING_OPTION,
    TRANSCRIPT_TABLE,
    Repository,
)
from bot.db.repository.instance import SESSION_KEY as INSTANCE_SESSION_KEY
from bot.db.repository.instance import InstanceRecords

if TYPE_CHECKING:  # Alembic is imported when a migration runs, not by every process that opens the DB
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
_AFTER_COMMIT = "huiyin.after_commit"
_BEGUN = "huiyin.begun"  # set once the session holds a connection in a transaction (after_begin below)
_ALONE = "huiyin.alone"  # the engine a unit of work's pending writes go to when they are all it has


def after_commit(session: AsyncSession, action: Callable[[], Awaitable[object]]) -> None:
    """Run ``action`` once ``session``'s transaction is committed by :func:`commit` (never if it is not).

    For what mirrors the database elsewhere and must not run ahead of it: a Redis marker that says a
    conversation is no longer held is removed only once the release is durable.
    """
    session.info.setdefault(_AFTER_COMMIT, []).append(action)


async def commit(session: AsyncSession) -> None:
    """Commit ``session``, then run what :func:`after_commit` deferred to this moment.

    When the session has not begun a transaction on a connection and has no ORM changes, its pending
    transcript lines and conversation touches are all there is to commit: they are written on their own
    (on PostgreSQL one statement without BEGIN/COMMIT around it, which is atomic by itself).
    """
    if (
        (PENDING_TRANSCRIPT in session.info or PENDING_TOUCH in session.info)
        and not session.info.get(_BEGUN)
        and not (session.new or session.dirty or session.deleted)
    ):
        lines, touches = _take_pending(session.info)
        alone: AsyncEngine = session.info[_ALONE]
        async with alone.begin() as connection:  # on PostgreSQL an AUTOCOMMIT engine: no BEGIN is sent
            for statement, params in _pending_statements(connection.dialect.name, lines, touches):
                await connection.execute(statement, params)
    await session.commit()
    session.info.pop(_BEGUN, None)
    for action in session.info.pop(_AFTER_COMMIT, []):
        await action()


def write_pending(session: Session) -> None:
    """Write the transcript lines and conversation touches added since the session's last statement (no
    RETURNING: nothing needs their ids). Runs before every ORM statement and before commit (the listeners
    below). On the connection, as Core: through the session, the ORM's bulk insert would split the lines
    by which of their values are None (one statement per shape)."""
    lines, touches = _take_pending(session.info)
    if lines or touches:
        connection = session.connection()
        for statement, params in _pending_statements(connection.dialect.name, lines, touches):
            connection.execute(statement, params)


def _take_pending(info: dict[Any, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    lines: list[dict[str, Any]] = info.pop(PENDING_TRANSCRIPT, None) or []
    touches: dict[int, dict[str, Any]] = info.pop(PENDING_TOUCH, None) or {}
    return lines, list(touches.values())


# PostgreSQL: the lines and the touches in one statement, its parameters one array per column, so that
# its text (and so its prepared statement) is the same whatever the number of lines and touches. (A
# multi-row VALUES would be a new statement, compiled and prepared anew, for each count.)
_PG_PENDING = text(
    """
    WITH line AS (
        INSERT INTO transcript_message (conversation_id, direction, author, author_person_id,
                                        platform_message_id, text, intent, payload, created_at)
        SELECT conversation_id, direction, author, author_person_id, platform_message_id, text, intent,
               CAST(payload AS JSON), created_at
        FROM unnest(CAST(:conversation_id AS BIGINT[]), CAST(:direction AS VARCHAR[]),
                    CAST(:author AS VARCHAR[]), CAST(:author_person_id AS BIGINT[]),
                    CAST(:platform_message_id AS VARCHAR[]), CAST(:text AS TEXT[]),
                    CAST(:intent AS VARCHAR[]), CAST(:payload AS TEXT[]),
                    CAST(:created_at AS TIMESTAMPTZ[]))
             AS l(conversation_id, direction, author, author_person_id, platform_message_id, text,
                  intent, payload, created_at)
    )
    UPDATE conversation SET last_message_at = t.last_message_at, dialog_state = CAST(t.dialog_state AS JSON)
    FROM unnest(CAST(:touch_id AS BIGINT[]), CAST(:touch_at AS TIMESTAMPTZ[]),
                CAST(:touch_state AS TEXT[])) AS t(id, last_message_at, dialog_state)
    WHERE conversation.id = t.id
    """
)
_LINE_COLUMNS = (
    "conversation_id",
    "direction",
    "author",
    "author_person_id",
    "platform_message_id",
    "text",
    "intent",
    "payload",
    "created_at",
)
# Elsewhere (SQLite): the lines in one INSERT, the touches in one executemany UPDATE.
_TOUCH = (
    update(CONVERSATION_TABLE)
    .where(CONVERSATION_TABLE.c.id == bindparam("touch_id"))
    .values(last_message_at=bindparam("touch_at"), dialog_state=bindparam("touch_state"))
)


def _pending_statements(
    dialect: str, lines: list[dict[str, Any]], touches: list[dict[str, Any]]
) -> list[tuple[Any, Any]]:
    """The statements (with their parameters) that write ``lines`` and ``touches`` on ``dialect``."""
    if dialect == "postgresql":
        params: dict[str, list[Any]] = {c: [line[c] for line in lines] for c in _LINE_COLUMNS}
        params["payload"] = [_json(line["payload"]) for line in lines]
        params["touch_id"] = [t["id"] for t in touches]
        params["touch_at"] = [t["last_message_at"] for t in touches]
        params["touch_state"] = [_json(t["dialog_state"]) for t in touches]
        return [(_PG_PENDING, params)]
    statements: list[tuple[Any, Any]] = []
    if lines:
        statements.append((insert(TRANSCRIPT_TABLE), lines))
    if touches:
        rows = [
            {"touch_id": t["id"], "touch_at": t["last_message_at"], "touch_state": t["dialog_state"]}
            for t in touches
        ]
        statements.append((_TOUCH, rows))
    return statements


def _json(value: Any) -> str | None:
    """A JSON column's text as the column's own type would write it (None is SQL NULL)."""
    return None if value is None else json.dumps(value, ensure_ascii=False)


@event.listens_for(Session, "do_orm_execute")
def _before_statement(state: ORMExecuteState) -> None:
    if not state.execution_options.get(SKIP_PENDING_OPTION):
        write_pending(state.session)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    write_pending(session)


@event.listens_for(Session, "after_begin")
def _after_begin(session: Session, _transaction: SessionTransaction, _connection: Connection) -> None:
    # From now on the pending writes belong in this transaction (commit() may not write them alone).
    session.info[_BEGUN] = True


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous: SessionTransaction) -> None:
    # What was deferred to a commit that will not come: the lines were never written, the actions must
    # never run.
    session.info.pop(PENDING_TRANSCRIPT, None)
    session.info.pop(PENDING_TOUCH, None)
    session.info.pop(_AFTER_COMMIT, None)
    session.info.pop(_BEGUN, None)


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
        self.conversations = self.repo.conversations
        self.people = self.repo.people
        self.appeals = self.repo.appeals

    async def commit(self) -> None:
        await commit(self.session)

    async def rollback(self) -> None:
        await self.session.rollback()


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # Bound values are what residents wrote (messages, phone numbers): an error's text, which ends
        # up in logs and tracebacks, names the statement but not them.
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.is_sqlite:
            path = url.split(":///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            # No pool_pre_ping: with asyncpg it is three round trips per checkout (BEGIN, a ping,
            # ROLLBACK), more than a whole dialog turn needs. _refuse_closed below catches for free what
            # the ping is mostly for, a connection the server has closed.
            kwargs.update(pool_size=10, max_overflow=10)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            alone = self.engine
        else:
            event.listen(self.engine.sync_engine, "checkout", _refuse_closed)
            alone = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False, info={_ALONE: alone})
        self.instance_id: str | None = None  # set by identify()

    async def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent).

        Safe with several processes starting at once on one PostgreSQL database: each takes a
        transaction-scoped advisory lock first, so the migrations run one after the other and the later
        ones find the schema at head. (Alembic alone is not enough: two processes on an empty database
        both create its version table.) SQLite is one process's file; its writes are serialised anyway."""
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            await conn.run_sync(_upgrade, self.url)

    async def identify(self, configured: str | None = None) -> str:
        """Resolve this deployment's instance id — ``configured`` (``HUIYIN_INSTANCE_ID``), else the one
        kept in the database, made on first use (see :mod:`bot.db.repository.instance`) — and give it to
        every later session. Returns it."""
        if configured:
            value = configured
        else:
            async with self.unit_of_work() as uow:
                value = await InstanceRecords(uow.session).instance_id()
                await uow.commit()
        self._sessions.kw["info"][INSTANCE_SESSION_KEY] = value
        self.instance_id = value
        return value

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


# Any constant shared by every huiyin process; advisory locks are per database, so deployments sharing a
# server do not wait for each other.
_MIGRATION_LOCK = 0x68756979  # "huiy"


def _upgrade(connection: Connection, url: str) -> None:
    cfg = alembic_config(url)
    cfg.attributes["connection"] = connection
    # One head: parallel feature branches are joined by merge revisions (see 0004).
    from alembic import command

    command.upgrade(cfg, "head")


def _refuse_closed(dbapi_connection: Any, _record: ConnectionPoolEntry, _proxy: Any) -> None:
    """Pool checkout: refuse a connection the server has closed, so that the pool replaces it.

    A PostgreSQL restart or a terminated backend closes the socket; asyncpg's protocol sees that as soon
    as the event loop reads it, while the connection sits in the pool, so this costs no round trip. (A
    connection that died silently, without the socket closing, fails its statement instead; SQLAlchemy
    then invalidates the pool's older connections.)"""
    if dbapi_connection.driver_connection.is_closed():
        raise exc.DisconnectionError("the server closed this connection")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the web chat read while a turn writes; foreign keys are off by default in SQLite.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
