"""The records of area-wide incidents: the open one of a kind, the recent reports that may open one, the
race-safe opening, and the residents' groups of a community (bot/appeals/incidents decides; this module
holds the SQL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, or_, select, update

from bot.db.models import (
    INCIDENT_OPEN,
    OPEN_STATUSES,
    Appeal,
    Chat,
    Incident,
    OutboxEntry,
)
from bot.db.repository.base import RepositoryBase

_OPEN = [s.value for s in OPEN_STATUSES]


def open_key(community_id: int, kind: str) -> str:
    """The value of :attr:`Incident.open_key` while an incident of ``kind`` is open in the community."""
    return f"{community_id}:{kind}"


class IncidentRepository(RepositoryBase):
    async def open_incident(self, community_id: int, kind: str, *, lock: bool = False) -> Incident | None:
        """The open incident of ``kind`` in the community; ``lock``: loaded afresh for changing it
        (``FOR UPDATE`` on PostgreSQL; SQLite serializes writers already)."""
        stmt = select(Incident).where(Incident.open_key == open_key(community_id, kind))
        if lock:
            stmt = stmt.execution_options(populate_existing=True)
            if self._dialect() == "postgresql":
                stmt = stmt.with_for_update()
        return await self._first(stmt)

    async def open_incidents(self, community_id: int) -> list[Incident]:
        rows = await self.session.execute(
            select(Incident)
            .where(Incident.community_id == community_id, Incident.status == INCIDENT_OPEN)
            .order_by(Incident.id)
        )
        return list(rows.scalars())

    async def by_case(self, appeal_id: int) -> Incident | None:
        """The incident whose case is the appeal ``appeal_id``, if it is one."""
        return await self._first(select(Incident).where(Incident.case_appeal_id == appeal_id))

    async def case_status(self, incident: Incident) -> str | None:
        """The status of the incident's case appeal (None: it has none)."""
        if incident.case_appeal_id is None:
            return None
        return await self.session.scalar(select(Appeal.status).where(Appeal.id == incident.case_appeal_id))

    async def try_open(self, values: dict[str, Any]) -> Incident | None:
        """Insert the open incident ``values`` describe (with its ``open_key``), unless one of the kind is
        open already; None then. Two processes opening the same incident at once: one inserts, the
        other's ``ON CONFLICT DO NOTHING`` waits for its commit and inserts nothing."""
        stmt = (
            self._insert(Incident)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["open_key"])
            .returning(Incident.id)
        )
        new_id = (await self.session.execute(stmt)).scalar_one_or_none()
        return await self.session.get(Incident, new_id) if new_id is not None else None

    async def recent_reports(
        self,
        community_id: int,
        *,
        matters: Sequence[str],
        categories: Sequence[str],
        since: datetime,
        limit: int = 500,
    ) -> Sequence[Row[int, str | None, str, str, datetime]]:
        """Open appeals of the community filed since ``since`` about one of ``matters`` (KB matter ids) or
        ``categories``, oldest first, as ``(id, building, description, origin_chat_type, created_at)``."""
        kinds = []
        if matters:
            kinds.append(Appeal.kb_matter_id.in_(list(matters)))
        if categories:
            kinds.append(Appeal.category.in_(list(categories)))
        if not kinds:
            return ()
        stmt = (
            select(
                Appeal.id,
                Appeal.building,
                Appeal.description,
                Appeal.origin_chat_type,
                Appeal.created_at,
            )
            .where(
                Appeal.community_id == community_id,
                Appeal.status.in_(_OPEN),
                Appeal.created_at >= since,
                or_(*kinds),
            )
            .order_by(Appeal.id)
            .limit(limit)
        )
        return (await self.session.execute(stmt)).all()

    async def resident_groups(self, community_id: int) -> list[Chat]:
        """The community's residents' group chats (building groups), where incident notices go."""
        rows = await self.session.execute(
            select(Chat)
            .where(
                Chat.community_id == community_id,
                Chat.chat_type == "group",
                Chat.purpose == "residents",
            )
            .order_by(Chat.id)
        )
        return list(rows.scalars())

    async def withhold_city_filing(self, appeal_id: int, now: datetime, note: str) -> bool:
        """The appeal's filing with the city's case backend, not yet under way, is settled unsent (the
        appeal was merged into an incident's case, which the city hears of alone). True when one was."""
        result = await self.session.execute(
            update(OutboxEntry)
            .where(
                OutboxEntry.appeal_id == appeal_id,
                OutboxEntry.action == "create",
                OutboxEntry.delivered_at.is_(None),
                or_(OutboxEntry.claimed_by.is_(None), OutboxEntry.next_attempt_at < now),
            )
            .values(delivered_at=now, last_error=note[:200], claimed_by=None)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def close(self, incident_id: int, now: datetime) -> None:
        """Resolve the incident: a new one of its kind may open from now on."""
        await self.session.execute(
            update(Incident)
            .where(Incident.id == incident_id)
            .values(status="resolved", open_key=None, resolved_at=now)
            .execution_options(synchronize_session="fetch")
        )
