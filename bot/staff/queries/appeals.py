"""The console's appeal list: filters, one page of appeals, one appeal with its events, the people named.

Every function takes the community ids the staff member serves and the handler ids they act for, and
never returns anything outside them: :func:`visible` is the one rule (a community's staff see all its
appeals, a handler's person the appeals assigned to their handlers).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Appeal, AppealEvent, AppealStatus, Handler, Person, StaffAccount, utcnow
from bot.staff.queries.labels import actor_person_id

PAGE_SIZE = 50


def visible(community_ids: Sequence[int], handler_ids: Sequence[int] = ()) -> ColumnElement[bool]:
    """The appeals a console user may see: those of the communities they are staff of, and those
    assigned to the handlers they act for."""
    clauses: list[ColumnElement[bool]] = [Appeal.community_id.in_(list(community_ids))]
    if handler_ids:
        clauses.append(Appeal.handler_id.in_(list(handler_ids)))
    return or_(*clauses)


@dataclass(frozen=True, slots=True)
class AppealFilters:
    status: str = ""
    building: str = ""
    category: str = ""
    party: str = ""
    q: str = ""
    handler: str = ""  # a handler's id
    community_id: int | None = None
    page: int = 1

    def clauses(
        self, community_ids: Sequence[int], handler_ids: Sequence[int] = ()
    ) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = [visible(community_ids, handler_ids)]
        if self.community_id is not None:
            out.append(Appeal.community_id == self.community_id)
        if self.handler.isdigit():
            out.append(Appeal.handler_id == int(self.handler))
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
            "handler": self.handler,
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
    handlers: dict[int, str] = field(default_factory=dict)  # id → name, of the handlers in scope


async def appeals(
    session: AsyncSession,
    community_ids: Sequence[int],
    filters: AppealFilters,
    handler_ids: Sequence[int] = (),
) -> AppealPage:
    where = and_(*filters.clauses(community_ids, handler_ids))
    total = int(await session.scalar(select(func.count(Appeal.id)).where(where)) or 0)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, filters.page), pages)
    rows = await session.execute(
        select(Appeal).where(where).order_by(Appeal.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    )
    scope = visible(community_ids, handler_ids)

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
        handlers=await handler_names(session, community_ids, handler_ids),
    )


async def handler_names(
    session: AsyncSession, community_ids: Sequence[int], handler_ids: Sequence[int] = ()
) -> dict[int, str]:
    """The handlers of ``community_ids`` and those of ``handler_ids``: id → name (for the list's
    filter and its 处理单位 column)."""
    clauses: list[ColumnElement[bool]] = [Handler.community_id.in_(list(community_ids))]
    if handler_ids:
        clauses.append(Handler.id.in_(list(handler_ids)))
    rows = await session.execute(select(Handler.id, Handler.name).where(or_(*clauses)).order_by(Handler.id))
    return {int(i): str(n) for i, n in rows.all()}


async def appeal_in_scope(
    session: AsyncSession, community_ids: Sequence[int], public_id: str, handler_ids: Sequence[int] = ()
) -> Appeal | None:
    """The appeal with ``public_id`` when the user may see it (:func:`visible`); None otherwise (the
    caller answers 404 either way, so guessing ids reveals nothing)."""
    return (
        (
            await session.execute(
                select(Appeal).where(Appeal.public_id == public_id, visible(community_ids, handler_ids))
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
