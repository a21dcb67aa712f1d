"""The SQL behind the case desk's deadlines (:mod:`bot.cases.deadlines`): the reminders and the missed
resolution deadlines, each marked once by one conditional ``UPDATE … RETURNING`` (so that several workers
running the check at once act on an appeal once), the overdue appeals of the daily digest, and the
digest's outbox rows, inserted once per chat and day (``ON CONFLICT DO NOTHING`` on the idempotency key).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update

from bot.db.models import OPEN_STATUSES, Appeal, Community, Handler, OutboxEntry
from bot.db.repository.base import RepositoryBase

_OPEN = [s.value for s in OPEN_STATUSES]


class DeadlineRecords(RepositoryBase):
    async def communities_with_open_appeals(self) -> list[tuple[int, str]]:
        """``(id, code)`` of every community with an open appeal."""
        rows = await self.session.execute(
            select(Community.id, Community.code)
            .where(
                select(Appeal.id)
                .where(Appeal.community_id == Community.id, Appeal.status.in_(_OPEN))
                .exists()
            )
            .order_by(Community.id)
        )
        return [(int(i), str(c)) for i, c in rows]

    async def mark_response_reminders(self, now: datetime, leads: Mapping[int, timedelta]) -> list[int]:
        """Mark the open appeals still waiting for a first response whose deadline is less than their
        community's lead (``leads``: community id → how long before) away, and not yet passed; once each.
        Returns their ids."""
        due = _within_lead(Appeal.first_response_due_at, now, leads)
        if due is None:
            return []
        return await self._mark(
            Appeal.response_reminded_at,
            now,
            Appeal.first_responded_at.is_(None),
            Appeal.overdue_at.is_(None),
            Appeal.first_response_due_at > now,
            due,
        )

    async def mark_resolution_reminders(self, now: datetime, leads: Mapping[int, timedelta]) -> list[int]:
        """Mark the open appeals whose resolution deadline is less than their community's lead away, and
        not yet passed; once each. Returns their ids."""
        due = _within_lead(Appeal.resolution_due_at, now, leads)
        if due is None:
            return []
        return await self._mark(
            Appeal.resolution_reminded_at,
            now,
            Appeal.resolution_overdue_at.is_(None),
            Appeal.resolution_due_at > now,
            due,
        )

    async def mark_resolution_overdue(self, now: datetime) -> list[int]:
        """Mark the open appeals whose resolution deadline has passed; once each. Returns their ids."""
        return await self._mark(Appeal.resolution_overdue_at, now, Appeal.resolution_due_at < now)

    async def _mark(self, column: Any, now: datetime, *conditions: ColumnElement[bool]) -> list[int]:
        rows = await self.session.execute(
            update(Appeal)
            .where(column.is_(None), Appeal.status.in_(_OPEN), *conditions)
            .values({column.key: now})
            .returning(Appeal.id)
            .execution_options(synchronize_session=False)
        )
        return sorted(int(r[0]) for r in rows)

    async def appeals(self, ids: Sequence[int]) -> list[Appeal]:
        """The appeals ``ids``, loaded afresh (after an ``UPDATE`` this session did not track), by id."""
        if not ids:
            return []
        rows = await self.session.execute(
            select(Appeal)
            .where(Appeal.id.in_(list(ids)))
            .order_by(Appeal.id)
            .execution_options(populate_existing=True)
        )
        return list(rows.scalars())

    async def appeals_by_public_ids(self, public_ids: Sequence[str]) -> list[Appeal]:
        if not public_ids:
            return []
        rows = await self.session.execute(
            select(Appeal)
            .where(Appeal.public_id.in_(list(public_ids)))
            .order_by(Appeal.id)
            .execution_options(populate_existing=True)
        )
        return list(rows.scalars())

    async def overdue_appeals(self, now: datetime) -> list[tuple[Appeal, str | None]]:
        """Every open appeal past a deadline at ``now`` — still unanswered after its first-response
        deadline, or unresolved after its resolution deadline — with its handler's name; by community,
        oldest first."""
        rows = await self.session.execute(
            select(Appeal, Handler.name)
            .outerjoin(Handler, Handler.id == Appeal.handler_id)
            .where(
                Appeal.status.in_(_OPEN),
                or_(
                    and_(Appeal.first_responded_at.is_(None), Appeal.first_response_due_at < now),
                    Appeal.resolution_due_at < now,
                ),
            )
            .order_by(Appeal.community_id, Appeal.created_at, Appeal.id)
        )
        return [(appeal, name) for appeal, name in rows]

    async def queued(self, keys: Sequence[str]) -> set[str]:
        """Which of the outbox idempotency ``keys`` are taken already."""
        if not keys:
            return set()
        rows = await self.session.execute(
            select(OutboxEntry.idempotency_key).where(OutboxEntry.idempotency_key.in_(list(keys)))
        )
        return {str(r[0]) for r in rows}

    async def queue_once(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert outbox rows (dicts of its columns) whose idempotency key is not taken; race-safe.
        Returns how many were new."""
        if not rows:
            return 0
        stmt = (
            self._insert(OutboxEntry)
            .values(list(rows))
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
        )
        result = await self.session.execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)


def _within_lead(due: Any, now: datetime, leads: Mapping[int, timedelta]) -> ColumnElement[bool] | None:
    """``due`` is within its community's lead of ``now`` (communities with no lead are left out)."""
    parts = [
        and_(Appeal.community_id == community_id, due <= now + lead)
        for community_id, lead in leads.items()
        if lead > timedelta(0)
    ]
    return or_(*parts) if parts else None
