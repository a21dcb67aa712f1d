"""The people aggregate: residents and staff, their platform identities, phone and roles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import select

from bot.db.models import Person, PlatformIdentity, RoleGrant, utcnow
from bot.db.repository.base import RepositoryBase
from bot.db.repository.records import PERSON_TABLE


class PeopleRepository(RepositoryBase):
    """Who people are across platforms, how to reach them and what they may do."""

    async def person_for(self, platform: str, external_id: str, display_name: str) -> Person:
        identity = await self._first(
            select(PlatformIdentity).where(
                PlatformIdentity.platform == platform, PlatformIdentity.external_id == external_id
            )
        )
        if identity is not None:
            if display_name and identity.display_name != display_name:
                identity.display_name = display_name
            person = await self.session.get(Person, identity.person_id)
            assert person is not None
            return person
        person = Person(display_name=display_name)
        self.session.add(person)
        await self.session.flush()
        await self.session.execute(
            self._insert(PlatformIdentity)
            .values(
                person_id=person.id, platform=platform, external_id=external_id, display_name=display_name
            )
            .on_conflict_do_nothing()
        )
        identity = await self._first(
            select(PlatformIdentity).where(
                PlatformIdentity.platform == platform, PlatformIdentity.external_id == external_id
            )
        )
        assert identity is not None
        if identity.person_id != person.id:  # another process won the race: use its person
            await self.session.delete(person)
            winner = await self.session.get(Person, identity.person_id)
            assert winner is not None
            return winner
        return person

    async def person(self, person_id: int) -> Person | None:
        return await self.session.get(Person, person_id)

    async def set_phone(self, person_id: int, phone: str) -> None:
        """Keep the number the resident gave in answer to the contact question. That question says what
        the number is for, who sees it and how long it is kept; answering it with a number is their
        consent, recorded the first time."""
        person = await self.session.get(Person, person_id)
        if person is not None:
            person.phone = phone
            person.consent_at = person.consent_at or utcnow()

    async def saved_phone(self, person_id: int) -> str | None:
        """The phone number the resident left before and agreed to keep, if any (one row, without loading
        the person)."""
        connection = await self.session.connection()
        stmt = select(PERSON_TABLE.c.phone).where(
            PERSON_TABLE.c.id == person_id, PERSON_TABLE.c.consent_at.is_not(None)
        )
        return cast(str | None, await connection.scalar(stmt))

    async def roles_of(self, person_id: int, community_id: int) -> dict[str, list[Any]]:
        grants = (
            await self.session.execute(
                select(RoleGrant).where(
                    RoleGrant.person_id == person_id, RoleGrant.community_id == community_id
                )
            )
        ).scalars()
        return {g.role: list(g.buildings or []) for g in grants}

    async def anyone_holds(self, community_id: int, roles: Sequence[str]) -> bool:
        """Whether anybody holds one of ``roles`` in the community."""
        found = await self.session.scalar(
            select(RoleGrant.id)
            .where(RoleGrant.community_id == community_id, RoleGrant.role.in_(list(roles)))
            .limit(1)
        )
        return found is not None
