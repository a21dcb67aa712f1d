"""How the console shows an appeal at the case desk: its event kinds in Chinese, its two deadlines and
whether they were missed, and which actions the viewer may take on it now."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Appeal, AppealStatus, Handler, utcnow

OPEN = (AppealStatus.SUBMITTED, AppealStatus.ACCEPTED, AppealStatus.ASSIGNED, AppealStatus.IN_PROGRESS)
TO_ACCEPT = (AppealStatus.SUBMITTED, AppealStatus.REOPENED)


@dataclass(frozen=True, slots=True)
class Deadline:
    """One deadline of an appeal: when it is due, when it was met (None: not yet), whether it was missed."""

    due: datetime | None
    met: datetime | None
    overdue: bool


def deadlines(appeal: Appeal, now: datetime | None = None) -> tuple[Deadline, Deadline]:
    """The first-response and the resolution deadline. Missed: met after the due time, or still not
    met past it (or flagged overdue by the reminder loop)."""
    now = now or utcnow()

    def missed(due: datetime | None, met: datetime | None, flagged: datetime | None) -> bool:
        if due is None:
            return False
        if met is not None:
            return met > due
        return flagged is not None or due < now

    first = Deadline(
        appeal.first_response_due_at,
        appeal.first_responded_at,
        missed(appeal.first_response_due_at, appeal.first_responded_at, appeal.overdue_at),
    )
    resolved = appeal.resolved_at if appeal.status != AppealStatus.REOPENED.value else None
    resolution = Deadline(
        appeal.resolution_due_at,
        resolved,
        missed(appeal.resolution_due_at, resolved, appeal.resolution_overdue_at),
    )
    return first, resolution


@dataclass(frozen=True, slots=True)
class CaseActions:
    """The case-desk actions the console offers on an appeal, for its status and the viewer's rights
    (the core checks them again: this only keeps buttons that would be refused off the page)."""

    accept: bool = False
    assign: bool = False
    progress: bool = False
    done: bool = False
    return_: bool = False
    as_staff: bool = False  # 退回 reads 不予受理 for staff, 退回社区 for a handler's person

    @property
    def any(self) -> bool:
        return self.accept or self.assign or self.progress or self.done or self.return_


def case_actions(appeal: Appeal, *, staff: bool, handles: bool) -> CaseActions:
    """What a viewer may do: community staff everything, a handler's person all but 派单."""
    if not (staff or handles):
        return CaseActions()
    status = AppealStatus(appeal.status)
    open_ = status in OPEN or status is AppealStatus.REOPENED
    return CaseActions(
        accept=status in TO_ACCEPT,
        assign=staff and open_,
        progress=open_,
        done=open_,
        return_=open_,
        as_staff=staff,
    )


async def handler(session: AsyncSession, handler_id: int) -> Handler | None:
    return await session.get(Handler, handler_id)


async def handler_communities(session: AsyncSession, handler_ids: Sequence[int]) -> list[int]:
    """The communities of ``handler_ids``."""
    if not handler_ids:
        return []
    rows = await session.execute(
        select(Handler.community_id).where(Handler.id.in_(list(handler_ids))).distinct()
    )
    return [int(r[0]) for r in rows]


def contact_hidden(appeal: Appeal, community_ids: Sequence[int], handler: Handler | None) -> bool:
    """Whether the viewer reads the appeal without the resident's contact, flat and name: a handler's
    person (not the community's staff) whose handler does not see residents' contacts (a department calls
    back through the community)."""
    return appeal.community_id not in community_ids and (handler is None or not handler.sees_contact)


async def handlers_seeing_contact(session: AsyncSession, handler_ids: Sequence[int]) -> set[int]:
    """Those of ``handler_ids`` whose people may see residents' contacts."""
    if not handler_ids:
        return set()
    rows = await session.execute(
        select(Handler.id).where(Handler.id.in_(handler_ids), Handler.sees_contact.is_(True))
    )
    return {int(r[0]) for r in rows}
