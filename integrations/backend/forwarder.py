"""The forwarder: drains the outbox to the city's case backend and to residents, polls backends that must
be asked for news, and flags appeals whose first response is overdue.

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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from bot.appeals.status import (
    FLAG_BACKEND_REJECTED,
    FLAG_DELIVERY_FAILED,
    FLAG_NO_BACKEND,
    FLAG_NOTIFY_FAILED,
    TERMINAL,
    change_status,
    flag,
    flag_overdue,
    lock_appeal,
    may_change,
    record_note,
)
from bot.db.models import Appeal, AppealStatus, utcnow
from bot.db.repository.outbox import OutboxRepository
from bot.db.session import Database
from bot.dialog.slots import describe_place
from bot.dialog.spec import Responses, load_bundle
from bot.message import Platform, Reply
from bot.metrics import Metrics
from bot.outbound import Outbound
from bot.settings import Settings
from integrations.backend.base import (
    BackendError,
    BackendRejected,
    CaseBackend,
    CaseRecord,
    CaseUpdate,
    Filed,
    RemoteStatus,
)
from integrations.backend.registry import Backends

log = structlog.get_logger(__name__)

SLA_CHECK_EVERY_S = 30.0
NO_BACKEND_RETRY_S = 3600.0  # a community without a backend: look again in an hour (settings may change)
TOKEN_RETRY_S = 2.0  # Open311 tokens usually turn into ids within seconds
DELIVERY_FLAGS = frozenset({FLAG_DELIVERY_FAILED, FLAG_BACKEND_REJECTED, FLAG_NO_BACKEND})


@dataclass(slots=True)
class _Job:
    entry_id: int
    action: str
    platform: str | None
    key: str
    payload: dict[str, Any]
    attempts: int
    appeal: Appeal
    community_code: str
    community_name: str
    reporter_name: str


@dataclass(slots=True)
class _Outcome:
    job: _Job
    ok: bool
    error: str = ""
    permanent: bool = False
    parked: bool = False  # no backend for the community
    filed: Filed | None = None
    backend: CaseBackend | None = None
    note: str | None = None  # kept in last_error of a delivered row (e.g. "not sent: no update API")


@dataclass(slots=True)
class RoundStats:
    delivered: int = 0
    failed: int = 0
    polled: int = 0
    overdue: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def work(self) -> int:
        return self.delivered + self.failed + self.polled + self.overdue


def backoff_s(attempts: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Delay before the next attempt after ``attempts`` failures: exponential, capped, with jitter
    (uniform in [½, 1] of the exponential value, so that workers restarted together spread out)."""
    exp = min(max_s, base_s * (2 ** max(0, attempts - 1)))
    jitter = rng.uniform(0.5, 1.0) if rng is not None else random.uniform(0.5, 1.0)
    return float(exp * jitter)


