"""What the console reads: appeals with filters, the dashboard's figures, recent conversations.

Every function takes the community ids the staff member serves and never returns anything outside them;
the routes add nothing to a query that could widen it.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    Appeal,
    AppealEvent,
    AppealStatus,
    AuditEntry,
    Chat,
    Community,
    Conversation,
    Handoff,
    HandoffStatus,
    Person,
    utcnow,
)
from bot.handoff.summary import place_text
from kb.model import CATEGORY_LABELS, Category

PAGE_SIZE = 50
CSV_LIMIT = 50_000

PARTY_LABELS = {
    "property": "物业",
    "community": "社区",
    "street": "街道",
    "owners_committee": "业委会",
    "owner": "业主自行处理",
    "department": "职能部门",
    "utility": "公用事业单位",
    "emergency": "紧急救援",
    "hotline": "12345热线",
    "developer": "开发商",
}


def category_label(code: str | None) -> str:
    if not code:
        return ""
    try:
        return CATEGORY_LABELS[Category(code)]
    except ValueError:
        return code


def party_label(code: str | None) -> str:
    return PARTY_LABELS.get(code or "", code or "")


def status_label(code: str) -> str:
    try:
        return AppealStatus(code).label
    except ValueError:
        return code


@dataclass(frozen=True, slots=True)
class AppealFilters:
    status: str = ""
    building: str = ""
    category: str = ""
    party: str = ""
    q: str = ""
    community_id: int | None = None
    page: int = 1

    def clauses(self, community_ids: Sequence[int]) -> list[ColumnElement[bool]]:
        scope = [self.community_id] if self.community_id is not None else list(community_ids)
        out: list[ColumnElement[bool]] = [Appeal.community_id.in_(scope)]
        if self.status == "overdue":
            out += [Appeal.status == AppealStatus.SUBMITTED.value, Appeal.first_response_due_at < utcnow()]
        elif self.status:
            out.append(Appeal.status == self.status)
        if self.building:
            out.append(Appeal.building == self.building)
        if self.category:
            out.append(Appeal.category == self.category)
        if self.party:
            out.append(Appeal.responsible_party == self.party)
        if self.q:
            like = f"%{self.q.strip()}%"
            out.append(or_(Appeal.description.like(like), Appeal.public_id.like(like)))
        return out

    def query_string(self) -> str:
        from urllib.parse import urlencode

        values = {
            "status": self.status,
            "building": self.building,
            "category": self.category,
            "party": self.party,
            "q": self.q,
        }
        return urlencode({k: v for k, v in values.items() if v})


@dataclass(slots=True)
class AppealPage:
    appeals: list[Appeal]
    total: int
    page: int
    pages: int
    buildings: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    parties: list[str] = field(default_factory=list)


async def appeals(session: AsyncSession, community_ids: Sequence[int], filters: AppealFilters) -> AppealPage:
    where = and_(*filters.clauses(community_ids))
    total = int(await session.scalar(select(func.count(Appeal.id)).where(where)) or 0)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, filters.page), pages)
    rows = await session.execute(
        select(Appeal).where(where).order_by(Appeal.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    )
    scope = Appeal.community_id.in_(list(community_ids))

    async def distinct(column: Any) -> list[str]:
        found = await session.execute(select(column).where(scope, column.is_not(None)).distinct())
        return sorted((str(v) for v in found.scalars()), key=lambda v: (len(v), v))

    return AppealPage(
        appeals=list(rows.scalars()),
        total=total,
        page=page,
        pages=pages,
        buildings=await distinct(Appeal.building),
        categories=await distinct(Appeal.category),
        parties=await distinct(Appeal.responsible_party),
    )


async def appeal_in_scope(
    session: AsyncSession, community_ids: Sequence[int], public_id: str
) -> Appeal | None:
    """The appeal with ``public_id`` when it belongs to one of ``community_ids``; None otherwise (the
    caller answers 404 either way, so guessing ids reveals nothing)."""
    return (
        (
            await session.execute(
                select(Appeal).where(
                    Appeal.public_id == public_id, Appeal.community_id.in_(list(community_ids))
                )
            )
        )
        .scalars()
        .first()
    )


async def appeal_events(session: AsyncSession, appeal_id: int) -> list[AppealEvent]:
    rows = await session.execute(
        select(AppealEvent).where(AppealEvent.appeal_id == appeal_id).order_by(AppealEvent.id)
    )
    return list(rows.scalars())


async def people(session: AsyncSession, ids: set[int]) -> dict[int, Person]:
    if not ids:
        return {}
    rows = await session.execute(select(Person).where(Person.id.in_(ids)))
    return {p.id: p for p in rows.scalars()}


CSV_COLUMNS = [
    "编号",
    "社区",
    "状态",
    "提交时间",
    "首次答复期限",
    "楼栋",
    "单元",
    "房号",
    "公共位置",
    "问题描述",
    "分类",
    "责任方",
    "紧急",
    "反映人",
    "代反映楼长",
    "联系电话",
    "来源",
]


async def appeals_csv(
    session: AsyncSession, community_ids: Sequence[int], filters: AppealFilters, tz: tzinfo
) -> tuple[str, int]:
    """The filtered appeals as CSV text (with a BOM so Excel reads the Chinese), and the row count."""
    where = and_(*filters.clauses(community_ids))
    rows = list(
        (await session.execute(select(Appeal).where(where).order_by(Appeal.id).limit(CSV_LIMIT))).scalars()
    )
    names = await people(
        session, {a.reporter_id for a in rows} | {a.relayed_by_id for a in rows if a.relayed_by_id}
    )
    communities = {
        c.id: c
        for c in (
            await session.execute(select(Community).where(Community.id.in_(list(community_ids))))
        ).scalars()
    }
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for a in rows:
        reporter = names.get(a.reporter_id)
        leader = names.get(a.relayed_by_id) if a.relayed_by_id else None
        writer.writerow(
            [
                a.public_id,
                communities[a.community_id].name if a.community_id in communities else a.community_id,
                status_label(a.status),
                a.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                a.first_response_due_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
                if a.first_response_due_at
                else "",
                a.building or "",
                a.unit or "",
                a.room or "",
                a.place or "",
                _csv_safe(a.description),
                category_label(a.category),
                party_label(a.responsible_party),
                "是" if a.urgent else "",
                _csv_safe(reporter.display_name if reporter else ""),
                _csv_safe(leader.display_name if leader else ""),
                a.contact_phone or "",
                f"{a.origin_platform}/{a.origin_chat_type}",
            ]
        )
    return buffer.getvalue(), len(rows)


def _csv_safe(text: str) -> str:
    """Residents write the text: keep a spreadsheet from reading it as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# --- dashboard ------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Dashboard:
    days: list[tuple[str, int]]  # (MM-DD, appeals created that day), oldest first
    top_categories: list[tuple[str, int]]
    top_buildings: list[tuple[str, int]]
    overdue: list[Appeal]
    open_count: int
    today_count: int
    overdue_count: int
    waiting: int
    active: int

    @property
    def max_day(self) -> int:
        return max([n for _, n in self.days] + [1])


