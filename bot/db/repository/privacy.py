"""A resident's personal data as one whole: what is held about a person (to show it to them) and its
erasure at their request.

Erasure keeps the statistics — an appeal's community, category, matter, party, building, status, times and
rating — and removes everything that identifies or describes the person: their phone and names, their
platform identities and private chats, every conversation and transcript of theirs (with the staff notes
and handoffs on them), the words, flat, place and photos of their appeals, resident comments, the
texts of the notifications queued or sent about their appeals, and their support of other appeals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update

from bot.db.models import (
    Appeal,
    AppealEvent,
    AppealSupporter,
    Chat,
    Conversation,
    Handoff,
    HandoffNote,
    OutboxEntry,
    Person,
    PlatformIdentity,
    RoleGrant,
    StaffAccount,
    TranscriptMessage,
)
from bot.db.repository.base import RepositoryBase

ERASED_DESCRIPTION = "（居民已要求删除个人信息）"
ERASED_CHAT = "erased"


@dataclass(frozen=True, slots=True)
class HeldAppeal:
    public_id: str
    status: str
    created_at: datetime
    description: str
    phone: str | None
    reporter: bool  # False: an appeal the person supported (+1)


@dataclass(frozen=True, slots=True)
class HeldData:
    """What huiyin holds about one person, as they may ask to see it (``我的信息``)."""

    names: tuple[str, ...]
    phone: str | None
    consent_at: datetime | None
    platforms: tuple[str, ...]
    messages: int  # transcript lines of their conversations
    appeals: tuple[HeldAppeal, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Erased:
    """What an erasure removed: counted for the confirmation and the log (never the data itself)."""

    appeals: int
    conversations: int
    messages: int
    conversation_keys: tuple[str, ...]  # their dialog states live in Redis too: the caller clears them


class PrivacyRepository(RepositoryBase):
    async def is_staff(self, person_id: int) -> bool:
        """Whether the person works with huiyin (a console account or a role beyond resident): their data
        is part of other people's cases, and is erased through the community, not by a chat command."""
        account = await self.session.scalar(
            select(StaffAccount.id).where(StaffAccount.person_id == person_id)
        )
        if account is not None:
            return True
        grant = await self.session.scalar(
            select(RoleGrant.id)
            .where(RoleGrant.person_id == person_id, RoleGrant.role != "resident")
            .limit(1)
        )
        return grant is not None

    async def held(self, person_id: int, *, limit: int = 20) -> HeldData | None:
        person = await self.session.get(Person, person_id)
        if person is None or person.erased_at is not None:
            return None
        identities = (
            await self.session.execute(
                select(PlatformIdentity.platform, PlatformIdentity.display_name).where(
                    PlatformIdentity.person_id == person_id
                )
            )
        ).all()
        names = tuple(dict.fromkeys(n for n in [person.display_name, *(i[1] for i in identities)] if n))
        messages = await self.session.scalar(
            select(func.count(TranscriptMessage.id))
            .join(Conversation, Conversation.id == TranscriptMessage.conversation_id)
            .where(Conversation.person_id == person_id)
        )
        own = (
            await self.session.execute(
                select(Appeal).where(Appeal.reporter_id == person_id).order_by(Appeal.id.desc()).limit(limit)
            )
        ).scalars()
        supported = (
            await self.session.execute(
                select(Appeal)
                .join(AppealSupporter, AppealSupporter.appeal_id == Appeal.id)
                .where(AppealSupporter.person_id == person_id, Appeal.reporter_id != person_id)
                .order_by(Appeal.id.desc())
                .limit(limit)
            )
        ).scalars()
        appeals = [
            HeldAppeal(a.public_id, a.status, a.created_at, a.description, a.contact_phone, True) for a in own
        ]
        appeals += [
            HeldAppeal(a.public_id, a.status, a.created_at, a.description, None, False) for a in supported
        ]
        return HeldData(
            names=names,
            phone=person.phone,
            consent_at=person.consent_at,
            platforms=tuple(sorted({i[0] for i in identities})),
            messages=int(messages or 0),
            appeals=tuple(appeals),
        )

    async def appeal_by_public_id(self, public_id: str) -> Appeal | None:
        return await self._first(select(Appeal).where(Appeal.public_id == public_id.strip().upper()))

    async def appeal_of(self, person_id: int, public_id: str) -> Appeal | None:
        """Appeal ``public_id`` when ``person_id`` filed it, or relayed it for a neighbour."""
        return await self._first(
            select(Appeal).where(
                Appeal.public_id == public_id.strip().upper(),
                or_(Appeal.reporter_id == person_id, Appeal.relayed_by_id == person_id),
            )
        )

    async def open_appeals_of(self, person_id: int, open_statuses: Sequence[str]) -> list[Appeal]:
        """The person's own appeals still being handled (withdrawn before their data is erased)."""
        rows = await self.session.execute(
            select(Appeal)
            .where(Appeal.reporter_id == person_id, Appeal.status.in_(list(open_statuses)))
            .with_for_update()
        )
        return list(rows.scalars())

    async def person_by_phone(self, phone: str) -> list[int]:
        """People whose saved phone, or an appeal's contact phone, is ``phone`` (for a request made by
        telephone to the community), however it was typed (137-0000-3333, +86 137 0000 3333)."""
        digits = "".join(ch for ch in phone if ch.isdigit())
        phone = digits[2:] if len(digits) == 13 and digits.startswith("86") else digits
        saved = (await self.session.execute(select(Person.id).where(Person.phone == phone))).scalars()
        filed = (
            await self.session.execute(select(Appeal.reporter_id).where(Appeal.contact_phone == phone))
        ).scalars()
        return sorted(set(saved) | set(filed))

    async def erase(self, person_id: int, now: datetime) -> Erased:
        """Remove the person's personal data (see the module's docstring), in the caller's transaction."""
        s = self.session
        conversations = (
            await s.execute(
                select(Conversation.id, Conversation.key).where(Conversation.person_id == person_id)
            )
        ).all()
        conversation_ids = [c[0] for c in conversations]
        messages = 0
        if conversation_ids:
            messages = int(
                await s.scalar(
                    select(func.count(TranscriptMessage.id)).where(
                        TranscriptMessage.conversation_id.in_(conversation_ids)
                    )
                )
                or 0
            )
        appeal_ids = list(
            (await s.execute(select(Appeal.id).where(Appeal.reporter_id == person_id))).scalars()
        )
        identities = [
            (platform, external_id)
            for platform, external_id in (
                await s.execute(
                    select(PlatformIdentity.platform, PlatformIdentity.external_id).where(
                        PlatformIdentity.person_id == person_id
                    )
                )
            ).all()
        ]
        private_chats = [external_id for _platform, external_id in identities]
        if appeal_ids:
            await self._run(
                update(Appeal)
                .where(Appeal.id.in_(appeal_ids))
                .values(
                    description=ERASED_DESCRIPTION,
                    unit=None,
                    room=None,
                    place=None,
                    location={},
                    photos=[],
                    contact_phone=None,
                    conversation_id=None,
                    personal_data_removed_at=now,
                )
            )
            if private_chats:
                await self._run(
                    update(Appeal)
                    .where(Appeal.id.in_(appeal_ids), Appeal.origin_chat.in_(private_chats))
                    .values(origin_chat=ERASED_CHAT)
                )
            # Notes staff wrote on the person's appeals may name their flat or phone; the resident's own
            # comments are their words.
            await self._run(
                update(AppealEvent).where(AppealEvent.appeal_id.in_(appeal_ids)).values(note="", payload={})
            )
            # What was sent about these appeals is kept as a fact, not as text; what is still to be sent
            # and quotes the resident (their comment, a notice with their words) is not sent.
            await self._run(
                update(OutboxEntry)
                .where(
                    OutboxEntry.appeal_id.in_(appeal_ids),
                    OutboxEntry.action != "create",
                    OutboxEntry.delivered_at.is_not(None),
                )
                .values(payload={}, last_error=None)
            )
            await self._run(
                delete(OutboxEntry).where(
                    OutboxEntry.appeal_id.in_(appeal_ids),
                    OutboxEntry.action.in_(["notify", "comment"]),
                    OutboxEntry.delivered_at.is_(None),
                )
            )
        # Messages about other appeals addressed to the person (their support of a neighbour's appeal).
        await self._forget_notifications_to(person_id)
        await self._run(delete(AppealSupporter).where(AppealSupporter.person_id == person_id))
        if conversation_ids:
            await self._run(
                update(Appeal)
                .where(Appeal.conversation_id.in_(conversation_ids))
                .values(conversation_id=None)
            )
            # Transcripts, handoffs and their notes go with the conversations (ON DELETE CASCADE); the
            # explicit delete of the lines also covers SQLite without foreign-key enforcement.
            await self._run(
                delete(TranscriptMessage).where(TranscriptMessage.conversation_id.in_(conversation_ids))
            )
            await self._delete_conversations(conversation_ids)
        if private_chats:
            await self._run(
                update(AppealSupporter)
                .where(AppealSupporter.origin_chat.in_(private_chats))
                .values(origin_chat=ERASED_CHAT)
            )
            # A private chat's id is the person's id on its platform.
            await self._run(
                delete(Chat).where(
                    Chat.chat_type == "private",
                    or_(*(and_(Chat.platform == p, Chat.external_id == e) for p, e in identities)),
                )
            )
        await self._run(delete(PlatformIdentity).where(PlatformIdentity.person_id == person_id))
        await self._run(
            update(Person)
            .where(Person.id == person_id)
            .values(display_name="", phone=None, consent_at=None, erased_at=now)
        )
        s.expire_all()
        return Erased(
            appeals=len(appeal_ids),
            conversations=len(conversation_ids),
            messages=messages,
            conversation_keys=tuple(c[1] for c in conversations),
        )

    async def _run(self, statement: Any) -> None:
        """A bulk UPDATE or DELETE; the session's objects are expired once the erasure is done."""
        await self.session.execute(statement.execution_options(synchronize_session=False))

    async def _forget_notifications_to(self, person_id: int) -> None:
        rows = (
            await self.session.execute(
                select(OutboxEntry.id, OutboxEntry.delivered_at).where(
                    OutboxEntry.action == "notify",
                    OutboxEntry.payload["person_id"].as_integer() == person_id,
                )
            )
        ).all()
        undelivered = [r[0] for r in rows if r[1] is None]
        delivered = [r[0] for r in rows if r[1] is not None]
        if undelivered:
            await self._run(delete(OutboxEntry).where(OutboxEntry.id.in_(undelivered)))
        if delivered:
            await self._run(update(OutboxEntry).where(OutboxEntry.id.in_(delivered)).values(payload={}))

    async def _delete_conversations(self, conversation_ids: list[int]) -> None:
        await self._run(delete(HandoffNote).where(HandoffNote.conversation_id.in_(conversation_ids)))
        await self._run(delete(Handoff).where(Handoff.conversation_id.in_(conversation_ids)))
        await self._run(delete(Conversation).where(Conversation.id.in_(conversation_ids)))
