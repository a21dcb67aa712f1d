"""Reads behind the roles: communities, chat identities, role grants, console accounts and invite codes.

The decisions (who may do what, what an invite grants) stay in :mod:`bot.roles`; this module only
finds the rows they are made from.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import Select, select

from bot.db.models import Community, InviteCode, PlatformIdentity, Role, RoleGrant, StaffAccount
from bot.db.repository.base import RepositoryBase

T = TypeVar("T")


class RoleRepository(RepositoryBase):
    """Communities, identities, grants, staff accounts and invites over one session."""

    async def _all(self, stmt: Select[T]) -> list[T]:
        """Every row (or column value) ``stmt`` selects, in its order."""
        return list((await self.session.execute(stmt)).scalars())

    async def community_by_code(self, code: str) -> Community | None:
        """The community with this code, if any."""
        return await self._first(select(Community).where(Community.code == code))

    async def identity_of(self, platform: str, external_id: str) -> PlatformIdentity | None:
        """The row of a chat identity (``platform``/``external_id``), if the bot has seen it."""
        return await self._first(
            select(PlatformIdentity).where(
                PlatformIdentity.platform == platform, PlatformIdentity.external_id == external_id
            )
        )

    async def grants_of(self, person_id: int) -> list[RoleGrant]:
        """Every grant ``person_id`` holds, oldest first."""
        return await self._all(
            select(RoleGrant).where(RoleGrant.person_id == person_id).order_by(RoleGrant.id)
        )

    async def staff_community_ids(self, person_id: int) -> list[int]:
        """The ids of the communities ``person_id`` serves as staff, ascending."""
        return await self._all(
            select(RoleGrant.community_id)
            .where(RoleGrant.person_id == person_id, RoleGrant.role == Role.STAFF.value)
            .order_by(RoleGrant.community_id)
        )

    async def leader_grants(self, person_id: int) -> list[RoleGrant]:
        """The building leader grants ``person_id`` holds (one per community)."""
        return await self._all(
            select(RoleGrant).where(
                RoleGrant.person_id == person_id, RoleGrant.role == Role.BUILDING_LEADER.value
            )
        )

    async def grant_in(self, person_id: int, community_id: int, role: Role) -> RoleGrant | None:
        """The grant of ``role`` ``person_id`` already holds in a community, if any."""
        return await self._first(
            select(RoleGrant).where(
                RoleGrant.person_id == person_id,
                RoleGrant.community_id == community_id,
                RoleGrant.role == role.value,
            )
        )

    async def account_by_username(self, username: str) -> StaffAccount | None:
        """The console account with this (already lower-cased) user name, if any."""
        return await self._first(select(StaffAccount).where(StaffAccount.username == username))

    async def account_of_person(self, person_id: int) -> StaffAccount | None:
        """The console account of ``person_id``, if they have one."""
        return await self._first(select(StaffAccount).where(StaffAccount.person_id == person_id))

    async def invite_by_hash(self, code_hash: str, *, for_update: bool = False) -> InviteCode | None:
        """The invite whose code hashes to ``code_hash``; ``for_update`` locks its row until commit, so
        two redemptions of one code cannot both succeed."""
        stmt = select(InviteCode).where(InviteCode.code_hash == code_hash)
        return await self._first(stmt.with_for_update() if for_update else stmt)
