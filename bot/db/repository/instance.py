"""The deployment's instance id: the part of every reference and idempotency key a case backend is sent
that no other deployment shares, so that a city backend serving several deployments (each with its own
database, each numbering its appeals HY-YYYYMMDD-0001 from one) never takes two appeals for one case.

It is ``HUIYIN_INSTANCE_ID`` when set; otherwise one made at random the first time a process of the
deployment starts and kept in ``instance_setting``, so that every later start (and every other process on
that database) uses the same. Two processes starting at once on a new database each propose one; the
insert keeps the first and both read that one back.

A process resolves it once at start-up (:meth:`bot.db.session.Database.identify`); every session of that
database then carries it (:func:`instance_of`).
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import InstanceSetting
from bot.db.repository.base import RepositoryBase

INSTANCE_ID = "instance_id"
"""The ``instance_setting`` row that holds the generated instance id."""

SESSION_KEY = "huiyin.instance_id"
"""Where a session's ``info`` carries its database's instance id."""


def new_instance_id() -> str:
    """A random instance id: ten lower-case hex digits (a collision needs about a million deployments)."""
    return secrets.token_hex(5)


class InstanceRecords(RepositoryBase):
    async def instance_id(self) -> str:
        """The stored instance id, stored first if there is none yet (race-safe; see the module)."""
        lookup = select(InstanceSetting.value).where(InstanceSetting.name == INSTANCE_ID)
        found = await self.session.scalar(lookup)
        if found is not None:
            return str(found)
        await self.session.execute(
            self._insert(InstanceSetting)
            .values(name=INSTANCE_ID, value=new_instance_id())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        found = await self.session.scalar(lookup)
        assert found is not None, "the instance id vanished right after its insert"
        return str(found)


def instance_of(session: AsyncSession) -> str:
    """The instance id of ``session``'s database, resolved at start-up."""
    value = session.info.get(SESSION_KEY)
    if not value:
        raise RuntimeError(
            "the deployment's instance id is not known: call Database.identify() before writing what "
            "leaves the deployment"
        )
    return str(value)


def external_key(session: AsyncSession, key: str) -> str:
    """``key`` (an outbox row's idempotency key for the city's case backend) qualified by the instance
    id, so that it is unique across deployments. Rows written before keys carried it keep their key."""
    return f"{instance_of(session)}:{key}"
