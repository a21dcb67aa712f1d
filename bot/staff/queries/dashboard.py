"""The dashboard's figures: appeals per day, top categories and buildings, overdue appeals, the queue."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Appeal, AppealStatus, Handoff, HandoffStatus, utcnow
from bot.staff.queries.labels import category_label


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
