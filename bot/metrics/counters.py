"""The counters and histograms of one runtime (see :mod:`bot.metrics` for what is counted where)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from redis.exceptions import NoScriptError, RedisError
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.session import Database, after_commit
from bot.message import IncomingMessage, Platform
from bot.metrics.gauges import GAUGE_MAX_AGE_S, GAUGE_WAIT_S, ScrapeTimeGauges

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.nlu.base import NLUBackend
    from integrations.backend.registry import BackendSpec


# No <name>_created series (the time each counter was created): Prometheus does not need them, and they
# doubled the scrape. This is prometheus-client's process-wide switch; nothing else here uses the library.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Request latency buckets: fine around the 20 ms p99 target of a turn, coarse above it."""

TURN_KINDS = ("dialog", "command", "other", "staff", "held")
APPEAL_SOURCES = ("dialog", "relay")
_STATEMENTS = frozenset({"select", "insert", "update", "delete", "with", "begin", "commit", "rollback"})
_DB_ERRORS = frozenset(
    {
        "OperationalError",
        "IntegrityError",
        "ProgrammingError",
        "InterfaceError",
        "DataError",
        "InternalError",
        "NotSupportedError",
        "DatabaseError",
        "DBAPIError",
        "OSError",
        "ConnectionRefusedError",
        "ConnectionResetError",
        "TimeoutError",
        "gaierror",
    }
)
_SCRIPT_COMMANDS = frozenset({"EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO", "SCRIPT"})


