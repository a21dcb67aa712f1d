"""Recent conversations (staff may take any over) and the audit log, as the console lists them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import AuditEntry, Chat, Conversation, Person, utcnow


@dataclass(frozen=True, slots=True)
class RecentConversation:
    conversation_id: int
    who: str
    chat_title: str
    chat_type: str
    last_message_at: datetime
    held: bool


async def recent_conversations(
    session: AsyncSession, community_ids: Sequence[int], *, hours: int = 24, limit: int = 30
) -> list[RecentConversation]:
    """Residents' conversations with recent activity (staff may take any of them over)."""
    since = utcnow() - timedelta(hours=hours)
    rows = await session.execute(
        select(Conversation, Chat, Person)
        .join(Chat, Chat.id == Conversation.chat_id)
        .join(Person, Person.id == Conversation.person_id)
        .where(
            Conversation.community_id.in_(list(community_ids)),
            Conversation.last_message_at >= since,
            Chat.purpose != "staff",
        )
        .order_by(Conversation.last_message_at.desc())
        .limit(limit)
    )
    return [
        RecentConversation(
            conversation_id=conv.id,
            who=person.display_name or "居民",
            chat_title=chat.title or ("私聊" if chat.chat_type == "private" else "群聊"),
            chat_type=chat.chat_type,
            last_message_at=conv.last_message_at,
            held=conv.handoff_holder_id is not None,
        )
        for conv, chat, person in rows.all()
    ]


async def audit_entries(
    session: AsyncSession, community_ids: Sequence[int], *, limit: int = 200
) -> list[tuple[AuditEntry, str]]:
    rows = await session.execute(
        select(AuditEntry, Person.display_name)
        .outerjoin(Person, Person.id == AuditEntry.actor_person_id)
        .where(AuditEntry.community_id.in_(list(community_ids)))
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    return [(entry, name or ("系统" if entry.actor_person_id is None else "")) for entry, name in rows.all()]
