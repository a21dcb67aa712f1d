"""Status changes, staff flags and the first-response SLA.

A status change is one transaction: the appeal's new status, an ``appeal_event`` row, and one outbox row
per resident to tell (see :mod:`bot.appeals.notify`). Backends report out of order and repeat themselves,
so :func:`may_change` only lets a case move forward — except that a finished case may be reopened.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Appeal, AppealEvent, AppealStatus, OutboxEntry, utcnow
from bot.db.repository.appeal_records import AppealRecords
from bot.db.repository.instance import external_key
from bot.dialog.spec import Responses

TERMINAL = frozenset({AppealStatus.RESOLVED, AppealStatus.REJECTED, AppealStatus.CLOSED})
# The resident took it back: final, whatever a backend reports afterwards.
WITHDRAWN_FINAL = AppealStatus.WITHDRAWN
_RANK = {
    AppealStatus.SUBMITTED: 0,
    AppealStatus.ACCEPTED: 1,
    AppealStatus.REOPENED: 1,
    AppealStatus.ASSIGNED: 2,
    AppealStatus.IN_PROGRESS: 3,
    AppealStatus.RESOLVED: 4,
    AppealStatus.REJECTED: 4,
    AppealStatus.CLOSED: 5,
    AppealStatus.WITHDRAWN: 5,
}

# Why an appeal is on the staff's list (``appeal.flag_reason``).
FLAG_DELIVERY_FAILED = "delivery_failed"
FLAG_BACKEND_REJECTED = "backend_rejected"
FLAG_NO_BACKEND = "no_backend"
FLAG_OVERDUE = "overdue"
FLAG_RESOLUTION_OVERDUE = "resolution_overdue"
FLAG_NOTIFY_FAILED = "notify_failed"


def may_change(current: AppealStatus, new: AppealStatus) -> bool:
    """Whether a case at ``current`` may move to ``new``.

    Forward only while open (a late "accepted" after "in progress" is stale); a finished case may go
    anywhere but back to "submitted" (the backend reopened or corrected it); a case the resident reopened
    takes any status the backend reports next; a case the resident withdrew stays withdrawn.
    """
    if new is current or new is AppealStatus.SUBMITTED or current is WITHDRAWN_FINAL:
        return False
    if current in TERMINAL or current is AppealStatus.REOPENED:
        return True
    return _RANK[new] > _RANK[current]


async def lock_appeal(session: AsyncSession, appeal_id: int) -> Appeal | None:
    """Load an appeal for changing it, serialized against other processes changing it.

    PostgreSQL: ``SELECT … FOR UPDATE``. SQLite has no row locks; a write first takes the database's
    write lock, so the read that follows cannot be overtaken by another writer (which would otherwise
    fail this transaction with "database is locked" when it writes).
    """
    return await AppealRecords(session).lock(appeal_id)


async def change_status(
    session: AsyncSession,
    appeal: Appeal,
    new: AppealStatus,
    *,
    note: str,
    actor: str,
    words: Responses,
    source_event_id: str | None = None,
    payload: dict[str, Any] | None = None,
    notify_except: Iterable[int] = (),
    again: bool = False,
) -> AppealEvent | None:
    """Move ``appeal`` (loaded with :func:`lock_appeal`) to ``new`` and queue the notifications.

    ``again``: a step staff take once more (a second progress note while 处理中) is recorded and told
    like a change. Returns the status event, or None when the change is not allowed (nothing is written
    then).
    """
    from bot.appeals.incident_news import queue_incident_news
    from bot.appeals.notify import queue_status_notifications

    current = AppealStatus(appeal.status)
    repeated = again and new is current and new is not AppealStatus.SUBMITTED
    if not repeated and not may_change(current, new):
        return None
    now = utcnow()
    appeal.status = new.value
    # Reopening and the resident's own withdrawal are no answer from the community.
    answered = new not in (AppealStatus.REOPENED, AppealStatus.WITHDRAWN)
    if answered and appeal.first_responded_at is None:
        appeal.first_responded_at = now
    if new is AppealStatus.RESOLVED:
        appeal.rating_requested_at = now
        appeal.resolved_at = now
    event = AppealEvent(
        appeal_id=appeal.id,
        kind="status",
        status_from=current.value,
        status_to=new.value,
        note=note,
        actor=actor,
        payload=payload or {},
        source_event_id=source_event_id,
    )
    session.add(event)
    await session.flush()
    skip = set(notify_except)
    if not await queue_incident_news(session, appeal, event, words, skip=skip):
        await queue_status_notifications(session, appeal, event, words, skip=skip)
    return event


def record_note(
    session: AsyncSession,
    appeal: Appeal,
    *,
    kind: str,
    note: str,
    actor: str,
    source_event_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> AppealEvent:
    """An event that is not a status change (a backend note, a rating, a supporter joining)."""
    event = AppealEvent(
        appeal_id=appeal.id,
        kind=kind,
        note=note,
        actor=actor,
        payload=payload or {},
        source_event_id=source_event_id,
    )
    session.add(event)
    return event


def queue_for_city(
    session: AsyncSession, appeal: Appeal, action: str, key: str, payload: dict[str, Any]
) -> bool:
    """An outbox row telling the city's case backend of a change to ``appeal`` (a rating, a comment, a
    supporter) — only for an appeal that went to the city; the community's own cases have nobody to tell
    there. True when queued."""
    if appeal.destination != "city":
        return False
    qualified = external_key(session, key)  # the backend sees it: unique across deployments
    session.add(OutboxEntry(appeal_id=appeal.id, action=action, idempotency_key=qualified, payload=payload))
    return True


def flag(session: AsyncSession, appeal: Appeal, reason: str, note: str) -> bool:
    """Put ``appeal`` on the staff's list for ``reason`` (once per reason in a row). True if newly flagged."""
    if appeal.flagged_at is not None and appeal.flag_reason == reason:
        return False
    appeal.flagged_at = appeal.flagged_at or utcnow()
    appeal.flag_reason = reason
    record_note(session, appeal, kind="flag", note=note, actor="huiyin", payload={"reason": reason})
    return True


async def flag_overdue(session: AsyncSession, now: datetime | None = None) -> list[str]:
    """Flag every open appeal whose first response is overdue, once; returns their public ids.

    One ``UPDATE … RETURNING`` marks them, so two workers running this at once flag each appeal once.
    """
    now = now or utcnow()
    rows = await AppealRecords(session).mark_overdue(now, FLAG_OVERDUE)
    for appeal_id, _public_id, due in rows:
        late = now - due if due else timedelta(0)
        session.add(
            AppealEvent(
                appeal_id=appeal_id,
                kind="overdue",
                note=f"首次响应已超时（超出约{max(1, int(late.total_seconds() // 60))}分钟），请工作人员跟进",
                actor="huiyin",
                payload={"due_at": due.isoformat() if due else None},
            )
        )
    return [public_id for _id, public_id, _due in rows]


async def staff_attention(session: AsyncSession, limit: int = 100) -> list[Appeal]:
    """Appeals flagged to staff (delivery failing, overdue, rejected by the backend …), oldest first."""
    return await AppealRecords(session).flagged(limit)


async def latest_status_note(session: AsyncSession, appeal_id: int) -> str:
    """The note of the appeal's latest status change ("维修师傅已上门"), for the resident's progress list."""
    note = await AppealRecords(session).latest_status_note(appeal_id)
    return str(note or "")
