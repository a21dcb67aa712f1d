"""What staff read about handed-off conversations: the open handoff, where the resident is, a summary,
the queue, internal notes and canned replies. :class:`~bot.handoff.desk.HandoffDesk` builds on it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import CannedReply, Chat, Community, Conversation, Handoff, HandoffNote, Person
from bot.db.repository.conversation_records import ConversationRecords
from bot.db.repository.handoffs import HandoffRepository
from bot.handoff.model import Address, HandoffError, QueueItem
from bot.handoff.summary import ResidentLine, Summary, summarize
from bot.roles import staff_name
from bot.settings import Settings
from kb import KnowledgeBase

# How many of the resident's latest messages the summary reads.
SUMMARY_LINES = 30


class HandoffReader:
    """Reads over the caller's session; nothing here writes."""

    settings: Settings
    kb: KnowledgeBase

    async def open_handoff(self, session: AsyncSession, conversation_id: int) -> Handoff | None:
        return await HandoffRepository(session).open_handoff(conversation_id)

    async def address(self, session: AsyncSession, conversation_id: int) -> Address | None:
        conv = await session.get(Conversation, conversation_id)
        if conv is None:
            return None
        chat = await session.get(Chat, conv.chat_id)
        assert chat is not None
        prefix = f"{conv.platform}:{chat.external_id}:"
        user_id = conv.key[len(prefix) :] if conv.key.startswith(prefix) else conv.key.rsplit(":", 1)[-1]
        name = await ConversationRecords(session).display_name(conv.platform, user_id)
        if not name:
            person = await session.get(Person, conv.person_id)
            name = person.display_name if person else ""
        return Address(
            conversation_id=conv.id,
            community_id=conv.community_id,
            platform=conv.platform,
            chat_id=chat.external_id,
            chat_type=chat.chat_type,
            chat_title=chat.title,
            user_id=user_id,
            name=name or "",
        )

    async def summary(self, session: AsyncSession, conversation_id: int) -> Summary:
        address = await self.address(session, conversation_id)
        conv = await session.get(Conversation, conversation_id)
        if address is None or conv is None:
            return Summary("", "", "", "", "", "", False)
        rows = await ConversationRecords(session).resident_lines(conversation_id, SUMMARY_LINES)
        lines = [ResidentLine(t, i) for t, i in rows if t and not t.startswith("/")]
        community = await session.get(Community, conv.community_id)
        return summarize(
            who=address.name,
            lines=lines,
            dialog_state=conv.dialog_state,
            kb=self.kb,
            community_code=community.code if community else self.settings.default_community,
        )

    async def queue(self, session: AsyncSession, community_ids: Sequence[int]) -> list[QueueItem]:
        """Waiting and active conversations of ``community_ids``: urgent first, then oldest first."""
        if not community_ids:
            return []
        items: list[QueueItem] = []
        for handoff in await HandoffRepository(session).queue(community_ids):
            address = await self.address(session, handoff.conversation_id)
            if address is None:
                continue
            holder = await staff_name(session, handoff.holder_id) if handoff.holder_id else None
            items.append(
                QueueItem(
                    handoff=handoff,
                    address=address,
                    summary=await self.summary(session, handoff.conversation_id),
                    holder_name=holder,
                    waiting_since=handoff.requested_at,
                )
            )
        return items

    async def notes(self, session: AsyncSession, conversation_id: int) -> list[tuple[HandoffNote, str]]:
        notes = await HandoffRepository(session).notes(conversation_id)
        return [(n, await staff_name(session, n.author_id)) for n in notes]

    async def canned(self, session: AsyncSession, community_id: int) -> list[CannedReply]:
        return await HandoffRepository(session).canned(community_id)

    async def _address_or_fail(self, session: AsyncSession, conversation_id: int) -> Address:
        address = await self.address(session, conversation_id)
        if address is None:
            raise HandoffError("not_found", id=conversation_id)
        return address
