"""Reads and writes of handoffs (conversations handed to staff), their notes and canned replies.

The handoff desk (:mod:`bot.handoff.desk`) decides; this module holds its SQL. At most one handoff per
conversation is open (waiting or active), enforced by a partial unique index: :meth:`insert_open` is the
one place that meets it, and the conditional updates (:meth:`take_waiting`, :meth:`close`) are how two
staff members or processes racing on one conversation find out who won.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import CannedReply, Conversation, Handoff, HandoffNote, HandoffStatus, utcnow

QUEUE_LIMIT = 200
"""The most handoffs a queue shows at once."""


class HandoffRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- reading -------------------------------------------------------------------------------------
    async def open_handoff(self, conversation_id: int) -> Handoff | None:
        """The conversation's waiting or active handoff, if any."""
        rows = await self.session.execute(
            select(Handoff).where(
                Handoff.conversation_id == conversation_id,
                Handoff.status != HandoffStatus.CLOSED.value,
            )
        )
        return rows.scalars().first()

    async def holder_id(self, conversation_id: int) -> int | None:
        """Who holds the conversation (``conversation.handoff_holder_id``); None when the bot does."""
        return await self.session.scalar(
            select(Conversation.handoff_holder_id).where(Conversation.id == conversation_id)
        )

    async def queue(self, community_ids: Sequence[int]) -> list[Handoff]:
        """Open handoffs of ``community_ids``: urgent first, then oldest first."""
        rows = await self.session.execute(
            select(Handoff)
            .where(
                Handoff.community_id.in_(list(community_ids)),
                Handoff.status != HandoffStatus.CLOSED.value,
            )
            .order_by(Handoff.urgent.desc(), Handoff.requested_at)
            .limit(QUEUE_LIMIT)
        )
        return list(rows.scalars())

    async def quiet_conversations(self, cutoff: datetime) -> list[int]:
        """Conversations staff hold in which nothing happened since ``cutoff``."""
        rows = await self.session.execute(
            select(Handoff.conversation_id).where(
                Handoff.status == HandoffStatus.ACTIVE.value, Handoff.last_activity_at < cutoff
            )
        )
        return list(rows.scalars())

    async def active(self) -> list[tuple[int, int]]:
        """``(handoff id, conversation id)`` of every conversation staff hold."""
        rows = await self.session.execute(
            select(Handoff.id, Handoff.conversation_id).where(Handoff.status == HandoffStatus.ACTIVE.value)
        )
        return [(handoff_id, conversation_id) for handoff_id, conversation_id in rows.all()]

    async def notes(self, conversation_id: int) -> list[HandoffNote]:
        rows = await self.session.execute(
            select(HandoffNote).where(HandoffNote.conversation_id == conversation_id).order_by(HandoffNote.id)
        )
        return list(rows.scalars())

    async def canned(self, community_id: int) -> list[CannedReply]:
        rows = await self.session.execute(
            select(CannedReply).where(CannedReply.community_id == community_id).order_by(CannedReply.id)
        )
        return list(rows.scalars())

    # --- writing -------------------------------------------------------------------------------------
    async def insert_open(self, handoff: Handoff) -> bool:
        """Add a new open handoff in a savepoint. False when the conversation already has one (another
        process opened it at the same moment): the caller reads that one with :meth:`open_handoff`."""
        try:
            async with self.session.begin_nested():
                self.session.add(handoff)
        except IntegrityError:
            return False
        return True

    async def take_waiting(
        self, handoff_id: int, holder_id: int, holder_chat: dict[str, Any], now: datetime
    ) -> bool:
        """Make a waiting handoff active for ``holder_id``. False when it was no longer waiting."""
        taken = await self.session.execute(
            update(Handoff)
            .where(Handoff.id == handoff_id, Handoff.status == HandoffStatus.WAITING.value)
            .values(
                status=HandoffStatus.ACTIVE.value,
                holder_id=holder_id,
                holder_chat=holder_chat,
                taken_at=now,
                last_activity_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return _rowcount(taken) > 0

    async def close(self, handoff_id: int, reason: str, *, quiet_before: datetime | None = None) -> bool:
        """Close an open handoff. With ``quiet_before``, only an active one quiet since then (the
        auto-release). False when nothing was closed: already closed, or someone spoke."""
        stmt = update(Handoff).where(Handoff.id == handoff_id, Handoff.status != HandoffStatus.CLOSED.value)
        if quiet_before is not None:
            stmt = stmt.where(
                Handoff.status == HandoffStatus.ACTIVE.value, Handoff.last_activity_at < quiet_before
            )
        done = await self.session.execute(
            stmt.values(
                status=HandoffStatus.CLOSED.value, closed_at=utcnow(), close_reason=reason
            ).execution_options(synchronize_session=False)
        )
        return _rowcount(done) > 0


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