async def dashboard(
    session: AsyncSession, community_ids: Sequence[int], tz: tzinfo, *, days: int = 30
) -> Dashboard:
    scope = Appeal.community_id.in_(list(community_ids))
    now = utcnow()
    local_today = now.astimezone(tz).date()
    start_local = datetime.combine(local_today - timedelta(days=days - 1), datetime.min.time(), tz)
    created = (
        await session.execute(select(Appeal.created_at).where(scope, Appeal.created_at >= start_local))
    ).scalars()
    per_day = Counter(c.astimezone(tz).date() for c in created)
    series = [
        ((d := local_today - timedelta(days=i)).strftime("%m-%d"), per_day.get(d, 0))
        for i in range(days - 1, -1, -1)
    ]

    async def top(column: Any, label: Any) -> list[tuple[str, int]]:
        rows = await session.execute(
            select(column, func.count(Appeal.id))
            .where(scope, column.is_not(None))
            .group_by(column)
            .order_by(func.count(Appeal.id).desc())
            .limit(8)
        )
        return [(label(value), int(count)) for value, count in rows.all()]

    overdue_where = and_(
        scope, Appeal.status == AppealStatus.SUBMITTED.value, Appeal.first_response_due_at < now
    )
    open_statuses = [
        s.value
        for s in AppealStatus
        if s not in (AppealStatus.RESOLVED, AppealStatus.REJECTED, AppealStatus.CLOSED)
    ]
    handoffs = dict(
        (
            await session.execute(
                select(Handoff.status, func.count(Handoff.id))
                .where(
                    Handoff.community_id.in_(list(community_ids)),
                    Handoff.status != HandoffStatus.CLOSED.value,
                )
                .group_by(Handoff.status)
            )
        ).all()
    )
    return Dashboard(
        days=series,
        top_categories=await top(Appeal.category, category_label),
        top_buildings=await top(Appeal.building, lambda b: f"{b}栋"),
        overdue=list(
            (
                await session.execute(
                    select(Appeal).where(overdue_where).order_by(Appeal.first_response_due_at).limit(20)
                )
            ).scalars()
        ),
        open_count=int(
            await session.scalar(select(func.count(Appeal.id)).where(scope, Appeal.status.in_(open_statuses)))
            or 0
        ),
        today_count=per_day.get(local_today, 0),
        overdue_count=int(await session.scalar(select(func.count(Appeal.id)).where(overdue_where)) or 0),
        waiting=int(handoffs.get(HandoffStatus.WAITING.value, 0)),
        active=int(handoffs.get(HandoffStatus.ACTIVE.value, 0)),
    )


# --- conversations and audit ----------------------------------------------------------------------------
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


def appeal_place(appeal: Appeal) -> str:
    return place_text(appeal.building, appeal.unit, appeal.room, appeal.place)
