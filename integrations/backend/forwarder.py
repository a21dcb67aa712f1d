"""The forwarder: drains the outbox to the city's case backend and to residents, polls backends that must
be asked for news, and keeps the case desk's deadlines: reminders, escalation of appeals whose first
response or resolution is overdue, and the staff's daily digest (:mod:`bot.cases.deadlines`); and
removes personal data kept past the retention period (:mod:`bot.privacy.retention`).

Runs inside ``huiyin serve`` (unless ``HUIYIN_FORWARDER=false``) and as ``huiyin worker``; any number of
them may share one database.

**Exactly once at the backend, from at-least-once delivery.** An outbox row is written in the same
transaction as the appeal (or update) it announces. A worker *claims* due rows with one
``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`` that pushes their next attempt a
lease into the future, commits, calls the backend, and then records the outcome. Two workers never claim
the same row (PostgreSQL skips rows another worker holds; SQLite runs one writer at a time). A worker that
dies mid-call leaves its rows claimed until the lease runs out; then another worker sends them again —
with the same idempotency key, so the backend answers with the case it already opened.

**Never dropped.** A failed call is retried with exponential backoff and jitter, forever; after
``HUIYIN_FORWARDER_MAX_ATTEMPTS`` failures (or at once when the backend refuses the data) the appeal is
flagged to staff (``appeal.flagged_at``, an ``appeal_event`` of kind ``flag``). Notifications to
residents are the exception: after that many failures they are given up (``failed_at``) and flagged.

**In order.** Per appeal, the backend sees the case before any update about it; a row waits while an
older row of the same appeal and lane (backend, or one platform's notifications) is undelivered.
"""

from __future__ import annotations

import asyncio
import math
import random
import signal
import socket
import time
import uuid
from datetime import datetime, timedelta

import structlog

from bot.cases.deadlines import DeadlineReport, Deadlines
from bot.cases.desk import CaseDesk
from bot.db.models import utcnow
from bot.db.repository.outbox import OutboxRepository
from bot.db.session import Database
from bot.dialog.spec import Responses, load_bundle
from bot.logs import crash_fields
from bot.message import Platform, Reply
from bot.metrics import Metrics
from bot.outbound import Outbound
from bot.privacy.retention import Retention, RetentionReport
from bot.settings import Settings
from integrations.backend.base import BackendError, BackendRejected, CaseUpdate
from integrations.backend.jobs import DeliveryJob, DeliveryOutcome, RoundStats, backoff_s, case_record
from integrations.backend.outcomes import DELIVERY_FLAGS, NO_BACKEND_RETRY_S, OutcomeRecorder
from integrations.backend.polling import TOKEN_RETRY_S, StatusPoller
from integrations.backend.registry import Backends
from kb import KnowledgeBase, load_knowledge_base

__all__ = [
    "DELIVERY_FLAGS",
    "NO_BACKEND_RETRY_S",
    "RETENTION_EVERY_S",
    "SLA_CHECK_EVERY_S",
    "TOKEN_RETRY_S",
    "Forwarder",
    "RoundStats",
    "backoff_s",
    "case_record",
    "run_worker",
]

log = structlog.get_logger(__name__)

SLA_CHECK_EVERY_S = 30.0
RETENTION_EVERY_S = 300.0
"""How often a worker removes personal data past the retention period (cheap when there is none)."""
# The appeal event recorded when a backend takes no updates of a kind ("市平台不接收评价回传…").
KEPT_NOTES = {
    "rating": "rating.backend_not_taken",
    "comment": "rating.backend_comment_not_taken",
    "supporter": "duplicate.backend_not_taken",
}


