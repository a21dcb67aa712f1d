"""Reads and writes behind an appeal's life after filing: locking it for a change, the staff's flags, who
is connected to it and where they hear of it, the rating it waits for, the open appeals a new one may
duplicate, and the appeal a backend event is about.

The modules of :mod:`bot.appeals` (and the backend webhook) decide; this module holds their SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, or_, select, update

from bot.db.models import (
    OPEN_STATUSES,
    Appeal,
    AppealEvent,
    AppealStatus,
    AppealSupporter,
    Chat,
    Community,
    PlatformIdentity,
    utcnow,
)
from bot.db.repository.base import RepositoryBase
from bot.db.repository.records import SKIP_PENDING

_OPEN = [s.value for s in OPEN_STATUSES]


class AppealRecords(RepositoryBase):
    """The SQL of status changes, flags, notifications, access, ratings and duplicates of appeals."""

    # --- changing an appeal --------------------------------------------------------------------------
    async def lock(self, appeal_id: int) -> Appeal | None:
        """The appeal, loaded afresh for changing it: ``FOR UPDATE`` on PostgreSQL; on SQLite, which has
        no row locks, a no-op write first takes the database's write lock (see
        :func:`bot.appeals.status.lock_appeal`)."""
        bind = self.session.get_bind()
        stmt = select(Appeal).where(Appeal.id == appeal_id).execution_options(populate_existing=True)
        if bind.dialect.name == "sqlite":
            await self.session.execute(
                update(Appeal)
                .where(Appeal.id == appeal_id)
                .values(updated_at=Appeal.updated_at)
                .execution_options(synchronize_session=False)
            )
        else:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def mark_overdue(self, now: datetime, reason: str) -> Sequence[Row[int, str, datetime | None]]:
        """Mark every open appeal whose first response is overdue (once) and flag it for ``reason``;
        returns their ``(id, public_id, first_response_due_at)``.

        One ``UPDATE … RETURNING``, so two workers running this at once mark each appeal once.
        """
        return (
            await self.session.execute(
                update(Appeal)
                .where(
                    Appeal.first_responded_at.is_(None),
                    Appeal.overdue_at.is_(None),
                    Appeal.first_response_due_at < now,
                    Appeal.status.in_(_OPEN),
                )
                .values(
                    overdue_at=now,
                    flagged_at=func.coalesce(Appeal.flagged_at, now),
                    flag_reason=reason,
                )
                .returning(Appeal.id, Appeal.public_id, Appeal.first_response_due_at)
                .execution_options(synchronize_session=False)
            )
        ).all()

    # --- reading -------------------------------------------------------------------------------------
    async def flagged(self, limit: int) -> list[Appeal]:
        """Appeals on the staff's list, oldest flag first, at most ``limit``."""
        rows = await self.session.execute(
            select(Appeal).where(Appeal.flagged_at.is_not(None)).order_by(Appeal.flagged_at).limit(limit)
        )
        return list(rows.scalars())

    async def latest_status_note(self, appeal_id: int) -> str | None:
        """The note of the appeal's latest status change, if it has one."""
        return await self.session.scalar(
            select(AppealEvent.note)
            .where(AppealEvent.appeal_id == appeal_id, AppealEvent.kind == "status")
            .order_by(AppealEvent.id.desc())
            .limit(1)
        )

    async def identity_on(self, person_id: int, platform: str) -> Row[str, str] | None:
        """The person's first identity on ``platform``: ``(external_id, display_name)``."""
        return (
            await self.session.execute(
                select(PlatformIdentity.external_id, PlatformIdentity.display_name)
                .where(PlatformIdentity.person_id == person_id, PlatformIdentity.platform == platform)
                .order_by(PlatformIdentity.id)
                .limit(1)
            )
        ).first()

    async def has_private_chat(self, platform: str, external_id: str) -> bool:
        """Whether the person known as ``external_id`` on ``platform`` has a private chat with the bot
        (where the details of their group appeal may go)."""
        found = await self.session.execute(
            select(Chat.id)
            .where(Chat.platform == platform, Chat.external_id == external_id, Chat.chat_type == "private")
            .limit(1)
        )
        return found.first() is not None

    async def supporters_of(self, appeal_id: int) -> list[AppealSupporter]:
        """The residents who joined the appeal, in the order they joined."""
        rows = await self.session.execute(
            select(AppealSupporter).where(AppealSupporter.appeal_id == appeal_id).order_by(AppealSupporter.id)
        )
        return list(rows.scalars())

    async def is_supporter(self, appeal_id: int, person_id: int) -> bool:
        """Whether ``person_id`` joined the appeal as a supporter."""
        found = await self.session.scalar(
            select(AppealSupporter.id).where(
                AppealSupporter.appeal_id == appeal_id, AppealSupporter.person_id == person_id
            )
        )
        return found is not None

    async def awaiting_rating(self, person_id: int) -> Appeal | None:
        """The reporter's most recently resolved appeal still waiting for their rating."""
        rows = await self.session.execute(
            select(Appeal)
            .where(
                Appeal.reporter_id == person_id,
                Appeal.status == AppealStatus.RESOLVED.value,
                Appeal.rating_requested_at.is_not(None),
                or_(Appeal.rated_at.is_(None), Appeal.rated_at < Appeal.rating_requested_at),
            )
            .order_by(Appeal.rating_requested_at.desc())
            .limit(1)
        )
        return rows.scalars().first()

    async def duplicate_candidates(
        self, community_id: int, *, window_days: int, limit: int, building: str | None, with_place: bool
    ) -> Sequence[Row[Any]]:
        """The newest open appeals of the community filed in the last ``window_days``, as the few columns
        a duplicate check compares: only those in ``building`` when given, else only those naming a place
        when ``with_place``. Appeals this session has not written yet are not among them."""
        stmt = (
            select(
                Appeal.id,
                Appeal.description,
                Appeal.building,
                Appeal.unit,
                Appeal.room,
                Appeal.place,
                Appeal.location,
                Appeal.kb_matter_id,
            )
            .where(
                Appeal.community_id == community_id,
                Appeal.status.in_(_OPEN),
                Appeal.created_at >= utcnow() - timedelta(days=window_days),
            )
            .order_by(Appeal.id.desc())
            .limit(limit)
        )
        if building is not None:
            stmt = stmt.where(Appeal.building == building)
        elif with_place:
            stmt = stmt.where(Appeal.place.is_not(None))
        return (await self.session.execute(stmt, execution_options=SKIP_PENDING)).all()

    # --- backend events ------------------------------------------------------------------------------
    async def appeal_and_community(
        self, *, public_id: str | None, backend_id: str | None
    ) -> Row[int, str] | None:
        """``(appeal id, community code)`` of the appeal ``public_id``, or else of the one the backend
        knows as ``backend_id``."""
        lookup = select(Appeal.id, Community.code).join(Community, Appeal.community_id == Community.id)
        if public_id:
            lookup = lookup.where(Appeal.public_id == public_id)
        else:
            lookup = lookup.where(Appeal.backend_id == backend_id)
        return (await self.session.execute(lookup.limit(1))).first()

    async def has_source_event(self, source_event_id: str) -> bool:
        """Whether an appeal event was already recorded for the backend's ``source_event_id``."""
        seen = await self.session.scalar(
            select(AppealEvent.id).where(AppealEvent.source_event_id == source_event_id)
        )
        return seen is not None
