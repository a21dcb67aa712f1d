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
  :data:`~bot.metrics.gauges.GAUGE_MAX_AGE_S` seconds, by an async query that a scrape waits for at most
  :data:`~bot.metrics.gauges.GAUGE_WAIT_S` (then it serves the previous values; ``huiyin_scrape_gauges_age_seconds`` says
  how old they are).

No label ever holds a user, chat, appeal or message id, a phone number or a text: labels are platforms,
route templates, a fixed set of kinds, backend kinds and statement or command names.

The per-runtime counters are in :mod:`bot.metrics.counters`, the scrape-time gauges in
:mod:`bot.metrics.gauges`, the request timer and the scrape endpoint in :mod:`bot.metrics.http`.
"""

from bot.metrics.counters import APPEAL_SOURCES, LATENCY_BUCKETS_S, TURN_KINDS, Metrics
from bot.metrics.http import RequestTimer, route_template, router

__all__ = [
    "APPEAL_SOURCES",
    "LATENCY_BUCKETS_S",
    "TURN_KINDS",
    "Metrics",
    "RequestTimer",
    "route_template",
    "router",
]
