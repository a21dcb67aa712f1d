"""Who hears about a status change, and what they read.

Everyone connected to the appeal hears about it where they are: the resident who reported it, in the chat
they reported from; the building leader who relayed it, privately; residents who joined it as
supporters, where they joined. In a group the line is short and carries no personal data — no notes, no
address, no description (a note may name a flat or a phone number); in a private chat it has the details.
A supporter is a neighbour, not the reporter: wherever they are, they read only the public progress (the
status, and in private the problem with phones and room numbers masked), never the notes.
When the case is resolved, the reporter's message asks for a rating with three buttons.
When a deadline is missed (:mod:`bot.cases.deadlines`), the reporter and the relaying building leader
hear that the desk has been pressed to act, in the same way: short in a group, with the details privately.

The messages are not sent here: each becomes an outbox row (action ``notify``, with its platform), written
in the same transaction as the status change and delivered by the forwarder through the platform's
:class:`~bot.outbound.Sender`. So a crash cannot lose a notification, and a redelivery of the status
change (same backend event) cannot send it twice (the key includes the status event's id).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    Appeal,
    AppealEvent,
    AppealStatus,
    OutboxEntry,
    Person,
)
from bot.db.repository.appeal_records import AppealRecords
from bot.dialog.slots import mask_personal
from bot.dialog.spec import Responses
from bot.message import Button, ChatType, Reply, Target

RATINGS = ("satisfied", "basic", "unsatisfied")
SUMMARY_CHARS = 30


@dataclass(frozen=True, slots=True)
class Recipient:
    person_id: int
    role: str  # reporter | relayer | supporter
    platform: str
    chat_id: str
    chat_type: str
    external_id: str
    name: str


def rating_buttons(words: Responses, public_id: str) -> tuple[Button, ...]:
    return tuple(Button(words.get(f"progress.rate_buttons.{r}"), f"/rate {public_id} {r}") for r in RATINGS)


def summary_of(appeal: Appeal) -> str:
    text = appeal.description
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def public_summary(appeal: Appeal) -> str:
    """The summary a neighbour may read: phones and room numbers masked (before shortening, so that no
    cut-off number escapes the mask)."""
    text = mask_personal(appeal.description)
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


async def _identity(session: AsyncSession, person_id: int, platform: str) -> tuple[str, str] | None:
    row = await AppealRecords(session).identity_on(person_id, platform)
    return (str(row[0]), str(row[1] or "")) if row else None


async def recipients(session: AsyncSession, appeal: Appeal) -> list[Recipient]:
    """Everyone to tell about ``appeal``, once each, where each of them is."""
    found: list[Recipient] = []
    seen: set[int] = set()

    async def add(person_id: int, role: str, platform: str, chat_id: str | None, chat_type: str) -> None:
        if person_id in seen:
            return
        identity = await _identity(session, person_id, platform)
        if identity is None:  # e.g. a neighbour a building leader reported for, with no chat of their own
            return
        external_id, name = identity
        seen.add(person_id)
        found.append(
            Recipient(person_id, role, platform, chat_id or external_id, chat_type, external_id, name)
        )

    await add(
        appeal.reporter_id, "reporter", appeal.origin_platform, appeal.origin_chat, appeal.origin_chat_type
    )
    if appeal.relayed_by_id is not None:
        await add(appeal.relayed_by_id, "relayer", appeal.origin_platform, None, ChatType.PRIVATE.value)
    for s in await AppealRecords(session).supporters_of(appeal.id):
        await add(s.person_id, "supporter", s.origin_platform, s.origin_chat, s.origin_chat_type)
    return found


def status_message(
    appeal: Appeal,
    status: AppealStatus,
    note: str,
    who: Recipient,
    words: Responses,
    reporter_name: str,
    *,
    details_in_private: bool = False,
) -> Reply:
    """The message ``who`` gets about ``appeal`` reaching ``status``. ``details_in_private``: the
    reporter's group line only points to the private message that carries the details."""
    line = words.get(f"progress.lines.{status.value}")
    ask_rating = status is AppealStatus.RESOLVED and who.role == "reporter" and not details_in_private
    buttons = rating_buttons(words, appeal.public_id) if ask_rating else ()
    if who.role == "relayer":
        text = words.get(
            "progress.relayer",
            reporter=reporter_name or "居民",
            public_id=appeal.public_id,
            status=status.label,
            summary=summary_of(appeal),
            note_line=words.get("progress.note_line", note=note) if note else "",
        )
        return Reply(text, chat_id=who.external_id, recipient_id=who.external_id, target=Target.PRIVATE)
    # A supporter is a neighbour of the reporter: only the public progress (the status, the problem with
    # phones and rooms masked), never the handling notes, which may name the reporter, their flat, a phone.
    reporter = who.role == "reporter"
    if who.chat_type == ChatType.GROUP.value:
        key = "progress.group" if reporter else "progress.group_supporter"
        text = words.get(key, name=who.name or "您", public_id=appeal.public_id, line=line)
        if details_in_private:
            text = f"{text}{words.get('progress.group_details_sent')}"
        elif reporter and note and status is not AppealStatus.RESOLVED:
            text = f"{text}{words.get('progress.group_details')}"
        if ask_rating:
            text = f"{text}\n{words.get('progress.rate_ask')}"
        return Reply(text, chat_id=who.chat_id, recipient_id=who.external_id, buttons=buttons)
    key = "progress.private" if reporter else "progress.private_supporter"
    text = words.get(
        key,
        public_id=appeal.public_id,
        status=status.label,
        summary=summary_of(appeal) if reporter else public_summary(appeal),
        note_line=words.get("progress.note_line", note=note) if note and reporter else "",
    )
    if ask_rating:
        text = f"{text}\n{words.get('progress.rate_ask')}"
    return Reply(text, chat_id=who.chat_id, recipient_id=who.external_id, buttons=buttons)


