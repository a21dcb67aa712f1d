"""The console's appeal list: filters, one page of appeals, one appeal with its events, the people named.

Every function takes the community ids the staff member serves and never returns anything outside them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Appeal, AppealEvent, AppealStatus, Person, StaffAccount, utcnow
from bot.staff.queries.labels import actor_person_id

PAGE_SIZE = 50


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


async def actor_names(session: AsyncSession, actors: Iterable[str]) -> dict[int, str]:
    """The names of the people that appeal events' actors (``resident:12``, ``staff:3``) name, by person
    id: a staff member's console name, else the person's own."""
    ids = {pid for a in actors if (pid := actor_person_id(a)) is not None}
    if not ids:
        return {}
    rows = await session.execute(
        select(Person.id, StaffAccount.display_name, Person.display_name)
        .outerjoin(StaffAccount, StaffAccount.person_id == Person.id)
        .where(Person.id.in_(ids))
    )
    return {pid: staff or person or "" for pid, staff, person in rows.all()}
