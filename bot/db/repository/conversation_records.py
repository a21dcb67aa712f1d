"""Reads about conversations, their people and places that the handoff desk, staff commands and
building leaders' relays need: transcript facts, display names, staff chats, appeals of buildings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Appeal, Chat, Community, PlatformIdentity, Role, RoleGrant, TranscriptMessage

NOT_UNDERSTOOD = "not_understood"
"""Transcript payload flag of the bot's reply that told the resident it did not understand."""


class ConversationRecords:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- the transcript ------------------------------------------------------------------------------
    async def not_understood_in_a_row(self, conversation_id: int, count: int) -> bool:
        """Were the last ``count`` lines sent in the conversation (by the bot or staff) all replies
        flagged :data:`NOT_UNDERSTOOD`?"""
        rows = await self.session.execute(
            select(TranscriptMessage.payload)
            .where(
                TranscriptMessage.conversation_id == conversation_id,
                TranscriptMessage.direction == "out",
            )
            .order_by(TranscriptMessage.id.desc())
            .limit(count)
        )
        payloads = list(rows.scalars())
        return len(payloads) == count and all((p or {}).get(NOT_UNDERSTOOD) is True for p in payloads)

    async def resident_lines(self, conversation_id: int, limit: int) -> list[tuple[str, str | None]]:
        """``(text, intent)`` of the resident's latest ``limit`` messages, oldest first."""
        rows = await self.session.execute(
            select(TranscriptMessage.text, TranscriptMessage.intent)
            .where(
                TranscriptMessage.conversation_id == conversation_id,
                TranscriptMessage.author == "resident",
            )
            .order_by(TranscriptMessage.id.desc())
            .limit(limit)
        )
        return [(text, intent) for text, intent in reversed(rows.all())]

    # --- people and places ---------------------------------------------------------------------------
    async def display_name(self, platform: str, external_id: str) -> str | None:
        """The name a platform identity goes by, if the platform told us one."""
        return await self.session.scalar(
            select(PlatformIdentity.display_name).where(
                PlatformIdentity.platform == platform, PlatformIdentity.external_id == external_id
            )
        )

    async def has_staff(self, community_id: int) -> bool:
        found = await self.session.scalar(
            select(RoleGrant.id)
            .where(RoleGrant.community_id == community_id, RoleGrant.role == Role.STAFF.value)
            .limit(1)
        )
        return found is not None

    async def communities(self, ids: Sequence[int]) -> list[Community]:
        rows = await self.session.execute(
            select(Community).where(Community.id.in_(list(ids))).order_by(Community.id)
        )
        return list(rows.scalars())

    async def chats_with_purpose(self, community_id: int, purpose: str) -> list[Chat]:
        """The community's chats bound for ``purpose`` (e.g. its staff chats), oldest binding first."""
        rows = await self.session.execute(
            select(Chat).where(Chat.community_id == community_id, Chat.purpose == purpose).order_by(Chat.id)
        )
        return list(rows.scalars())

    async def appeals_in_buildings(self, buildings: Mapping[int, Sequence[str]], limit: int) -> list[Appeal]:
        """The latest ``limit`` appeals in the given buildings (community id → building numbers)."""
        scope: ColumnElement[bool] | None = None
        for community_id, mine in buildings.items():
            clause = (Appeal.community_id == community_id) & Appeal.building.in_(list(mine))
            scope = clause if scope is None else scope | clause
        assert scope is not None, "no buildings"
        rows = await self.session.execute(select(Appeal).where(scope).order_by(Appeal.id.desc()).limit(limit))
        return list(rows.scalars())
