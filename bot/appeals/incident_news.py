"""The news of an area-wide incident's case (:mod:`bot.appeals.incidents`): its status changes told in
each residents' group concerned once, and privately to each resident the bot can reach, instead of a line
per resident in the groups; the incident kept up to date with its case (what residents are told while it
is open; resolved with it). Called by :func:`bot.appeals.status.change_status` for every change."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.appeals.notify import queue_notify, recipients, status_message
from bot.db.models import OPEN_STATUSES, Appeal, AppealEvent, AppealStatus, utcnow
from bot.db.repository.appeal_records import AppealRecords
from bot.db.repository.incidents import IncidentRepository
from bot.dialog.slots import mask_personal
from bot.dialog.spec import Responses
from bot.message import ChatType, Reply

_OPEN = frozenset(s.value for s in OPEN_STATUSES)


async def queue_incident_news(
    session: AsyncSession,
    appeal: Appeal,
    event: AppealEvent,
    words: Responses,
    *,
    skip: set[int] | None = None,
) -> bool:
    """When ``appeal`` carries an incident's case: queue the news of its status ``event`` — one message in
    each residents' group concerned (the community's groups and wherever a supporter joined from), and one
    private message to each resident who has a private chat with the bot (the reporter's with the rating
    buttons) — and keep the incident up to date (its known status; resolved with its case). False when the
    appeal is no incident's case (the caller tells everyone as usual)."""
    incidents = IncidentRepository(session)
    incident = await incidents.by_case(appeal.id)
    if incident is None:
        return False
    assert event.status_to is not None and event.id is not None
    status = AppealStatus(event.status_to)
    note = mask_personal(event.note or "")
    if status in _OPEN_NEWS and note:
        incident.restore_text = note[:200]
    if status.value not in _OPEN and incident.status == "open":
        await incidents.close(incident.id, utcnow())
    records = AppealRecords(session)
    line = words.get(f"progress.lines.{status.value}")
    note_line = words.get("incident.note_line", note=note) if note else ""
    groups: dict[tuple[str, str], Any] = {}
    for chat in await incidents.resident_groups(appeal.community_id):
        groups[(chat.platform, chat.external_id)] = chat.external_id
    people = await recipients(session, appeal)
    broadcast = status is not AppealStatus.WITHDRAWN
    if not broadcast:
        # The reporter took their own report back: the incident ends (the next reports may open a new
        # one), and only they hear of it — the neighbours' problem is not withdrawn.
        people, groups = [p for p in people if p.role == "reporter"], {}
    reporter_name = next((p.name for p in people if p.role == "reporter"), "")
    for who in people:
        if skip and who.person_id in skip:
            continue
        if who.chat_type == ChatType.GROUP.value:
            if broadcast:
                groups.setdefault((who.platform, who.chat_id), who.chat_id)
            if broadcast and not await records.has_private_chat(who.platform, who.external_id):
                continue  # the group's one message tells them
        key = f"{appeal.public_id}:incident:{event.id}:{who.person_id}"
        if who.role == "reporter":
            alone = replace(who, chat_id=who.external_id, chat_type=ChatType.PRIVATE.value)
            reply = status_message(appeal, status, event.note, alone, words, reporter_name)
        else:
            text = words.get(
                "incident.private_status",
                label=incident.label,
                public_id=appeal.public_id,
                status=status.label,
                note_line=note_line,
            )
            reply = Reply(text, chat_id=who.external_id, recipient_id=who.external_id)
        queue_notify(session, appeal, who.platform, reply, key, role=who.role, person_id=who.person_id)
    text = words.get(
        "incident.group_status",
        label=incident.label,
        public_id=appeal.public_id,
        line=line,
        note_line=note_line,
    )
    for (platform, chat_id), _ in groups.items():
        reply = Reply(text, chat_id=chat_id, recipient_id=chat_id)
        key = f"{appeal.public_id}:incident:{event.id}:group:{platform}:{chat_id}"
        queue_notify(session, appeal, platform, reply, key, role="group", person_id=None, group=True)
    return True


_OPEN_NEWS = frozenset({AppealStatus.ACCEPTED, AppealStatus.ASSIGNED, AppealStatus.IN_PROGRESS})
