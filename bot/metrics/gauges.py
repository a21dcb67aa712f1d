"""The scrape-time gauges: outbox depth and age, handoffs waiting, read from the database when scraped.

A read happens at most every :data:`GAUGE_MAX_AGE_S` seconds, by an async query that a scrape waits for
at most :data:`GAUGE_WAIT_S` (then it serves the previous values; ``huiyin_scrape_gauges_age_seconds``
says how old they are).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.db.repository.outbox import QueueGaugeReads
from bot.db.session import Database

log = structlog.get_logger("bot.metrics")  # the logger the metrics have always logged as

GAUGE_MAX_AGE_S = 5.0
"""Scrape-time gauges are read from the database at most this often (scrapes in between reuse them)."""
GAUGE_WAIT_S = 2.0
"""How long a scrape waits for a slow read of the gauges before it serves the previous values."""


@dataclass(frozen=True, slots=True)
class _Gauges:
    """What the last read of the database found (``read_at``: monotonic seconds)."""

    read_at: float
    outbox: dict[str, tuple[int, float]]  # lane -> (undelivered rows, age of the oldest in seconds)
    handoffs_waiting: int
    oldest_waiting_s: float


class ScrapeTimeGauges(Collector):
    """Yields the gauges of the last database read; :meth:`refresh` (called by the scrape) reads them."""

    def __init__(self) -> None:
        self.gauges: _Gauges | None = None
        self._refreshing: asyncio.Task[None] | None = None

    def collect(self) -> Iterator[Metric]:
        g = self.gauges
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

    async def refresh(self, db: Database, *, max_age_s: float, wait_s: float) -> None:
        """Bring the gauges up to date, if they are older than ``max_age_s``.

        One read at a time (concurrent scrapes share it); a scrape waits for it at most ``wait_s`` and
        otherwise goes on with the values it has, while the read completes in the background. The read
        is an async query: a slow database slows this scrape, never the event loop."""
        if self.gauges is not None and time.monotonic() - self.gauges.read_at < max_age_s:
            return
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._read(db), name="metrics-gauges")
            self._refreshing.add_done_callback(_log_failed_read)
        try:
            await asyncio.wait_for(asyncio.shield(self._refreshing), wait_s)
        except TimeoutError:
            log.warning("metrics: the database read of the gauges is slow; serving the previous values")
        except Exception:  # logged by _log_failed_read; counted by the database error listener
            pass

    async def _read(self, db: Database) -> None:
        async with db.engine.connect() as conn:
            reads = QueueGaugeReads(conn)
            lanes = await reads.undelivered_by_lane()
            queued, oldest_request = await reads.handoffs_waiting()
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


def _age_s(now: datetime, then: datetime | None) -> float:
    if then is None:
        return 0.0
    if then.tzinfo is None:  # SQLite hands back naive datetimes; the columns hold UTC
        then = then.replace(tzinfo=UTC)
    return max(0.0, (now - then).total_seconds())


def _log_failed_read(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("metrics: reading the gauges failed", error=repr(task.exception()))