def case_record(job: _Job) -> CaseRecord:
    a = job.appeal
    place = describe_place(
        {"building": a.building, "unit": a.unit, "room": a.room, "place": a.place}, private=True
    )
    location = a.location or {}
    media = tuple(str(p["url"]) for p in a.photos or [] if isinstance(p, dict) and p.get("url"))
    return CaseRecord(
        public_id=a.public_id,
        community_code=job.community_code,
        community_name=job.community_name,
        description=a.description,
        address=f"{job.community_name} {place}".strip(),
        category=a.category,
        kb_matter_id=a.kb_matter_id,
        responsible_party=a.responsible_party,
        responsible_sub=a.responsible_sub,
        urgent=a.urgent,
        supporters=a.supporters,
        reporter_name=job.reporter_name,
        contact_phone=a.contact_phone,
        latitude=_float(location.get("latitude")),
        longitude=_float(location.get("longitude")),
        media_urls=media,
        created_at=a.created_at,
        origin_platform=a.origin_platform,
    )


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


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
    ) -> None:
        self.db = db
        self.metrics = metrics or Metrics()  # failed deliveries (GET /metrics of the serving process)
        self.settings = settings
        self.outbound = outbound or Outbound()
        self.backends = backends or Backends(settings)
        self.words = words or load_bundle().responses
        self.worker_id = worker_id or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._postgres = not db.is_sqlite
        self._last_sla = 0.0
        self._semaphore = asyncio.Semaphore(settings.forwarder_concurrency)
        self._token_retry_s = min(TOKEN_RETRY_S, settings.status_poll_s)
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

    async def _load(self, ids: list[int]) -> list[_Job]:
        async with self.db.unit_of_work() as uow:
            rows = await OutboxRepository(uow.session).entries_with_appeals(ids)
            return [
                _Job(
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
        await self._record(list(outcomes))
        delivered = sum(1 for o in outcomes if o.ok)
        return delivered, len(outcomes) - delivered

    async def _deliver(self, job: _Job) -> _Outcome:
        async with self._semaphore:
            try:
                if job.platform is not None:
                    return await self._notify(job)
                return await self._to_backend(job)
            except BackendRejected as exc:
                return _Outcome(job, ok=False, error=str(exc), permanent=True)
            except BackendError as exc:
                return _Outcome(job, ok=False, error=str(exc))
            except Exception as exc:  # a bug or an unexpected answer: retried, logged with its trace
                log.exception("delivery crashed", key=job.key)
                return _Outcome(job, ok=False, error=f"{exc.__class__.__name__}: {exc}")

    async def _notify(self, job: _Job) -> _Outcome:
        assert job.platform is not None
        reply = Reply.from_dict(job.payload["reply"])
        failed = await self.outbound.deliver(Platform(job.platform), [reply])
        if failed:
            return _Outcome(job, ok=False, error=f"{job.platform} did not take the message")
        return _Outcome(job, ok=True)

    async def _to_backend(self, job: _Job) -> _Outcome:
        appeal = job.appeal
        backend = (
            self.backends.by_name(appeal.backend) if appeal.backend else None
        ) or self.backends.for_community(job.community_code)
        if backend is None:
            return _Outcome(
                job,
                ok=False,
                parked=True,
                error=f"no case backend is configured for community {job.community_code!r}",
            )
        case = case_record(job)
        if job.action == "create":
            filed = await backend.file(case, job.key)
            return _Outcome(job, ok=True, filed=filed, backend=backend)
        if appeal.backend_id is None:
            # The case exists but its id is still an Open311 token: try again shortly.
            return _Outcome(job, ok=False, error="waiting for the backend's case id")
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
        sent = await backend.update(appeal.backend_id, case, change, job.key)
        return _Outcome(
            job, ok=True, backend=backend, note=None if sent else f"not sent: {backend.name} takes no updates"
        )

    async def _record(self, outcomes: list[_Outcome]) -> None:
        """Write the outcomes of one batch in one transaction, with a handful of statements for the
        whole batch on the happy path (the benchmark's throughput depends on it)."""
        now = utcnow()
        async with self.db.unit_of_work() as uow:
            session = uow.session
            delivered: dict[str | None, list[int]] = {}
            for o in outcomes:
                if o.ok:
                    delivered.setdefault(o.note, []).append(o.job.entry_id)
            outbox = OutboxRepository(session)
            for note, ids in delivered.items():
                await outbox.mark_delivered(ids, now, note)
            filed = [o for o in outcomes if o.ok and o.job.action == "create" and o.filed and o.backend]
            if filed:
                await self._filed(session, filed, now)
            for o in outcomes:
                if not o.ok:
                    await self._failed(session, o, now)
            await uow.commit()

    async def _failed(self, session: Any, o: _Outcome, now: datetime) -> None:
        job, s = o.job, self.settings
        if o.parked:
            delay = NO_BACKEND_RETRY_S
        else:
            delay = backoff_s(job.attempts, s.forwarder_backoff_s, s.forwarder_backoff_max_s)
        values: dict[str, Any] = {
            "next_attempt_at": now + timedelta(seconds=delay),
            "last_error": o.error[:1000],
            "claimed_by": None,
        }
        give_up = job.platform is not None and job.attempts >= s.forwarder_max_attempts
        if give_up:
            values["failed_at"] = now
        await OutboxRepository(session).settle_failed_entry(job.entry_id, values)
        reason, note = self._flag_for(o)
        if reason is not None:
            appeal = await session.get(Appeal, job.appeal.id)
            if appeal is not None and flag(session, appeal, reason, note):
                log.warning(
                    "appeal flagged to staff",
                    public_id=appeal.public_id,
                    reason=reason,
                    attempts=job.attempts,
                    error=o.error,
                )
        if not o.parked:
            self.metrics.delivery_failed(job.platform, self.backends.spec_for(job.community_code))
            log.info(
                "delivery failed, will retry" if not give_up else "notification given up",
                key=job.key,
                attempts=job.attempts,
                retry_in_s=round(delay, 2),
                error=o.error,
            )

    def _flag_for(self, o: _Outcome) -> tuple[str | None, str]:
        job, n = o.job, o.job.attempts
        if job.platform is not None:
            if n >= self.settings.forwarder_max_attempts:
                return FLAG_NOTIFY_FAILED, f"通知居民失败（{job.platform}，{n}次）：{o.error}"[:500]
            return None, ""
        if o.parked:
            return FLAG_NO_BACKEND, "本社区未配置诉求后台，请工作人员直接处理"
        if o.permanent:
            return FLAG_BACKEND_REJECTED, f"诉求后台拒收（第{n}次）：{o.error}"[:500]
        if n >= self.settings.forwarder_max_attempts:
            return FLAG_DELIVERY_FAILED, f"转交诉求后台已失败{n}次，仍在重试：{o.error}"[:500]
        return None, ""

    async def _filed(self, session: Any, outcomes: list[_Outcome], now: datetime) -> None:
        """Record the backend's ids (or tokens) of newly filed cases: one executemany UPDATE, one
        executemany INSERT of the "forwarded" events, one UPDATE clearing delivery flags."""
        rows: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for o in outcomes:
            assert o.filed is not None and o.backend is not None
            filed, backend, appeal = o.filed, o.backend, o.job.appeal
            if backend.polls:
                # A token is exchanged for the id soon; an id's status is asked after the poll interval.
                first = self._token_retry_s if filed.backend_id is None else self.settings.status_poll_s
                next_poll: datetime | None = now + timedelta(seconds=first)
            else:
                next_poll = None
            rows.append(
                {
                    "id": appeal.id,
                    "backend": backend.name,
                    "backend_id": filed.backend_id or appeal.backend_id,
                    "backend_token": filed.token,
                    "next_poll_at": next_poll,
                    "updated_at": now,
                }
            )
            reference = filed.backend_id or f"token {filed.token}"
            events.append(
                {
                    "appeal_id": appeal.id,
                    "kind": "forwarded",
                    "status_from": None,
                    "status_to": None,
                    "note": f"已转交诉求后台（{backend.name}，编号 {reference}）",
                    "actor": "huiyin",
                    "payload": {
                        "backend": backend.name,
                        "backend_id": filed.backend_id,
                        "token": filed.token,
                    },
                    "source_event_id": None,
                    "created_at": now,
                }
            )
        await OutboxRepository(session).record_filed_cases(rows, events, DELIVERY_FLAGS)

    # --- polling (Open311) ----------------------------------------------------------------------------
    async def poll_due(self) -> int:
        """Ask polling backends about the appeals due for it; apply what changed. Returns how many."""
        if not self.backends.any:
            return 0
        now = utcnow()
        async with self.db.unit_of_work() as uow:
            claimed = await OutboxRepository(uow.session).claim_due_polls(
                now=now,
                lease_until=now + timedelta(seconds=self.settings.forwarder_lease_s),
                limit=self.settings.forwarder_batch,
                skip_locked=self._postgres,
            )
            await uow.commit()
        if not claimed:
            return 0
        groups: dict[str, list[tuple[int, str | None, str | None]]] = {}
        for appeal_id, name, backend_id, token in claimed:
            groups.setdefault(name or "", []).append((appeal_id, backend_id, token))
        for name, items in groups.items():
            backend = self.backends.by_name(name) if name else None
            if backend is None or not backend.polls:
                await self._set_next_poll([i for i, _b, _t in items], None)
                continue
            await self._poll_backend(backend, items)
        return len(claimed)

    async def _set_next_poll(self, appeal_ids: list[int], when: datetime | None) -> None:
        if not appeal_ids:
            return
        async with self.db.unit_of_work() as uow:
            await OutboxRepository(uow.session).set_next_poll(appeal_ids, when)
            await uow.commit()

    async def _poll_backend(
        self, backend: CaseBackend, items: list[tuple[int, str | None, str | None]]
    ) -> None:
        now = utcnow()
        later = now + timedelta(seconds=self.settings.status_poll_s * random.uniform(0.9, 1.1))
        by_backend_id: dict[str, int] = {}
        for appeal_id, backend_id, token in items:
            if backend_id is not None:
                by_backend_id[backend_id] = appeal_id
                continue
            if token is None:
                await self._set_next_poll([appeal_id], None)
                continue
            try:
                resolved = await backend.resolve_token(token)
            except BackendError as exc:
                log.warning("token lookup failed", backend=backend.name, token=token, error=str(exc))
                await self._set_next_poll([appeal_id], later)
                continue
            if resolved is None:
                await self._set_next_poll([appeal_id], now + timedelta(seconds=self._token_retry_s))
                continue
            async with self.db.unit_of_work() as uow:
                appeal = await lock_appeal(uow.session, appeal_id)
                if appeal is not None:
                    appeal.backend_id = resolved
                    appeal.next_poll_at = now
                    record_note(
                        uow.session,
                        appeal,
                        kind="forwarded",
                        note=f"诉求后台已分配编号 {resolved}",
                        actor="backend",
                        payload={"backend_id": resolved, "token": token},
                    )
                await uow.commit()
        if not by_backend_id:
            return
        try:
            answers = await backend.poll(list(by_backend_id))
        except BackendError as exc:
            log.warning("status poll failed", backend=backend.name, error=str(exc))
            await self._set_next_poll(list(by_backend_id.values()), later)
            return
        answered: set[int] = set()
        for remote in answers:
            polled_id = by_backend_id.get(remote.backend_id)
            if polled_id is None:
                continue
            answered.add(polled_id)
            await self._apply_remote(polled_id, remote, later)
        await self._set_next_poll([i for i in by_backend_id.values() if i not in answered], later)

    async def _apply_remote(self, appeal_id: int, remote: RemoteStatus, later: datetime) -> None:
        """Apply what a backend reported, if it is news: only a change in what the backend says counts,
        so a resident's reopening is not undone by the backend still saying "closed"."""
        async with self.db.unit_of_work() as uow:
            session = uow.session
            appeal = await lock_appeal(session, appeal_id)
            if appeal is None:
                return
            seen = remote.fingerprint()
            if (appeal.backend_state or {}) != seen:
                previous = appeal.backend_state or {}
                appeal.backend_state = seen
                changed = None
                if remote.status is not None and may_change(AppealStatus(appeal.status), remote.status):
                    changed = await change_status(
                        session,
                        appeal,
                        remote.status,
                        note=remote.notes,
                        actor="backend",
                        words=self.words,
                        payload={"backend_status": remote.raw_status, "updated": remote.updated_at},
                    )
                if changed is None and remote.notes and remote.notes != previous.get("notes"):
                    record_note(
                        session,
                        appeal,
                        kind="note",
                        note=remote.notes,
                        actor="backend",
                        payload={"backend_status": remote.raw_status},
                    )
            appeal.next_poll_at = None if AppealStatus(appeal.status) in TERMINAL else later
            await uow.commit()

    # --- SLA -----------------------------------------------------------------------------------------
    async def check_sla(self, now: datetime | None = None) -> list[str]:
        """Flag appeals whose first response is overdue (see :func:`bot.appeals.status.flag_overdue`)."""
        self._last_sla = time.monotonic()
        async with self.db.unit_of_work() as uow:
            flagged = await flag_overdue(uow.session, now)
            await uow.commit()
        for public_id in flagged:
            log.warning("first response overdue: flagged to staff", public_id=public_id)
        return flagged


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
        outbound = Outbound()
        if settings.redis_url:
            store = StateStore.from_url(settings.redis_url)
            register_inbox(outbound, store.redis)
        forwarder = Forwarder(db, settings, outbound=outbound)
        if once:
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
