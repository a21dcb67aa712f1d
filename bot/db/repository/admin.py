"""What `huiyin admin` reads and writes beyond the roles repository: staff grants to take away, a chat
to rebind with its conversations, and the listing of communities, logins and roles."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Row, select, update

from bot.db.models import Chat, Community, Conversation, Person, Role, RoleGrant, StaffAccount
from bot.db.repository.base import RepositoryBase


class AdminRepository(RepositoryBase):
    async def staff_grants(self, person_id: int, community_id: int) -> list[RoleGrant]:
        """The person's staff grants in the community (normally one)."""
        rows = await self.session.execute(
            select(RoleGrant).where(
                RoleGrant.person_id == person_id,
                RoleGrant.community_id == community_id,
                RoleGrant.role == Role.STAFF.value,
            )
        )
        return list(rows.scalars())

    async def chat(self, platform: str, external_id: str) -> Chat | None:
        return await self._first(
            select(Chat).where(Chat.platform == platform, Chat.external_id == external_id)
        )

    async def move_conversations(self, chat_id: int, community_id: int) -> None:
        """Every conversation of the chat now belongs to ``community_id`` (the chat was rebound)."""
        await self.session.execute(
            update(Conversation).where(Conversation.chat_id == chat_id).values(community_id=community_id)
        )

    async def communities(self) -> list[Community]:
        return list((await self.session.execute(select(Community).order_by(Community.id))).scalars())

    async def staff_accounts(self) -> list[StaffAccount]:
        return list((await self.session.execute(select(StaffAccount).order_by(StaffAccount.id))).scalars())

    async def staff_community_ids(self, person_id: int) -> list[int]:
        rows = await self.session.execute(
            select(RoleGrant.community_id).where(
                RoleGrant.person_id == person_id, RoleGrant.role == Role.STAFF.value
            )
        )
        return list(rows.scalars())

    async def grants_with_people(self) -> Sequence[Row[RoleGrant, Person]]:
        rows = await self.session.execute(
            select(RoleGrant, Person).join(Person, Person.id == RoleGrant.person_id).order_by(RoleGrant.id)
        )
        return rows.all()
