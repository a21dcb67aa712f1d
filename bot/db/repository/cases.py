"""The case desk's records: handlers and their people, the chats bound to them, and the appeals a staff
member or a handler's person may act on (bot/cases decides; this module holds the SQL)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import func, or_, select

from bot.db.models import (
    OPEN_STATUSES,
    Appeal,
    Chat,
    Community,
    Handler,
    HandlerMember,
    Person,
)
from bot.db.repository.base import RepositoryBase

HANDLER_CHAT = "handler"
RESIDENTS_CHAT = "residents"  # a building's group or a resident's private chat: nothing personal of others
STAFF_CHAT = "staff"


class CaseRepository(RepositoryBase):
    # --- handlers ----------------------------------------------------------------------------------------
    async def handlers(self, community_id: int, *, active_only: bool = True) -> list[Handler]:
        stmt = select(Handler).where(Handler.community_id == community_id).order_by(Handler.id)
        if active_only:
            stmt = stmt.where(Handler.active.is_(True))
        return list((await self.session.execute(stmt)).scalars())

    async def handler(self, handler_id: int) -> Handler | None:
        return await self.session.get(Handler, handler_id)

    async def handler_by_code(self, community_id: int, code: str) -> Handler | None:
        return await self._first(
            select(Handler).where(Handler.community_id == community_id, Handler.code == code)
        )

    async def add_missing_handlers(self, community_id: int, rows: Iterable[dict[str, object]]) -> int:
        """Insert the handlers (dicts of Handler columns, each with a ``code``) the community does not
        have yet; race-safe (``ON CONFLICT DO NOTHING``). Returns how many were new."""
        values = [{**row, "community_id": community_id} for row in rows]
        if not values:
            return 0
        stmt = (
            self._insert(Handler)
            .values(values)
            .on_conflict_do_nothing(index_elements=["community_id", "code"])
        )
        result = await self.session.execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)

    async def add_member(self, handler_id: int, person_id: int) -> bool:
        """Make ``person_id`` one of the handler's people; False when they were already."""
        stmt = (
            self._insert(HandlerMember)
            .values(handler_id=handler_id, person_id=person_id)
            .on_conflict_do_nothing(index_elements=["handler_id", "person_id"])
        )
        result = await self.session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))

    async def handler_ids_of(self, person_id: int) -> list[int]:
        """The active handlers ``person_id`` acts for."""
        rows = await self.session.execute(
            select(HandlerMember.handler_id)
            .join(Handler, Handler.id == HandlerMember.handler_id)
            .where(HandlerMember.person_id == person_id, Handler.active.is_(True))
        )
        return [int(r[0]) for r in rows]

    async def handler_communities(self, handler_ids: Sequence[int]) -> list[int]:
        if not handler_ids:
            return []
        rows = await self.session.execute(
            select(Handler.community_id).where(Handler.id.in_(handler_ids)).distinct()
        )
        return [int(r[0]) for r in rows]

    async def members(self, handler_id: int) -> list[Person]:
        rows = await self.session.execute(
            select(Person)
            .join(HandlerMember, HandlerMember.person_id == Person.id)
            .where(HandlerMember.handler_id == handler_id)
            .order_by(Person.id)
        )
        return list(rows.scalars())

    # --- chats ---------------------------------------------------------------------------------------------
    async def handler_chats(self, handler_id: int) -> list[Chat]:
        rows = await self.session.execute(
            select(Chat).where(Chat.purpose == HANDLER_CHAT, Chat.handler_id == handler_id).order_by(Chat.id)
        )
        return list(rows.scalars())

    async def staff_chats(self, community_id: int) -> list[Chat]:
        rows = await self.session.execute(
            select(Chat)
            .where(Chat.purpose == STAFF_CHAT, Chat.community_id == community_id)
            .order_by(Chat.id)
        )
        return list(rows.scalars())

    async def chat(self, platform: str, external_id: str) -> Chat | None:
        return await self._first(
            select(Chat).where(Chat.platform == platform, Chat.external_id == external_id)
        )

    # --- appeals ---------------------------------------------------------------------------------------
    async def appeal_by_public_id(self, public_id: str) -> Appeal | None:
        return await self._first(select(Appeal).where(func.upper(Appeal.public_id) == public_id.upper()))

    async def open_appeals_for(
        self, community_ids: Sequence[int], handler_ids: Sequence[int], *, limit: int = 20
    ) -> list[Appeal]:
        """Open appeals of the communities (all of them) or assigned to the handlers, oldest first."""
        conditions = []
        if community_ids:
            conditions.append(Appeal.community_id.in_(community_ids))
        if handler_ids:
            conditions.append(Appeal.handler_id.in_(handler_ids))
        if not conditions:
            return []
        rows = await self.session.execute(
            select(Appeal)
            .where(or_(*conditions), Appeal.status.in_([s.value for s in OPEN_STATUSES]))
            .order_by(Appeal.created_at)
            .limit(limit)
        )
        return list(rows.scalars())

    async def community(self, community_id: int) -> Community | None:
        return await self.session.get(Community, community_id)
