"""Operational metrics in Prometheus text format: ``GET /metrics`` (see docs/operations.md).

One :class:`Metrics` per :class:`~bot.runtime.Runtime`, with its own ``CollectorRegistry`` rather than
prometheus-client's process-wide default: tests start many runtimes in one process, and each app's
scrape must show that app's numbers (a second runtime registering the same names in the default
registry would also be refused as a duplicate).

What is counted where:

- turns and group chatter: :class:`~bot.turn.TurnPipeline` (one increment per message, the label
  child looked up once per label set and cached here);
- appeals filed: where a dialog or a building leader's relay files one, counted once the turn's
  transaction has committed (:func:`bot.db.session.after_commit`);
- request latency: :class:`RequestTimer`, an ASGI middleware, labelled with the route's path template;
- failed deliveries: the forwarder; NLU fallbacks: :class:`~bot.nlu.fallback.FallbackNLU`'s hook;
- database errors: SQLAlchemy's ``handle_error`` engine event (nothing runs on the happy path); Redis
  errors: a wrapper around the client's ``execute_command`` (one extra coroutine frame per command);
- outbox depth and age, handoffs waiting: read from the database when scraped, at most every
  :data:`GAUGE_MAX_AGE_S` seconds, by an async query that a scrape waits for at most
  :data:`GAUGE_WAIT_S` (then it serves the previous values; ``huiyin_scrape_gauges_age_seconds`` says
  how old they are).

No label ever holds a user, chat, appeal or message id, a phone number or a text: labels are platforms,
route templates, a fixed set of kinds, backend kinds and statement or command names.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import NoScriptError, RedisError
from sqlalchemy import and_, event, func, select
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.db.models import Handoff, HandoffStatus, OutboxEntry
from bot.db.session import Database, after_commit
from bot.message import IncomingMessage, Platform

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.nlu.base import NLUBackend
    from integrations.backend.registry import BackendSpec

log = structlog.get_logger(__name__)

# No <name>_created series (the time each counter was created): Prometheus does not need them, and they
# doubled the scrape. This is prometheus-client's process-wide switch; nothing else here uses the library.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Request latency buckets: fine around the 20 ms p99 target of a turn, coarse above it."""
GAUGE_MAX_AGE_S = 5.0
"""Scrape-time gauges are read from the database at most this often (scrapes in between reuse them)."""
GAUGE_WAIT_S = 2.0
"""How long a scrape waits for a slow read of the gauges before it serves the previous values."""

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
UNMATCHED_ROUTE = "(unmatched)"


@dataclass(frozen=True, slots=True)
class _Gauges:
    """What the last read of the database found (``read_at``: monotonic seconds)."""

    read_at: float
    outbox: dict[str, tuple[int, float]]  # lane -> (undelivered rows, age of the oldest in seconds)
    handoffs_waiting: int
    oldest_waiting_s: float


