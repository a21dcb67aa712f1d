"""Polling backends that must be asked for news (Open311): tokens are exchanged for case ids, and what a
backend reports about a case is applied to its appeal."""

from __future__ import annotations

import random
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta

import structlog

from bot.appeals.status import TERMINAL, change_status, lock_appeal, may_change, record_note
from bot.db.models import AppealStatus, utcnow
from bot.db.repository.outbox import OutboxRepository
from bot.db.session import Database
from bot.dialog.spec import Responses
from bot.settings import Settings
from integrations.backend.base import BackendError, CaseBackend, RemoteStatus
from integrations.backend.registry import Backends

log = structlog.get_logger("integrations.backend.forwarder")  # the logger the forwarder has always logged as

TOKEN_RETRY_S = 2.0  # Open311 tokens usually turn into ids within seconds


@dataclass(slots=True)
class StatusPoller:
    """Claims the appeals due for a status poll (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers
    share the work) and asks their backends; ``token_retry_s`` is how soon an unresolved token is asked
    again."""

    db: Database
    settings: Settings
    backends: Backends
    words: Responses
    _: KW_ONLY
    token_retry_s: float
    postgres: bool

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
                skip_locked=self.postgres,
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
                await self._set_next_poll([appeal_id], now + timedelta(seconds=self.token_retry_s))
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
