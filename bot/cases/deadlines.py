"""Deadlines that act (监管): reminders before an appeal's deadlines, escalation when one passes, and a
daily digest of the overdue appeals to each community's staff chats.

Every appeal gets two deadlines when it is filed (:mod:`bot.appeals.filing`, from the community's
``case_desk``): a first response (``first_response_due_at``) and a resolution (``resolution_due_at``).
The forwarder's periodic SLA check runs :meth:`Deadlines.run`, which for every open appeal:

1. ``remind_before`` ahead of the first-response deadline, reminds whoever has it — its handler's chat,
   else (no handler, or a handler with no chat) the community's staff chats;
2. once that deadline passes (:func:`bot.appeals.status.flag_overdue` flags it), escalates to the staff
   chats and tells the resident, and the building leader who relayed it, that the desk was pressed;
3. the same for the resolution deadline: a reminder ahead of it, and when it passes the appeal is flagged
   (``resolution_overdue``), escalated, and the resident hears what happens next;
4. in the hour ``digest_hour`` (local time), once a day, sends each staff chat of a community with
   overdue appeals one message listing them (nothing when none is overdue).

Several workers may run the check at once. Each step is marked on the appeal by one conditional
``UPDATE … RETURNING`` (``response_reminded_at``, ``overdue_at``, ``resolution_reminded_at``,
``resolution_overdue_at``), so exactly one worker takes it, and its messages are outbox rows written in the
same transaction; the digest's rows are keyed by community, day and chat and inserted once. A reminder
is skipped when its deadline has passed already (the escalation says more), and ``remind_before_hours:
0`` turns reminders off. Every function takes ``now``, the clock it acts on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from bot.appeals.notify import public_summary, queue_deadline_notifications
from bot.appeals.status import FLAG_RESOLUTION_OVERDUE, flag, flag_overdue
from bot.cases.desk import CaseDesk
from bot.cases.notices import tell_handler, tell_staff
from bot.db.models import Appeal, AppealStatus, utcnow
from bot.db.repository.cases import CaseRepository
from bot.db.repository.deadlines import DeadlineRecords
from bot.db.session import Database
from bot.message import Reply

log = structlog.get_logger(__name__)

DIGEST_ITEMS = 20
"""At most this many appeals are listed in a digest; the rest are counted."""


@dataclass
class DeadlineReport:
    """What one check did: the public ids of the appeals reminded and escalated, and the codes of the
    communities whose digest went out."""

    response_reminded: list[str] = field(default_factory=list)
    response_overdue: list[str] = field(default_factory=list)
    resolution_reminded: list[str] = field(default_factory=list)
    resolution_overdue: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)


class Deadlines:
    def __init__(self, cases: CaseDesk) -> None:
        self.cases = cases
        self.words = cases.words
        self._tz = ZoneInfo(cases.settings.timezone)

    async def run(self, db: Database, now: datetime | None = None) -> DeadlineReport:
        """Every step, each in its own transaction (so that one failing does not hold up the others)."""
        now = now or utcnow()
        report = DeadlineReport()
        steps = (
            ("response_reminded", self.remind_response),
            ("response_overdue", self.escalate_response),
            ("resolution_reminded", self.remind_resolution),
            ("resolution_overdue", self.escalate_resolution),
            ("digests", self.digest),
        )
        for name, step in steps:
            async with db.unit_of_work() as uow:
                done = await step(uow.session, now)
                await uow.commit()
            setattr(report, name, done)
        return report

    # --- the steps -----------------------------------------------------------------------------------
    async def remind_response(self, session: AsyncSession, now: datetime) -> list[str]:
        """Remind whoever has an unanswered appeal that its first-response deadline is near."""
        records = DeadlineRecords(session)
        ids = await records.mark_response_reminders(now, await self._leads(records))
        return await self._send_reminders(session, await records.appeals(ids), now, resolution=False)

    async def escalate_response(self, session: AsyncSession, now: datetime) -> list[str]:
        """Flag the appeals whose first response is overdue (once), tell the staff chats and the resident."""
        flagged = await flag_overdue(session, now)
        appeals = await DeadlineRecords(session).appeals_by_public_ids(flagged)
        for appeal in appeals:
            hours = self._hours(appeal.created_at, appeal.first_response_due_at)
            await tell_staff(
                session,
                appeal,
                self.words.get(
                    "deadline.staff_response_overdue",
                    public_id=appeal.public_id,
                    hours=hours,
                    summary=public_summary(appeal),
                    handler=await self._handler_name(session, appeal),
                ),
                occasion="overdue:response",
            )
            await queue_deadline_notifications(
                session, appeal, "response_overdue", self.words, hours=str(hours)
            )
        return flagged

    async def remind_resolution(self, session: AsyncSession, now: datetime) -> list[str]:
        """Remind whoever has an open appeal that its resolution deadline is near."""
        records = DeadlineRecords(session)
        ids = await records.mark_resolution_reminders(now, await self._leads(records))
        return await self._send_reminders(session, await records.appeals(ids), now, resolution=True)

    async def _send_reminders(
        self, session: AsyncSession, appeals: list[Appeal], now: datetime, *, resolution: bool
    ) -> list[str]:
        """The reminder of each appeal's (first-response or resolution) deadline, to whoever has it."""
        which = "resolution" if resolution else "response"
        for appeal in appeals:
            due = appeal.resolution_due_at if resolution else appeal.first_response_due_at
            assert due is not None
            text = self.words.get(
                f"deadline.{which}_soon",
                public_id=appeal.public_id,
                due=self._local(due),
                left=self.duration(due - now),
                summary=public_summary(appeal),
            )
            await self._remind(session, appeal, text, occasion=f"remind:{which}")
        return [a.public_id for a in appeals]

    async def escalate_resolution(self, session: AsyncSession, now: datetime) -> list[str]:
        """Mark and flag the open appeals past their resolution deadline (once), tell the staff chats and
        the resident."""
        records = DeadlineRecords(session)
        appeals = await records.appeals(await records.mark_resolution_overdue(now))
        for appeal in appeals:
            assert appeal.resolution_due_at is not None
            due = self._local(appeal.resolution_due_at)
            late = self.duration(now - appeal.resolution_due_at)
            flag(session, appeal, FLAG_RESOLUTION_OVERDUE, f"已过办结时限（{due}，超出约{late}），请督办")
            await tell_staff(
                session,
                appeal,
                self.words.get(
                    "deadline.staff_resolution_overdue",
                    public_id=appeal.public_id,
                    due=due,
                    summary=public_summary(appeal),
                    status=AppealStatus(appeal.status).label,
                    handler=await self._handler_name(session, appeal),
                ),
                occasion="overdue:resolution",
            )
            await queue_deadline_notifications(session, appeal, "resolution_overdue", self.words, due=due)
        return [a.public_id for a in appeals]

    async def digest(self, session: AsyncSession, now: datetime) -> list[str]:
        """In each community's ``digest_hour`` (local time), once a day: one message to each of its staff
        chats listing its overdue appeals. Returns the codes of the communities whose digest was queued."""
        records = DeadlineRecords(session)
        cases = CaseRepository(session)
        local = now.astimezone(self._tz)
        by_community: dict[int, list[tuple[Appeal, str | None]]] = defaultdict(list)
        for appeal, handler in await records.overdue_appeals(now):
            by_community[appeal.community_id].append((appeal, handler))
        sent: list[str] = []
        for community_id, overdue in by_community.items():
            community = await cases.community(community_id)
            if community is None or local.hour != self.cases.config(community.code).digest_hour:
                continue
            chats = await cases.staff_chats(community_id)
            keys = {c.id: f"digest:{community.code}:{local:%Y%m%d}:{c.id}"[:100] for c in chats}
            taken = await records.queued(list(keys.values()))
            waiting = [c for c in chats if keys[c.id] not in taken]
            if not waiting:
                continue
            text = self.digest_text(community.name, overdue, now)
            oldest = overdue[0][0]
            rows = []
            queued_at = utcnow()  # the outbox's clock is the real one: the row is due at once
            for chat in waiting:
                reply = Reply(text, chat_id=chat.external_id, recipient_id=chat.external_id)
                rows.append(
                    {
                        "appeal_id": oldest.id,
                        "action": "notify",
                        "platform": chat.platform,
                        "idempotency_key": keys[chat.id],
                        "payload": {"reply": reply.to_dict(), "role": chat.purpose, "person_id": None},
                        "attempts": 0,
                        "next_attempt_at": queued_at,
                        "created_at": queued_at,
                    }
                )
            if await records.queue_once(rows):
                sent.append(community.code)
        return sent

    # --- texts ---------------------------------------------------------------------------------------
    def digest_text(self, community: str, overdue: list[tuple[Appeal, str | None]], now: datetime) -> str:
        w = self.words
        lines = [w.get("deadline.digest_header", community=community, count=len(overdue))]
        for appeal, handler in overdue[:DIGEST_ITEMS]:
            lines.append(
                w.get(
                    "deadline.digest_item",
                    public_id=appeal.public_id,
                    status=AppealStatus(appeal.status).label,
                    summary=public_summary(appeal),
                    late=self._lateness(appeal, now),
                    handler=handler or w.get("deadline.unassigned"),
                )
            )
        if len(overdue) > DIGEST_ITEMS:
            lines.append(w.get("deadline.digest_more", count=len(overdue) - DIGEST_ITEMS))
        lines.append(w.get("deadline.digest_footer"))
        return "\n".join(lines)

    def duration(self, span: timedelta) -> str:
        """``span`` in words: 2天3小时, 5小时, 40分钟 (at least a minute)."""
        minutes = max(1, int(span.total_seconds() // 60))
        days, rest = divmod(minutes, 24 * 60)
        hours = rest // 60
        if days and hours:
            return self.words.get("deadline.days_hours", days=days, hours=hours)
        if days:
            return self.words.get("deadline.days", days=days)
        if hours:
            return self.words.get("deadline.hours", hours=hours)
        return self.words.get("deadline.minutes", minutes=minutes)

    def _lateness(self, appeal: Appeal, now: datetime) -> str:
        """How late the appeal is: past its resolution deadline, else past its first-response one."""
        if appeal.resolution_due_at is not None and appeal.resolution_due_at < now:
            return self.words.get(
                "deadline.late_resolution", late=self.duration(now - appeal.resolution_due_at)
            )
        assert appeal.first_response_due_at is not None
        return self.words.get(
            "deadline.late_response", late=self.duration(now - appeal.first_response_due_at)
        )

    def _local(self, moment: datetime) -> str:
        return moment.astimezone(self._tz).strftime("%m-%d %H:%M")

    @staticmethod
    def _hours(filed: datetime, due: datetime | None) -> int:
        """The first-response time the appeal was given, in whole hours."""
        if due is None:
            return 0
        return max(1, round((due - filed).total_seconds() / 3600))

    # --- internals -----------------------------------------------------------------------------------
    async def _leads(self, records: DeadlineRecords) -> dict[int, timedelta]:
        """Each community with open appeals → how long before a deadline its reminders go out."""
        return {
            community_id: self.cases.config(code).remind_before
            for community_id, code in await records.communities_with_open_appeals()
        }

    async def _remind(self, session: AsyncSession, appeal: Appeal, text: str, *, occasion: str) -> None:
        """To the handler's chats; to the staff chats when nobody handles it or its handler has none."""
        told = await tell_handler(session, appeal, appeal.handler_id, text, occasion=occasion)
        if told == 0:
            told = await tell_staff(session, appeal, text, occasion=occasion)
        if told == 0:
            log.info("deadline reminder has no chat to go to", public_id=appeal.public_id, occasion=occasion)

    async def _handler_name(self, session: AsyncSession, appeal: Appeal) -> str:
        if appeal.handler_id is None:
            return self.words.get("deadline.unassigned")
        handler = await CaseRepository(session).handler(appeal.handler_id)
        return handler.name if handler is not None else self.words.get("deadline.unassigned")
