"""What a service outage looks like from the core: the exceptions that mean a message could not be
durably handled because Redis or the database is out of reach (or the conversation stayed locked), so the
sender should deliver it again later.

A channel that meets one of them answers so that the sender retries (HTTP 503 with ``Retry-After``; a
platform then redelivers, and the core's dedup makes the redelivery count once), instead of answering
success for a message that was never stored. Any other exception is a bug: retrying the same message
cannot mend it, and the channel treats it as such.

``TRANSIENT_ERRORS`` is for ``except`` clauses; :func:`is_outage` is the complete test (it also follows an
exception's cause and context, and knows a database error that invalidated its connection).
"""

from __future__ import annotations

import socket

import asyncpg.exceptions  # type: ignore[import-untyped]  # asyncpg ships no type hints
import redis.exceptions
import sqlalchemy.exc

from bot.state import LockTimeout

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    # Redis: refused, dropped, still loading its data set (BusyLoadingError is a ConnectionError), slow.
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    # The database through SQLAlchemy: lost or refused connections, locked SQLite, an exhausted pool.
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    # What asyncpg raises unwrapped while connecting: PostgreSQL refusing (ConnectionRefusedError is a
    # ConnectionError), starting up or shutting down (57P), out of connections (53), a dropped link (08).
    ConnectionError,
    TimeoutError,
    socket.gaierror,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    # Another message of the conversation held its lock past the lock wait.
    LockTimeout,
)
"""The exception classes that mean "a service is out; deliver this message again later".

``sqlalchemy.exc.DBAPIError`` as a whole is not among them: it is also the base of IntegrityError,
DataError and ProgrammingError, which a retry cannot mend. :func:`is_outage` counts a DBAPIError whose
connection SQLAlchemy found dead (``connection_invalidated``)."""

RETRY_AFTER_S = 5
"""What ``Retry-After`` a channel answers with for an outage (seconds)."""


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) means a service outage rather than a bug."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TRANSIENT_ERRORS):
            return True
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        # What it was raised from, or while handling, unless that was cut off with ``raise ... from None``
        # (a 400 raised for bad input while handling a parse error is not an outage).
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return False


__all__ = ["RETRY_AFTER_S", "TRANSIENT_ERRORS", "is_outage"]
