"""The dashboard's figures: open area-wide incidents, appeals per day, top categories and buildings, overdue appeals, the queue, and
the case desk's times and rates over the last 30 days (first response, resolution, on time, satisfied)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from statistics import mean, median
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    INCIDENT_OPEN,
    Appeal,
    AppealStatus,
    Handoff,
    HandoffStatus,
    Incident,
    utcnow,
)
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
    times: CaseTimes = field(default_factory=lambda: CaseTimes())
    incidents: list[OpenIncident] = field(default_factory=list)

    @property
    def max_day(self) -> int:
        return max([n for _, n in self.days] + [1])


@dataclass(frozen=True, slots=True)
class OpenIncident:
    """An area-wide incident still open: what it is, how many reported it from where, since when, its
    case, and what residents are told."""

    label: str
    reports: int
    buildings: list[str]
    since: datetime
    case_public_id: str | None
    restore_text: str


SATISFIED = ("satisfied", "basic")  # 满意, 基本满意


@dataclass(frozen=True, slots=True)
class Duration:
    """Median and average of some durations, in hours (None: nothing to measure yet)."""

    median_h: float | None = None
    average_h: float | None = None
    count: int = 0

    @classmethod
    def of(cls, hours: list[float]) -> Duration:
        if not hours:
            return cls()
        return cls(round(median(hours), 1), round(mean(hours), 1), len(hours))


@dataclass(frozen=True, slots=True)
class Rate:
    """``hits`` of ``total``; ``percent`` None when there is nothing to count."""

    hits: int = 0
    total: int = 0

    @property
    def percent(self) -> int | None:
        return round(100 * self.hits / self.total) if self.total else None


@dataclass(frozen=True, slots=True)
class CaseTimes:
    """The case desk over the appeals filed in the period: how long until the first response and until
    resolution, how many were on time (of those answered or resolved, or already past their deadline),
    and the share of ratings that were 满意 or 基本满意."""

    first_response: Duration = Duration()
    resolution: Duration = Duration()
    first_response_on_time: Rate = Rate()
    resolution_on_time: Rate = Rate()
    satisfaction: Rate = Rate()


def _hours(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds() / 3600)


def _on_time(due: datetime | None, met: datetime | None, now: datetime) -> bool | None:
    """Whether a deadline was kept; None when it cannot be told yet (no deadline, or still running)."""
    if due is None:
        return None
    if met is not None:
        return met <= due
    return False if due < now else None


def case_times(rows: Sequence[Any], now: datetime) -> CaseTimes:
    """:class:`CaseTimes` of rows with the appeal's created_at, first_response_due_at,
    first_responded_at, resolution_due_at, resolved_at and rating."""
    first: list[float] = []
    resolution: list[float] = []
    first_kept: list[bool] = []
    resolution_kept: list[bool] = []
    ratings: list[str] = []
    for r in rows:
        if r.first_responded_at is not None:
            first.append(_hours(r.created_at, r.first_responded_at))
        if r.resolved_at is not None:
            resolution.append(_hours(r.created_at, r.resolved_at))
        if (kept := _on_time(r.first_response_due_at, r.first_responded_at, now)) is not None:
            first_kept.append(kept)
        if (kept := _on_time(r.resolution_due_at, r.resolved_at, now)) is not None:
            resolution_kept.append(kept)
        if r.rating:
            ratings.append(r.rating)
    return CaseTimes(
        first_response=Duration.of(first),
        resolution=Duration.of(resolution),
        first_response_on_time=Rate(sum(first_kept), len(first_kept)),
        resolution_on_time=Rate(sum(resolution_kept), len(resolution_kept)),
        satisfaction=Rate(sum(1 for r in ratings if r in SATISFIED), len(ratings)),
    )


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
    period = await session.execute(
        select(
            Appeal.created_at,
            Appeal.first_response_due_at,
            Appeal.first_responded_at,
            Appeal.resolution_due_at,
            Appeal.resolved_at,
            Appeal.rating,
        ).where(scope, Appeal.created_at >= now - timedelta(days=days))
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
        times=case_times(period.all(), now),
        incidents=await open_incidents(session, community_ids),
    )


async def open_incidents(session: AsyncSession, community_ids: Sequence[int]) -> list[OpenIncident]:
    """The open area-wide incidents of the communities, the newest first."""
    rows = await session.execute(
        select(Incident, Appeal.public_id)
        .outerjoin(Appeal, Appeal.id == Incident.case_appeal_id)
        .where(Incident.community_id.in_(list(community_ids)), Incident.status == INCIDENT_OPEN)
        .order_by(Incident.id.desc())
        .limit(20)
    )
    return [
        OpenIncident(i.label, i.reports, list(i.buildings), i.first_report_at, public_id, i.restore_text)
        for i, public_id in rows.all()
    ]