class Forwarder:
    """One forwarding worker. ``outbound`` carries the platform senders this process has: only those
    platforms' notifications are delivered here (others are left for a process that has them)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        outbound: Outbound | None = None,
        backends: Backends | None = None,
        words: Responses | None = None,
        worker_id: str | None = None,
        metrics: Metrics | None = None,
        kb: KnowledgeBase | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics or Metrics()  # failed deliveries (GET /metrics of the serving process)
        self.settings = settings
        self.outbound = outbound or Outbound()
        self.backends = backends or Backends(settings)
        self.words = words or load_bundle().responses
        self.worker_id = worker_id or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._kb = kb
        self._deadlines: Deadlines | None = None
        self._postgres = not db.is_sqlite
        self._last_sla = 0.0
        self._last_retention = 0.0
        self._retention: Retention | None = None
        self._semaphore = asyncio.Semaphore(settings.forwarder_concurrency)
        token_retry_s = min(TOKEN_RETRY_S, settings.status_poll_s)
        self._recorder = OutcomeRecorder(db, settings, self.backends, self.metrics, token_retry_s)
        self._poller = StatusPoller(
            db, settings, self.backends, self.words, token_retry_s=token_retry_s, postgres=self._postgres
        )
        slowest_batch_s = settings.backend_timeout_s * math.ceil(
            settings.forwarder_batch / settings.forwarder_concurrency
        )
        if settings.forwarder_lease_s < slowest_batch_s:
            # Not wrong (the backend dedups by key), but a slow backend would get calls twice.
            log.warning(
                "forwarder lease is shorter than a batch can take against a slow backend",
                lease_s=settings.forwarder_lease_s,
                slowest_batch_s=slowest_batch_s,
            )

    # --- the loop --------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Work until cancelled or ``stop`` is set; an idle worker looks again every few seconds."""
        log.info(
            "forwarder started",
            worker=self.worker_id,
            backends=[f"{s.name}={s.kind}" for s in self.backends.specs()] or ["none"],
            notify_platforms=[p.value for p in self.outbound.platforms()],
        )
        await self.check_services()
        stop = stop or asyncio.Event()
        failures = 0
        try:
            while not stop.is_set():
                try:
                    stats = await self.run_once()
                    failures = 0
                except Exception as exc:  # the database is down, say: keep going, slower
                    failures += 1
                    log.error("forwarder round failed", error=repr(exc), worker=self.worker_id)
                    stats = RoundStats()
                    await _wait(stop, min(30.0, self.settings.forwarder_idle_s * 2**failures))
                    continue
                if stats.work == 0:
                    await _wait(stop, self.settings.forwarder_idle_s * random.uniform(0.8, 1.2))
        finally:
            await self.backends.close()
            log.info("forwarder stopped", worker=self.worker_id)

    async def run_once(self, now: datetime | None = None) -> RoundStats:
        """One round: deliver what is due, poll what is due, and (every half minute) check the SLA."""
        stats = RoundStats()
        delivered, failed = await self.deliver_due()
        stats.delivered, stats.failed = delivered, failed
        stats.polled = await self.poll_due()
        if time.monotonic() - self._last_sla >= SLA_CHECK_EVERY_S:
            stats.overdue = len(await self.check_sla(now))
        if time.monotonic() - self._last_retention >= RETENTION_EVERY_S:
            await self.purge_expired(now)
        return stats

    async def drain(self, timeout_s: float = 30.0) -> int:
        """Run rounds until nothing is due (or the timeout passes); returns how many rows were sent.
        For ``huiyin worker --once``, tests and the benchmark."""
        deadline = time.monotonic() + timeout_s
        total = 0
        while time.monotonic() < deadline:
            stats = await self.run_once()
            total += stats.delivered
            if stats.delivered == 0 and stats.failed == 0 and stats.polled == 0:
                return total
        return total

    # --- the outbox --------------------------------------------------------------------------------------
    async def _claim(self) -> list[int]:
        """Lease the due rows of this worker's lanes: backend rows (if any backend is configured) and
        the notifications of the platforms it has senders for."""
        now = utcnow()
        async with self.db.unit_of_work() as uow:
            ids = await OutboxRepository(uow.session).claim_due_entries(
                backend_lane=self.backends.any,
                platforms=[p.value for p in self.outbound.platforms()],
                now=now,
                lease_until=now + timedelta(seconds=self.settings.forwarder_lease_s),
                limit=self.settings.forwarder_batch,
                worker_id=self.worker_id,
                skip_locked=self._postgres,
            )
            await uow.commit()
        return ids

    async def _load(self, ids: list[int]) -> list[DeliveryJob]:
        async with self.db.unit_of_work() as uow:
            rows = await OutboxRepository(uow.session).entries_with_appeals(ids)
            return [
                DeliveryJob(
                    entry_id=entry.id,
                    action=entry.action,
                    platform=entry.platform,
                    key=entry.idempotency_key,
                    payload=dict(entry.payload or {}),
                    attempts=entry.attempts,
                    appeal=appeal,
                    community_code=code,
                    community_name=name,
                    reporter_name=reporter or "",
                    instance_id=self.db.instance_id or "",
                )
                for entry, appeal, code, name, reporter in rows
            ]

    async def deliver_due(self) -> tuple[int, int]:
        """Claim due rows, deliver them concurrently, record the outcomes. Returns (delivered, failed)."""
        ids = await self._claim()
        if not ids:
            return 0, 0
        jobs = await self._load(ids)
        outcomes = await asyncio.gather(*(self._deliver(job) for job in jobs))
        await self._recorder.record(list(outcomes))
        delivered = sum(1 for o in outcomes if o.ok)
        return delivered, len(outcomes) - delivered

    async def _deliver(self, job: DeliveryJob) -> DeliveryOutcome:
        async with self._semaphore:
            try:
                if job.platform is not None:
                    return await self._notify(job)
                return await self._to_backend(job)
            except BackendRejected as exc:
                return DeliveryOutcome(job, ok=False, error=str(exc), permanent=True)
            except BackendError as exc:
                return DeliveryOutcome(job, ok=False, error=str(exc))
            except Exception as exc:  # a bug or an unexpected answer: retried, logged with where it was
                # Not the exception's message: it may quote the payload (a reply's text, a phone).
                crash = crash_fields(exc)
                log.error("delivery crashed", key=job.key, **crash)
                return DeliveryOutcome(job, ok=False, error=f"{crash['error']} at {crash['where'][:200]}")

    async def _notify(self, job: DeliveryJob) -> DeliveryOutcome:
        assert job.platform is not None
        reply = Reply.from_dict(job.payload["reply"])
        failed = await self.outbound.deliver(Platform(job.platform), [reply])
        if failed:
            return DeliveryOutcome(job, ok=False, error=f"{job.platform} did not take the message")
        return DeliveryOutcome(job, ok=True)

    async def _to_backend(self, job: DeliveryJob) -> DeliveryOutcome:
        appeal = job.appeal
        backend = (
            self.backends.by_name(appeal.backend) if appeal.backend else None
        ) or self.backends.for_community(job.community_code)
        if backend is None:
            return DeliveryOutcome(
                job,
                ok=False,
                parked=True,
                error=f"no case backend is configured for community {job.community_code!r}",
            )
        case = case_record(job)
        if job.action == "create":
            filed = await backend.file(case, job.key)
            return DeliveryOutcome(job, ok=True, filed=filed, backend=backend)
        if appeal.backend_id is None:
            # The case exists but its id is still an Open311 token: try again shortly.
            return DeliveryOutcome(job, ok=False, error="waiting for the backend's case id")
        p = job.payload
        change = CaseUpdate(
            kind=str(p.get("kind") or job.action),
            text=str(p.get("text") or ""),
            supporters=p.get("supporters"),
            rating=p.get("rating"),
            reopen=bool(p.get("reopen")),
            comment=p.get("comment"),
            case_open=bool(p.get("case_open", True)),
        )
        if await backend.update(appeal.backend_id, case, change, job.key):
            return DeliveryOutcome(job, ok=True, backend=backend)
        # Delivered as far as it can be: the backend has no way to take it, so it stays in huiyin's
        # history, and the appeal's events say so.
        return DeliveryOutcome(
            job,
            ok=True,
            backend=backend,
            note=f"not sent: {backend.name} takes no updates",
            kept_note=self.words.get(KEPT_NOTES[change.kind]) if change.kind in KEPT_NOTES else None,
        )

    async def check_services(self) -> list[str]:
        """Report (in the log) Open311 service mappings that name codes their server does not offer.
        Never raises: a check that cannot run must not keep the forwarder from starting."""
        try:
            return await self.backends.check_services()
        except Exception as exc:
            log.warning("open311 service mappings not checked", error=repr(exc))
            return []

    # --- polling (Open311) ----------------------------------------------------------------------------
    async def poll_due(self) -> int:
        """Ask polling backends about the appeals due for it; apply what changed. Returns how many."""
        return await self._poller.poll_due()

    # --- SLA -----------------------------------------------------------------------------------------
    @property
    def deadlines(self) -> Deadlines:
        """The case desk's deadlines, with the communities' ``case_desk`` settings from the KB."""
        if self._deadlines is None:
            kb = self._kb or load_knowledge_base()
            self._deadlines = Deadlines(CaseDesk(self.settings, kb, self.words))
        return self._deadlines

    async def check_sla(self, now: datetime | None = None) -> list[str]:
        """Keep the deadlines (see :mod:`bot.cases.deadlines`); returns the public ids of the appeals whose
        first response became overdue now (flagged to staff)."""
        self._last_sla = time.monotonic()
        report = await self.check_deadlines(now)
        return report.response_overdue

    async def check_deadlines(self, now: datetime | None = None) -> DeadlineReport:
        """Reminders, escalations and the daily digest due at ``now`` (default: the clock)."""
        report = await self.deadlines.run(self.db, now or utcnow())
        for public_id in report.response_overdue:
            log.warning("first response overdue: flagged to staff", public_id=public_id)
        for public_id in report.resolution_overdue:
            log.warning("resolution overdue: flagged to staff", public_id=public_id)
        if report.response_reminded or report.resolution_reminded:
            log.info(
                "deadline reminders queued",
                response=report.response_reminded,
                resolution=report.resolution_reminded,
            )
        if report.digests:
            log.info("overdue digests queued", communities=report.digests)
        return report

    # --- retention ---------------------------------------------------------------------------------------
    @property
    def retention(self) -> Retention:
        if self._retention is None:
            self._retention = Retention(
                self.db, retention_days=self.settings.retention_days, data_dir=self.settings.data_dir
            )
        return self._retention

    async def purge_expired(self, now: datetime | None = None) -> RetentionReport:
        """Remove the personal data kept past the retention period at ``now`` (see
        :mod:`bot.privacy.retention`); counts go to the log and the metrics, never what was removed."""
        self._last_retention = time.monotonic()
        report = await self.retention.run(now or utcnow())
        if report.total or report.photos_deleted:
            self.metrics.personal_data_removed(report.counts())
            log.info("personal data past the retention period removed", **report.counts())
        return report


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


# --- `huiyin worker` -----------------------------------------------------------------------------------
async def run_worker(settings: Settings, *, once: bool = False) -> int:
    """The forwarder as its own process. With a shared Redis (``REDIS_URL``) it also delivers the REST
    and web chat notifications into their inboxes; other platforms' notifications are left to the
    processes that have their senders. Stops cleanly on SIGTERM/SIGINT."""
    from bot.state import StateStore
    from integrations.rest.inbox import register_inbox

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    store: StateStore | None = None
    try:
        if settings.auto_migrate:
            await db.migrate()
        await db.identify(settings.instance_id)
        outbound = Outbound()
        if settings.redis_url:
            store = StateStore.from_url(settings.redis_url)
            register_inbox(outbound, store.redis)
        forwarder = Forwarder(db, settings, outbound=outbound)
        if once:
            await forwarder.check_services()
            sent = await forwarder.drain()
            await forwarder.backends.close()
            return sent
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await forwarder.run(stop)
        return 0
    finally:
        if store is not None:
            await store.close()
        await db.dispose()