class _ScrapeTimeGauges(Collector):
    """Yields the gauges of the last database read; the scrape handler refreshes them first."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        g = self._metrics.gauges
        depth = GaugeMetricFamily(
            "huiyin_outbox_undelivered",
            "Outbox rows not delivered yet (and not given up), by lane: backend (the city's case "
            "system) or notify (messages to residents).",
            labels=["lane"],
        )
        age = GaugeMetricFamily(
            "huiyin_outbox_oldest_undelivered_age_seconds",
            "Age of the oldest undelivered outbox row, by lane (0 when there is none).",
            labels=["lane"],
        )
        waiting = GaugeMetricFamily(
            "huiyin_handoffs_waiting", "Conversations queued for staff that nobody has taken over yet."
        )
        waiting_age = GaugeMetricFamily(
            "huiyin_handoffs_oldest_waiting_age_seconds",
            "How long the longest-waiting conversation in the staff queue has waited (0 when none).",
        )
        stale = GaugeMetricFamily(
            "huiyin_scrape_gauges_age_seconds",
            "How old the outbox and handoff gauges are: they are read from the database at most every "
            f"{GAUGE_MAX_AGE_S:g} s, and a scrape serves the previous values when a read is slow.",
        )
        if g is not None:
            for lane in ("backend", "notify"):
                rows, oldest = g.outbox.get(lane, (0, 0.0))
                depth.add_metric([lane], rows)
                age.add_metric([lane], oldest)
            waiting.add_metric([], g.handoffs_waiting)
            waiting_age.add_metric([], g.oldest_waiting_s)
            stale.add_metric([], time.monotonic() - g.read_at)
        yield from (depth, age, waiting, waiting_age, stale)


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
        self.gauges: _Gauges | None = None
        self.gauge_max_age_s = GAUGE_MAX_AGE_S
        self.gauge_wait_s = GAUGE_WAIT_S
        self._refreshing: asyncio.Task[None] | None = None
        r.register(_ScrapeTimeGauges(self))
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
        """Bring the scrape-time gauges up to date, if they are older than :data:`GAUGE_MAX_AGE_S`.

        One read at a time (concurrent scrapes share it); a scrape waits for it at most
        :data:`GAUGE_WAIT_S` and otherwise goes on with the values it has, while the read completes in
        the background. The read is an async query: a slow database slows this scrape, never the event
        loop."""
        if self.gauges is not None and time.monotonic() - self.gauges.read_at < self.gauge_max_age_s:
            return
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._read_gauges(db), name="metrics-gauges")
            self._refreshing.add_done_callback(_log_failed_read)
        try:
            await asyncio.wait_for(asyncio.shield(self._refreshing), self.gauge_wait_s)
        except TimeoutError:
            log.warning("metrics: the database read of the gauges is slow; serving the previous values")
        except Exception:  # logged by _log_failed_read; counted by the database error listener
            pass

    async def _read_gauges(self, db: Database) -> None:
        outbox = OutboxEntry.__table__
        handoff = Handoff.__table__
        backend_lane = outbox.c.platform.is_(None)
        pending = select(backend_lane, func.count(), func.min(outbox.c.created_at)).where(
            and_(outbox.c.delivered_at.is_(None), outbox.c.failed_at.is_(None))
        )
        waiting = select(func.count(), func.min(handoff.c.requested_at)).where(
            handoff.c.status == HandoffStatus.WAITING.value
        )
        async with db.engine.connect() as conn:
            lanes = (await conn.execute(pending.group_by(backend_lane))).all()
            queued, oldest_request = (await conn.execute(waiting)).one()
        now = datetime.now(UTC)
        self.gauges = _Gauges(
            read_at=time.monotonic(),
            outbox={
                "backend" if is_backend else "notify": (int(rows), _age_s(now, oldest))
                for is_backend, rows, oldest in lanes
            },
            handoffs_waiting=int(queued or 0),
            oldest_waiting_s=_age_s(now, oldest_request),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _error_name(error: BaseException | None) -> str:
    name = type(error).__name__
    return name if name in _DB_ERRORS else "other"


_PLATFORMS = frozenset(p.value for p in Platform)


def _platform(value: str) -> str:
    """A platform label; anything else (which no code path writes) is one label, not a new series."""
    return value if value in _PLATFORMS else "other"


def _age_s(now: datetime, then: datetime | None) -> float:
    if then is None:
        return 0.0
    if then.tzinfo is None:  # SQLite hands back naive datetimes; the columns hold UTC
        then = then.replace(tzinfo=UTC)
    return max(0.0, (now - then).total_seconds())


def _log_failed_read(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("metrics: reading the gauges failed", error=repr(task.exception()))


# --- HTTP ----------------------------------------------------------------------------------------------
class RequestTimer:
    """ASGI middleware: each HTTP request's time into ``huiyin_http_request_duration_seconds``.

    The label is the matched route's path template (``/webhooks/rest/webhook``, ``/staff/appeals/{id}``),
    read from the scope, which routing has filled in by then, with the prefix of the mount it is under;
    requests that match no route share one label. The time runs until the last part of the response
    body is sent; a request whose handler crashes sends nothing here and is not timed (the error
    middleware outside answers 500).

    It wraps ``send`` instead of awaiting the app: a middleware coroutine around the app would be one
    more frame on the stack, resumed at every await of every request (~12 Python calls a turn)."""

    def __init__(self, app: ASGIApp, metrics_of: Callable[[], Metrics | None]) -> None:
        self.app = app
        self.metrics_of = metrics_of

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        metrics = self.metrics_of() if scope["type"] == "http" else None
        if metrics is None:
            return self.app(scope, receive, send)
        root_path = scope.get("root_path", "")  # before the call: a mount extends it
        start = time.perf_counter()

        async def timed_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                metrics.observe_request(route_template(scope, root_path), time.perf_counter() - start)

        return self.app(scope, receive, timed_send)


def route_template(scope: Scope, root_path: str = "") -> str:
    """The path template of the route that served ``scope`` (after the app ran), never the raw path."""
    mount: str = scope.get("root_path", "")[len(root_path) :]
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return mount + path
    if mount:  # a mounted app without routes of its own (static files)
        return mount + "/{path}"
    return UNMATCHED_ROUTE


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus scrape: counters, histograms and the scrape-time gauges, no personal data.

    404 when ``HUIYIN_METRICS=false``; with ``HUIYIN_METRICS_TOKEN`` set, 401 unless the request carries
    ``Authorization: Bearer <token>``."""
    runtime = request.app.state.runtime
    settings = runtime.settings
    if not settings.metrics:
        return Response(status_code=404)
    if settings.metrics_token is not None:
        expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    metrics: Metrics = runtime.metrics
    await metrics.refresh(runtime.db)
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


__all__ = [
    "APPEAL_SOURCES",
    "LATENCY_BUCKETS_S",
    "TURN_KINDS",
    "Metrics",
    "RequestTimer",
    "route_template",
    "router",
]
