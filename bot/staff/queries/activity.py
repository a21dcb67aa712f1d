"""Recent conversations (staff may take any over) and the audit log, as the console lists them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import AuditEntry, Chat, Community, Conversation, Person, StaffAccount, utcnow
from bot.staff.queries.labels import action_label, audit_detail, chat_type_label, platform_label


@dataclass(frozen=True, slots=True)
class RecentConversation:
    conversation_id: int
    who: str
    chat_title: str
    chat_type: str
    platform: str  # its label: 微信, 网页聊天 …
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
            chat_title=chat.title or chat_type_label(chat.chat_type),
            chat_type=chat.chat_type,
            platform=platform_label(conv.platform),
            last_message_at=conv.last_message_at,
            held=conv.handoff_holder_id is not None,
        )
        for conv, chat, person in rows.all()
    ]


# What an audit entry's target is, when it is not a page of its own.
TARGET_LABELS = {
    "canned_reply": "快捷回复",
    "staff": "工作人员账号",
    "chat": "群聊",
    "person": "成员",
    "community": "社区",
}


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One audit entry as the log shows it: every part already in staff's words."""

    entry: AuditEntry
    who: str
    action: str
    target: str
    target_href: str = ""  # a console page of the target ("/appeals/HY-…"), under the console's base
    details: list[str] = field(default_factory=list)


async def audit_entries(
    session: AsyncSession, community_ids: Sequence[int], *, limit: int = 200
) -> list[AuditRow]:
    rows = await session.execute(
        select(AuditEntry, StaffAccount.display_name, Person.display_name, Community.name)
        .outerjoin(StaffAccount, StaffAccount.person_id == AuditEntry.actor_person_id)
        .outerjoin(Person, Person.id == AuditEntry.actor_person_id)
        .outerjoin(Community, Community.id == AuditEntry.community_id)
        .where(AuditEntry.community_id.in_(list(community_ids)))
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    out = []
    for entry, staff, person, community in rows.all():
        detail = entry.detail or {}
        if entry.actor_person_id is None:
            who = "系统管理员" if detail.get("via") == "cli" else "回音（系统）"
        else:
            who = staff or person or "工作人员"
        target, href = _target(entry, community or "")
        out.append(
            AuditRow(entry, who, action_label(entry.action), target, href, audit_detail(entry.action, detail))
        )
    return out


def _target(entry: AuditEntry, community: str) -> tuple[str, str]:
    if entry.target_type == "conversation":
        return f"对话 #{entry.target_id}", f"/conversations/{entry.target_id}"
    if entry.target_type == "appeal":
        return entry.target_id, f"/appeals/{entry.target_id}"
    if entry.target_type == "community":
        return community or TARGET_LABELS["community"], ""
    return TARGET_LABELS.get(entry.target_type, "其他"), ""