class Metrics:
    """The counters and histograms of one runtime, in their own registry (see the module's notes)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._turns = Counter(
            "huiyin_turns",
            "Messages the bot handled as a turn, by platform and kind: dialog (a step of an appeal "
            "form), command (a slash command or button outside a form), other (questions, greetings, "
            "status, ratings…), staff (a staff command, invite or building leader's relay), held (a "
            "conversation staff hold: recorded for them).",
            ["platform", "kind"],
            registry=r,
        )
        self._chatter = Counter(
            "huiyin_group_chatter",
            "Group messages not addressed to the bot from residents without a form open in that group: "
            "ignored (in listen mode one may get a short offer of help).",
            ["platform"],
            registry=r,
        )
        self._latency = Histogram(
            "huiyin_http_request_duration_seconds",
            "Time to answer an HTTP request, by route (the path template, never the raw path).",
            ["route"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self._filed = Counter(
            "huiyin_appeals_filed",
            "Appeals filed, counted once committed, by the platform they came from and source: dialog (a "
            "resident's form) or relay (a building leader for a neighbour).",
            ["platform", "source"],
            registry=r,
        )
        self._failed = Counter(
            "huiyin_deliveries_failed",
            "Outbox deliveries that failed and will be retried (or given up), by backend: open311 or "
            "webhook for the city's case system, a platform name for a message to a resident.",
            ["backend"],
            registry=r,
        )
        self._nlu_fallback = Counter(
            "huiyin_nlu_fallback",
            "Messages understood by the embedded fallback instead of the primary NLU (Rasa), by reason: "
            "outage (the primary is unreachable) or refused (it could not parse this message).",
            ["reason"],
            registry=r,
        )
        self._redis_errors = Counter(
            "huiyin_redis_errors",
            "Redis commands that failed, by operation (script for the turn's Lua scripts, else the "
            "command name).",
            ["operation"],
            registry=r,
        )
        self._db_errors = Counter(
            "huiyin_database_errors",
            "Database statements or connection attempts that failed, by operation (the statement's first "
            "word, or connect) and error class (e.g. IntegrityError, OperationalError, "
            "ConnectionRefusedError).",
            ["operation", "error"],
            registry=r,
        )
        self._purged = Counter(
            "huiyin_personal_data_removed",
            "Personal data removed at the end of the retention period (HUIYIN_RETENTION_DAYS), by kind: "
            "appeals (phone, room, location, photos), photos_deleted (files), notifications, "
            "transcript_messages, notes, summaries, dialog_states, phones (people's saved numbers).",
            ["kind"],
            registry=r,
        )
        self.gauge_max_age_s = GAUGE_MAX_AGE_S
        self.gauge_wait_s = GAUGE_WAIT_S
        self.scrape_gauges = ScrapeTimeGauges()
        r.register(self.scrape_gauges)
        # Label children, looked up once per label set: .labels() costs more than the increment.
        self._turn_children: dict[tuple[Platform, str], Any] = {}
        self._chatter_children: dict[Platform, Any] = {}
        self._route_children: dict[str, Any] = {}

    # --- per message ---------------------------------------------------------------------------------
    def turn(
        self,
        message: IncomingMessage,
        verdict: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        """Count one handled turn. ``verdict`` is the handoff desk's (pass, handled, held); ``before``
        and ``after`` are the dialog states around the turn (a form running in either makes it a
        dialog turn)."""
        if verdict == "pass":
            if (before is not None and before.get("dialog")) or (after is not None and after.get("dialog")):
                kind = "dialog"
            elif message.text.lstrip().startswith("/"):
                kind = "command"
            else:
                kind = "other"
        else:
            kind = "staff" if verdict == "handled" else "held"
        key = (message.platform, kind)
        child = self._turn_children.get(key)
        if child is None:
            child = self._turn_children[key] = self._turns.labels(message.platform.value, kind)
        child.inc()

    def chatter(self, platform: Platform) -> None:
        """Count one group message not addressed to the bot."""
        child = self._chatter_children.get(platform)
        if child is None:
            child = self._chatter_children[platform] = self._chatter.labels(platform.value)
        child.inc()

    def observe_request(self, route: str, seconds: float) -> None:
        child = self._route_children.get(route)
        if child is None:
            child = self._route_children[route] = self._latency.labels(route)
        child.observe(seconds)

    # --- events ----------------------------------------------------------------------------------------
    def appeal_filed(
        self, session: AsyncSession, platform: str, source: str, *, created: bool = True
    ) -> None:
        """Count an appeal once ``session``'s transaction commits (never when it rolls back). ``created``
        False (the draft was filed already) counts nothing."""
        if not created:
            return
        child = self._filed.labels(_platform(platform), source)

        async def count() -> None:
            child.inc()

        after_commit(session, count)

    def delivery_failed(self, platform: str | None, backend: BackendSpec | None) -> None:
        """A failed delivery of an outbox row: a notification on ``platform``, else a backend row of
        ``backend``'s kind."""
        if platform is not None:
            label = _platform(platform)
        else:
            label = backend.kind if backend is not None else "none"
        self._failed.labels(label).inc()

    def personal_data_removed(self, counts: dict[str, int]) -> None:
        for kind, count in counts.items():
            if count:
                self._purged.labels(kind).inc(count)

    def nlu_fallback(self, reason: str) -> None:
        self._nlu_fallback.labels(reason).inc()

    def redis_error(self, command: object) -> None:
        name = str(command).upper()
        self._redis_errors.labels("script" if name in _SCRIPT_COMMANDS else name.lower()[:24]).inc()

    def _database_error(self, context: ExceptionContext) -> None:
        if context.connection is None:
            return  # a failed connection attempt: counted by _connect
        statement = context.statement
        word = statement.lstrip().split(None, 1)[0].lower() if statement and statement.strip() else ""
        error = context.sqlalchemy_exception or context.original_exception
        self._db_errors.labels(word if word in _STATEMENTS else "other", _error_name(error)).inc()

    def _connect(self, dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        """The pool's connection attempts, counting the failed ones: a refused or timed-out connection
        raises the driver's own error (OSError), which SQLAlchemy's handle_error never sees."""
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            self._db_errors.labels("connect", _error_name(exc)).inc()
            raise

    # --- wiring ---------------------------------------------------------------------------------------
    def watch_database(self, db: Database) -> None:
        """Count the errors of ``db``'s engine: failed statements (SQLAlchemy calls the listener only when
        one happens) and failed connection attempts (a listener on the pool's new connections only)."""
        event.listen(db.engine.sync_engine, "handle_error", self._database_error)
        event.listen(db.engine.sync_engine, "do_connect", self._connect)

    def watch_redis(self, client: Redis) -> None:
        """Count the failed commands of ``client``. A missing script (NoScriptError) is not counted:
        redis-py loads the script and runs it again, which is how scripts first reach a server."""
        original: Callable[..., Awaitable[Any]] = client.execute_command
        count = self.redis_error

        async def execute_command(*args: Any, **options: Any) -> Any:
            try:
                return await original(*args, **options)
            except NoScriptError:
                raise
            except RedisError:
                count(args[0] if args else "unknown")
                raise

        client.execute_command = execute_command  # type: ignore[method-assign]

    def watch_nlu(self, nlu: NLUBackend) -> None:
        """Count the messages a :class:`~bot.nlu.fallback.FallbackNLU` answers with its fallback."""
        from bot.nlu.fallback import FallbackNLU

        if isinstance(nlu, FallbackNLU):
            nlu.on_fallback = self.nlu_fallback

    # --- scraping -------------------------------------------------------------------------------------
    async def refresh(self, db: Database) -> None:
        """Bring the scrape-time gauges up to date, if they are older than :attr:`gauge_max_age_s`,
        waiting for a slow read at most :attr:`gauge_wait_s` (see
        :meth:`~bot.metrics.gauges.ScrapeTimeGauges.refresh`)."""
        await self.scrape_gauges.refresh(db, max_age_s=self.gauge_max_age_s, wait_s=self.gauge_wait_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _error_name(error: BaseException | None) -> str:
    name = type(error).__name__
    return name if name in _DB_ERRORS else "other"


_PLATFORMS = frozenset(p.value for p in Platform)


def _platform(value: str) -> str:
    """A platform label; anything else (which no code path writes) is one label, not a new series."""
    return value if value in _PLATFORMS else "other"
