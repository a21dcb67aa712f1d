"""The outbox and the polling queue as the forwarder sees them, and the queue gauges read at scrape time.

Claims are one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``: on PostgreSQL a row
another worker holds is skipped, on SQLite (one writer at a time) the lock clause is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from bot.db.models import Appeal, AppealEvent, Community, Handoff, HandoffStatus, OutboxEntry, Person
from bot.db.repository.base import RepositoryBase


class OutboxRepository(RepositoryBase):
    """Claims, loads and settles outbox rows, and claims appeals due for a status poll."""

    async def claim_due_entries(
        self,
        *,
        backend_lane: bool,
        platforms: Sequence[str],
        now: datetime,
        lease_until: datetime,
        limit: int,
        worker_id: str,
        skip_locked: bool,
    ) -> list[int]:
        """Lease the oldest due rows of the given lanes whose appeal has no older undelivered row in the
        same lane; returns their ids (sorted). No lane at all: nothing is claimed."""
        cand = aliased(OutboxEntry, name="cand")
        lanes = []
        if backend_lane:
            lanes.append(cand.platform.is_(None))
        if platforms:
            lanes.append(cand.platform.in_(list(platforms)))
        if not lanes:
            return []
        older = aliased(OutboxEntry, name="older")
        earlier_pending = (
            select(older.id)
            .where(
                older.appeal_id == cand.appeal_id,
                older.id < cand.id,
                older.delivered_at.is_(None),
                older.failed_at.is_(None),
                or_(
                    and_(older.platform.is_(None), cand.platform.is_(None)),
                    older.platform == cand.platform,
                ),
            )
            .exists()
        )
        due = (
            select(cand.id)
            .where(
                cand.delivered_at.is_(None),
                cand.failed_at.is_(None),
                cand.next_attempt_at <= now,
                or_(*lanes),
                ~earlier_pending,
            )
            .order_by(cand.id)
            .limit(limit)
        )
        values = {
            "next_attempt_at": lease_until,
            "claimed_by": worker_id,
            "attempts": OutboxEntry.attempts + 1,
        }
        stmt = _lease(OutboxEntry, due, skip_locked, values, OutboxEntry.id)
        return sorted((await self.session.execute(stmt)).scalars())

    async def entries_with_appeals(
        self, ids: list[int]
    ) -> list[tuple[OutboxEntry, Appeal, str, str, str | None]]:
        """The rows ``ids`` (by id) with their appeal, community code and name, and reporter's name."""
        rows = await self.session.execute(
            select(OutboxEntry, Appeal, Community.code, Community.name, Person.display_name)
            .join(Appeal, OutboxEntry.appeal_id == Appeal.id)
            .join(Community, Appeal.community_id == Community.id)
            .join(Person, Appeal.reporter_id == Person.id)
            .where(OutboxEntry.id.in_(ids))
            .order_by(OutboxEntry.id)
        )
        return [(entry, appeal, code, name, reporter) for entry, appeal, code, name, reporter in rows]

    async def mark_delivered(self, ids: list[int], now: datetime, note: str | None) -> None:
        """Mark the rows ``ids`` delivered at ``now`` (``note`` kept as their last error) and release them."""
        await self.session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id.in_(ids))
            .values(delivered_at=now, last_error=note, claimed_by=None)
            .execution_options(synchronize_session=False)
        )

    async def settle_failed_entry(self, entry_id: int, values: dict[str, Any]) -> None:
        """Write a failed attempt's outcome (``values``) to the row, unless it has been delivered meanwhile."""
        await self.session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id == entry_id, OutboxEntry.delivered_at.is_(None))
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    async def record_filed_cases(
        self, appeals: list[dict[str, Any]], events: list[dict[str, Any]], delivery_flags: frozenset[str]
    ) -> None:
        """Store the backend's ids of newly filed cases (one executemany UPDATE by appeal id), add their
        "forwarded" events (one executemany INSERT), and clear their delivery flags."""
        await self.session.execute(update(Appeal), appeals)
        await self.session.execute(insert(AppealEvent), events)
        await self.session.execute(
            update(Appeal)
            .where(Appeal.id.in_([r["id"] for r in appeals]), Appeal.flag_reason.in_(delivery_flags))
            .values(flagged_at=None, flag_reason=None)
            .execution_options(synchronize_session=False)
        )

    async def claim_due_polls(
        self, *, now: datetime, lease_until: datetime, limit: int, skip_locked: bool
    ) -> list[tuple[int, str | None, str | None, str | None]]:
        """Lease the appeals whose status poll is due, soonest first; returns (id, backend, backend id,
        token) of each."""
        cand = aliased(Appeal, name="cand")
        due = (
            select(cand.id)
            .where(cand.next_poll_at.is_not(None), cand.next_poll_at <= now)
            .order_by(cand.next_poll_at)
            .limit(limit)
        )
        returned = (Appeal.id, Appeal.backend, Appeal.backend_id, Appeal.backend_token)
        claim = _lease(Appeal, due, skip_locked, {"next_poll_at": lease_until}, *returned)
        return [(i, b, bid, t) for i, b, bid, t in (await self.session.execute(claim)).all()]

    async def set_next_poll(self, appeal_ids: list[int], when: datetime | None) -> None:
        """Schedule the next status poll of the appeals ``appeal_ids`` (None: never)."""
        await self.session.execute(
            update(Appeal)
            .where(Appeal.id.in_(appeal_ids))
            .values(next_poll_at=when)
            .execution_options(synchronize_session=False)
        )


def _lease(model: Any, due: Any, skip_locked: bool, values: dict[str, Any], *returning: Any) -> Any:
    """``UPDATE model SET values WHERE id IN (due [FOR UPDATE SKIP LOCKED]) RETURNING returning``: the
    claim of the rows ``due`` selects, with the rows other workers hold skipped when ``skip_locked``."""
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    return (
        update(model)
        .where(model.id.in_(due.scalar_subquery()))
        .values(**values)
        .returning(*returning)
        .execution_options(synchronize_session=False)
    )


class QueueGaugeReads:
    """The scrape-time gauges' reads, over a plain connection (no ORM session for a metrics scrape)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def undelivered_by_lane(self) -> list[tuple[bool, int, datetime | None]]:
        """Per lane (True: backend, False: notifications), the outbox rows neither delivered nor given up
        and the creation time of the oldest."""
        outbox = OutboxEntry.__table__
        backend_lane = outbox.c.platform.is_(None)
        pending = select(backend_lane, func.count(), func.min(outbox.c.created_at)).where(
            and_(outbox.c.delivered_at.is_(None), outbox.c.failed_at.is_(None))
        )
        rows = (await self.conn.execute(pending.group_by(backend_lane))).all()
        return [(is_backend, count, oldest) for is_backend, count, oldest in rows]

    async def handoffs_waiting(self) -> tuple[int | None, datetime | None]:
        """How many handoffs wait for staff, and when the longest-waiting one was requested."""
        handoff = Handoff.__table__
        waiting = select(func.count(), func.min(handoff.c.requested_at)).where(
            handoff.c.status == HandoffStatus.WAITING.value
        )
        queued, oldest = (await self.conn.execute(waiting)).one()
        return queued, oldest
