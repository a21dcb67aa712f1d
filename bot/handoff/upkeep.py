"""The desk's background upkeep: "held" markers put back after a restart, and conversations staff
hold released after a quiet period. :class:`~bot.handoff.desk.HandoffDesk` exposes both; they only
need the part of the desk described by :class:`Releasing`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import utcnow
from bot.db.repository.handoffs import HandoffRepository
from bot.db.session import Database
from bot.handoff.model import HELD_COMPLETE, Address, HandoffError, Outcome, held_marker
from bot.handoff.notices import Notice
from bot.outbound import Outbound
from bot.settings import Settings
from bot.state import StateStore

log = structlog.get_logger(__name__)


class Releasing(Protocol):
    """What the upkeep uses of the desk."""

    settings: Settings
    store: StateStore
    redis: Redis

    async def address(self, session: AsyncSession, conversation_id: int) -> Address | None: ...

    async def release(
        self,
        session: AsyncSession,
        conversation_id: int,
        actor_person_id: int | None,
        *,
        reason: str = ...,
        via: str = ...,
        quiet_before: datetime | None = ...,
    ) -> Outcome: ...

    async def send(self, notices: Sequence[Notice], outbound: Outbound | None) -> list[Notice]: ...


async def release_quiet(desk: Releasing, db: Database, outbound: Outbound | None) -> int:
    """Release every conversation staff hold that has been quiet for the configured period."""
    cutoff = utcnow() - timedelta(seconds=desk.settings.handoff_quiet_release_s)
    released = 0
    async with db.unit_of_work() as uow:
        ids = await HandoffRepository(uow.session).quiet_conversations(cutoff)
    for conversation_id in ids:
        async with db.unit_of_work() as uow:
            try:
                outcome = await desk.release(
                    uow.session, conversation_id, None, reason="auto", via="auto", quiet_before=cutoff
                )
            except HandoffError:  # someone spoke, or another process released it first
                continue
            await uow.commit()
        released += 1
        await desk.send(outcome.notices, outbound)
        log.info("handoff released after a quiet period", conversation=conversation_id)
    return released


async def run_auto_release(desk: Releasing, db: Database, outbound: Outbound) -> None:
    """Background job of ``huiyin serve``: :func:`release_quiet` every check interval."""
    while True:
        await asyncio.sleep(desk.settings.handoff_check_interval_s)
        try:
            await release_quiet(desk, db, outbound)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be briefly away; try again next round
            log.warning("auto-release round failed", error=repr(exc))


async def restore_markers(desk: Releasing, db: Database) -> int:
    """Put the "held" markers back into Redis (an in-process Redis starts empty after a restart),
    then set :data:`~bot.handoff.model.HELD_COMPLETE`."""
    restored = 0
    async with db.unit_of_work() as uow:
        for handoff_id, conversation_id in await HandoffRepository(uow.session).active():
            address = await desk.address(uow.session, conversation_id)
            if address is not None:
                await desk.redis.set(held_marker(address.key), str(handoff_id))
                restored += 1
    await desk.store.mark_complete(HELD_COMPLETE)
    return restored
