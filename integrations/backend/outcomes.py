"""Recording what a batch of deliveries came to: delivered rows are marked, filed cases get their
backend ids, failures are rescheduled with backoff (or given up, for notifications) and flagged to staff."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from bot.appeals.status import (
    FLAG_BACKEND_REJECTED,
    FLAG_DELIVERY_FAILED,
    FLAG_NO_BACKEND,
    FLAG_NOTIFY_FAILED,
    flag,
    record_note,
)
from bot.db.models import Appeal, utcnow
from bot.db.repository.outbox import OutboxRepository
from bot.db.session import Database
from bot.metrics import Metrics
from bot.settings import Settings
from integrations.backend.jobs import DeliveryOutcome, backoff_s
from integrations.backend.registry import Backends

log = structlog.get_logger("integrations.backend.forwarder")  # the logger the forwarder has always logged as

NO_BACKEND_RETRY_S = 3600.0  # a community without a backend: look again in an hour (settings may change)
DELIVERY_FLAGS = frozenset({FLAG_DELIVERY_FAILED, FLAG_BACKEND_REJECTED, FLAG_NO_BACKEND})


@dataclass(slots=True)
class OutcomeRecorder:
    """Writes the outcomes of the forwarder's batches; ``token_retry_s`` is how soon a case filed with a
    token (not yet an id) is polled."""

    db: Database
    settings: Settings
    backends: Backends
    metrics: Metrics
    token_retry_s: float

    async def record(self, outcomes: list[DeliveryOutcome]) -> None:
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
                if o.ok and o.kept_note:
                    self._kept(session, o)
            for o in outcomes:
                if not o.ok:
                    await self._failed(session, o, now)
            await uow.commit()

    def _kept(self, session: Any, o: DeliveryOutcome) -> None:
        """An update the backend does not take: the appeal's history says it was kept in huiyin."""
        assert o.kept_note is not None
        record_note(
            session,
            o.job.appeal,
            kind="note",
            note=o.kept_note,
            actor="huiyin",
            payload={
                "backend": o.backend.name if o.backend else None,
                "action": o.job.action,
                "idempotency_key": o.job.key,
                "reason": "backend_takes_no_updates",
            },
        )

    async def _failed(self, session: Any, o: DeliveryOutcome, now: datetime) -> None:
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

    def _flag_for(self, o: DeliveryOutcome) -> tuple[str | None, str]:
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

    async def _filed(self, session: Any, outcomes: list[DeliveryOutcome], now: datetime) -> None:
        """Record the backend's ids (or tokens) of newly filed cases: one executemany UPDATE, one
        executemany INSERT of the "forwarded" events, one UPDATE clearing delivery flags."""
        rows: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for o in outcomes:
            assert o.filed is not None and o.backend is not None
            filed, backend, appeal = o.filed, o.backend, o.job.appeal
            if backend.polls:
                # A token is exchanged for the id soon; an id's status is asked after the poll interval.
                first = self.token_retry_s if filed.backend_id is None else self.settings.status_poll_s
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
