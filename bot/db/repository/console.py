"""Reads and writes of the staff console's pages that are not read models (those are in
``bot.staff.queries``): the communities a staff member serves, canned replies, a conversation's transcript."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Row, select

from bot.db.models import CannedReply, Community, TranscriptMessage
from bot.db.repository.base import RepositoryBase


class ConsoleRepository(RepositoryBase):
    """The console's own rows over one session."""

    async def communities(self, community_ids: list[int]) -> list[Community]:
        """The communities with these ids, by code."""
        rows = await self.session.execute(
            select(Community).where(Community.id.in_(community_ids)).order_by(Community.code)
        )
        return list(rows.scalars())

    async def canned_replies(self, community_ids: list[int]) -> Sequence[Row[CannedReply, Community]]:
        """The canned replies of these communities with their community, by community code then age."""
        rows = await self.session.execute(
            select(CannedReply, Community)
            .join(Community, Community.id == CannedReply.community_id)
            .where(CannedReply.community_id.in_(community_ids))
            .order_by(Community.code, CannedReply.id)
        )
        return rows.all()

    async def latest_transcript(self, conversation_id: int, limit: int) -> list[TranscriptMessage]:
        """The last ``limit`` transcript lines of a conversation, oldest first."""
        rows = await self.session.execute(
            select(TranscriptMessage)
            .where(TranscriptMessage.conversation_id == conversation_id)
            .order_by(TranscriptMessage.id.desc())
            .limit(limit)
        )
        return list(reversed(list(rows.scalars())))