DEADLINE_ROLES = ("reporter", "relayer")
"""Who hears that an appeal missed a deadline: the resident who reported it and the building leader who
relayed it (supporters hear its progress, not the desk's delays)."""


async def _reporter_name(session: AsyncSession, appeal: Appeal, people: list[Recipient]) -> str:
    name = next((p.name for p in people if p.role == "reporter"), "")
    if not name:  # e.g. a neighbour a building leader relayed for: no chat, but a name
        reporter = await session.get(Person, appeal.reporter_id)
        name = reporter.display_name if reporter is not None else ""
    return name


def deadline_message(
    appeal: Appeal, kind: str, who: Recipient, words: Responses, reporter_name: str, **values: str
) -> Reply:
    """The message ``who`` gets when ``appeal`` missed a deadline (``kind``: ``response_overdue`` or
    ``resolution_overdue``, wordings under ``deadline.resident.<kind>``). In a group: short, no details;
    privately: the problem as the resident wrote it. ``values`` fill the wording (``hours``, ``due``)."""
    base = f"deadline.resident.{kind}"
    fill = {"public_id": appeal.public_id, "status": AppealStatus(appeal.status).label, **values}
    if who.role == "relayer":
        text = words.get(
            f"{base}.relayer", reporter=reporter_name or "居民", summary=summary_of(appeal), **fill
        )
        return Reply(text, chat_id=who.external_id, recipient_id=who.external_id, target=Target.PRIVATE)
    if who.chat_type == ChatType.GROUP.value:
        text = words.get(f"{base}.group", name=who.name or "您", **fill)
        return Reply(text, chat_id=who.chat_id, recipient_id=who.external_id)
    text = words.get(f"{base}.private", summary=summary_of(appeal), **fill)
    return Reply(text, chat_id=who.chat_id, recipient_id=who.external_id)


async def queue_deadline_notifications(
    session: AsyncSession, appeal: Appeal, kind: str, words: Responses, **values: str
) -> int:
    """One outbox row for the reporter and one for the relaying building leader about ``appeal`` missing
    a deadline (see :func:`deadline_message`); the key names the deadline, so it is told once. Returns
    how many were queued."""
    people = [p for p in await recipients(session, appeal) if p.role in DEADLINE_ROLES]
    reporter_name = await _reporter_name(session, appeal, people)
    for who in people:
        reply = deadline_message(appeal, kind, who, words, reporter_name, **values)
        key = f"{appeal.public_id}:deadline:{kind}:{who.person_id}"
        queue_for(session, appeal, who, reply, key)
    return len(people)


def queue_notify(
    session: AsyncSession,
    appeal: Appeal,
    platform: str,
    reply: Reply,
    key: str,
    *,
    role: str,
    person_id: int | None,
    group: bool = False,
) -> None:
    """One outbox row (action ``notify``) that sends ``reply`` on ``platform``; ``key`` (the idempotency
    key, cut to the column's 100 characters) makes a repeated occasion send nothing twice. ``group``: it
    goes into a residents' group, so nothing personal may be in it (masked here, whatever the caller
    wrote)."""
    if group:
        reply = replace(reply, text=mask_personal(reply.text))
    session.add(
        OutboxEntry(
            appeal_id=appeal.id,
            action="notify",
            platform=platform,
            idempotency_key=key[:100],
            payload={"reply": reply.to_dict(), "role": role, "person_id": person_id},
        )
    )


def queue_for(session: AsyncSession, appeal: Appeal, who: Recipient, reply: Reply, key: str) -> None:
    """:func:`queue_notify` of ``reply`` to ``who``: masked when it goes into their residents' group."""
    queue_notify(
        session,
        appeal,
        who.platform,
        reply,
        key,
        role=who.role,
        person_id=who.person_id,
        group=reply.chat_id == who.chat_id and who.chat_type == ChatType.GROUP.value,
    )


async def queue_status_notifications(
    session: AsyncSession,
    appeal: Appeal,
    event: AppealEvent,
    words: Responses,
    *,
    skip: set[int] | None = None,
) -> int:
    """One outbox row per person to tell about status ``event``; returns how many were queued."""
    assert event.status_to is not None and event.id is not None
    status = AppealStatus(event.status_to)
    people = await recipients(session, appeal)
    reporter_name = await _reporter_name(session, appeal, people)
    queued = 0
    records = AppealRecords(session)
    for who in people:
        if skip and who.person_id in skip:
            continue
        # A reporter who reported in a group and has a private chat with the bot: a short line in the
        # group, the details (the note staff wrote, the rating buttons) in private.
        private = (
            who.role == "reporter"
            and who.chat_type == ChatType.GROUP.value
            and await records.has_private_chat(who.platform, who.external_id)
        )
        replies = [
            (
                status_message(
                    appeal, status, event.note, who, words, reporter_name, details_in_private=private
                ),
                "",
            )
        ]
        if private:
            alone = replace(who, chat_id=who.external_id, chat_type=ChatType.PRIVATE.value)
            replies.append(
                (status_message(appeal, status, event.note, alone, words, reporter_name), ":private")
            )
        for reply, suffix in replies:
            key = f"{appeal.public_id}:notify:{event.id}:{who.person_id}{suffix}"
            queue_for(session, appeal, who, reply, key)
            queued += 1
    return queued
