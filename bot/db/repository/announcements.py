"""The notices staff post to residents' groups (bot/cases/announcements decides; this module holds the
SQL)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from bot.db.models import Announcement
from bot.db.repository.base import RepositoryBase


class AnnouncementRepository(RepositoryBase):
    def add(self, announcement: Announcement) -> None:
        self.session.add(announcement)

    async def valid(self, community_id: int, now: datetime, limit: int = 20) -> list[Announcement]:
        """The community's announcements still valid at ``now``, the newest first."""
        rows = await self.session.execute(
            select(Announcement)
            .where(Announcement.community_id == community_id, Announcement.valid_until > now)
            .order_by(Announcement.id.desc())
            .limit(limit)
        )
        return list(rows.scalars())
