"""The handoff desk: conversations queued for staff, taken over, answered, released.

A conversation is handed to people when the resident asks (转人工), after repeated failed
understandings, on an emergency, or when staff decide to take it. It then waits in the queue (the bot
still answers) until a staff member takes it over: from then on the bot is silent in that conversation,
the resident's messages are recorded for staff (and forwarded to the chat the holder took it from), and
staff replies go out on the resident's platform through the bot, signed with the staff member's name.
Internal notes live in their own table and never reach an outbound path. Releasing — by staff, or
automatically after a quiet period — gives the conversation back to the bot. The resident is told when a
person joins and when they leave.

Every operation takes the caller's session and leaves committing to it; messages to residents come
back as :class:`~bot.handoff.notices.Notice` objects for the caller to send once the transaction has
committed (the console sends them directly; a chat turn queues them for the notice job).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Protocol

import structlog
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    CannedReply,
    Chat,
    Community,
    Conversation,
    Handoff,
    HandoffNote,
    HandoffStatus,
    Person,
    PlatformIdentity,
    Role,
    RoleGrant,
    TranscriptMessage,
    utcnow,
)
from bot.db.repository import ConversationRef, Repository
from bot.db.session import Database, after_commit
from bot.dialog.engine import Prompt
from bot.dialog.spec import Responses
from bot.handoff.notices import STAFF_CHAT, Notice, notify_staff, queue_notice
from bot.handoff.summary import ResidentLine, Summary, summarize
from bot.message import Button, ChatType, IncomingMessage, Platform, Target
from bot.metrics import Metrics
from bot.nlu.base import Intent, Understanding
from bot.outbound import Outbound
from bot.roles import audit, staff_name
from bot.settings import Settings
from bot.state import HELD_COMPLETE as _HELD_COMPLETE
from bot.state import ConversationKey, Keys, StateStore
from kb import KnowledgeBase

log = structlog.get_logger(__name__)

REASONS = ("asked", "not_understood", "emergency", "staff")
# How many of the resident's latest messages the summary reads.
SUMMARY_LINES = 30
MAX_STAFF_TEXT = 2000


class Verdict(Enum):
    """What the desk made of a message, before the bot's own turn."""

    PASS = "pass"  # not ours: the bot's turn runs as usual
    HANDLED = "handled"  # a staff command, an invite, a relay: the replies are in the turn output
    HELD = "held"  # staff hold this conversation: recorded for them, the bot stays silent


class TurnOutput(Protocol):
    """The part of the dispatcher's turn output the desk reads and writes."""

    prompts: list[Prompt]
    state: dict[str, Any] | None
    handoff: str | None
    not_understood: bool
    chat_changed: bool  # a staff command rebound this chat: cached ids of its conversations are stale

    def say(self, text: str, buttons: tuple[Button, ...] = (), *, private: bool = False) -> None: ...


class HandoffError(Exception):
    """An operation was refused. ``key`` names the wording in responses.yml (``staff.<key>``)."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass(frozen=True, slots=True)
class Address:
    """Where a conversation's resident is reached on their platform."""

    conversation_id: int
    community_id: int
    platform: str
    chat_id: str
    chat_type: str
    chat_title: str
    user_id: str
    name: str

    @property
    def key(self) -> ConversationKey:
        return ConversationKey(Platform(self.platform), self.chat_id, self.user_id)

    def notice(self, text: str) -> Notice:
        if self.chat_type == ChatType.GROUP.value and self.name:
            text = f"@{self.name} {text}"
        return Notice(self.platform, self.chat_id, self.user_id, text, Target.CHAT.value)


@dataclass(slots=True)
class Outcome:
    """The result of a staff operation: what to tell the staff member, and what to send to the resident."""

    handoff: Handoff | None
    address: Address
    notices: list[Notice] = field(default_factory=list)
    created: bool = False


@dataclass(frozen=True, slots=True)
class QueueItem:
    handoff: Handoff
    address: Address
    summary: Summary
    holder_name: str | None
    waiting_since: datetime


class HandoffDesk:
    def __init__(
        self,
        *,
        settings: Settings,
        store: StateStore,
        kb: KnowledgeBase,
        words: Responses,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()  # the relay counts the appeals it files
        self.store = store
        self.redis: Redis = store.redis
        self.kb = kb
        self.words = words
        # Imported here: they build on the desk (and the desk hands them its messages).
        from bot.handoff.commands import StaffCommands
        from bot.handoff.relay import Relay

        self.commands = StaffCommands(self)
        self.relay = Relay(self)

    # --- hooks called by the dispatcher ---------------------------------------------------------------
    async def intercept(
        self,
        repo: Repository,
        ref: ConversationRef,
        message: IncomingMessage,
        u: Understanding,
        out: TurnOutput,
        *,
        maybe_held: bool = True,
    ) -> Verdict:
        """Called at the start of every turn, under the conversation lock, in the turn's transaction.

        ``maybe_held=False`` is the dispatcher's word that Redis has no held marker for the conversation
        and the markers are complete (:data:`HELD_COMPLETE`): then the database is not asked.
        """
        if await self.commands.handle(repo.session, ref, message, out):
            return Verdict.HANDLED
        if await self.relay.handle(repo.session, ref, message, out):
            return Verdict.HANDLED
        if ref.chat_purpose == STAFF_CHAT:
            out.say(self.words.get("staff.staff_chat_help"))
            return Verdict.HANDLED
        if not maybe_held:
            return Verdict.PASS
        holder_id = await repo.session.scalar(
            select(Conversation.handoff_holder_id).where(Conversation.id == ref.conversation_id)
        )
        if holder_id is None:
            return Verdict.PASS
        await self._resident_message_held(repo.session, ref, message, u)
        return Verdict.HELD

    async def after_turn(
        self, repo: Repository, ref: ConversationRef, message: IncomingMessage, out: TurnOutput
    ) -> None:
        """After the bot's turn: queue the conversation for staff when the turn asks for it."""
        reason = out.handoff
        if reason is None and out.not_understood:
            if await self._failed_in_a_row(repo.session, ref.conversation_id):
                reason = "not_understood"
        if reason is None:
            return
        session = repo.session
        if not await self._has_staff(session, ref.community_id):
            self._no_staff(ref, reason, out)
            return
        _handoff, created = await self.request(
            session,
            conversation_id=ref.conversation_id,
            reason=reason,
            urgent=reason == "emergency",
            dialog_state=out.state,
        )
        if not created:
            if reason == "asked":
                _say_before_resume(out, self.words.get("handoff.already_queued"))
            return
        if reason == "asked":
            _say_before_resume(
                out, self.words.get("handoff.queued", community_contact=self._office(ref.community_code))
            )
        elif reason == "not_understood":
            _replace_prompt(
                out, self.words.get("not_understood"), self.words.get("handoff.queued_not_understood")
            )
        else:
            out.say(self.words.get("handoff.queued_emergency"))

    def _no_staff(self, ref: ConversationRef, reason: str, out: TurnOutput) -> None:
        """No staff in this community yet: point to the community office instead of a silent queue."""
        if reason == "asked":
            _say_before_resume(
                out, self.words.get("human.contact", community_contact=self._office(ref.community_code))
            )
        elif reason == "not_understood":
            _replace_prompt(out, self.words.get("not_understood"), self.words.get("not_understood_again"))

    def _office(self, community_code: str) -> str:
        try:
            office = self.kb.community(community_code).community
        except KeyError:
            return "社区工作站"
        return "，".join(x for x in (office.name, office.phone, office.hours, office.location) if x)

    async def _failed_in_a_row(self, session: AsyncSession, conversation_id: int) -> bool:
        """This turn did not understand; did the previous ``limit - 1`` turns fail too?

        Read from the transcript (the bot's own earlier replies), so the good path costs nothing.
        """
        before = self.settings.handoff_not_understood_limit - 1
        if before <= 0:
            return True
        rows = await session.execute(
            select(TranscriptMessage.text)
            .where(
                TranscriptMessage.conversation_id == conversation_id,
                TranscriptMessage.direction == "out",
            )
            .order_by(TranscriptMessage.id.desc())
            .limit(before)
        )
        texts = list(rows.scalars())
        failed = (self.words.get("not_understood"), self.words.get("not_understood_again"))
        return len(texts) == before and all(t.endswith(failed) for t in texts)

    @staticmethod
    async def _has_staff(session: AsyncSession, community_id: int) -> bool:
        found = await session.scalar(
            select(RoleGrant.id)
            .where(RoleGrant.community_id == community_id, RoleGrant.role == Role.STAFF.value)
            .limit(1)
        )
        return found is not None

    async def _resident_message_held(
        self, session: AsyncSession, ref: ConversationRef, message: IncomingMessage, u: Understanding
    ) -> None:
        """A resident wrote while staff hold the conversation: keep it lively and tell the holder."""
        handoff = await self.open_handoff(session, ref.conversation_id)
        if handoff is None:
            return
        handoff.last_activity_at = utcnow()
        if u.intent.name is Intent.EMERGENCY and not handoff.urgent:
            handoff.urgent = True
        chat = handoff.holder_chat or {}
        if chat.get("platform") and chat.get("chat_id"):
            text = self.words.get(
                "staff.forwarded",
                id=ref.conversation_id,
                who=message.sender_name or "居民",
                text=message.text[:500],
            )
            await queue_notice(
                self.redis, Notice(str(chat["platform"]), str(chat["chat_id"]), str(chat["chat_id"]), text)
            )

    # --- reading ---------------------------------------------------------------------------------------
    async def open_handoff(self, session: AsyncSession, conversation_id: int) -> Handoff | None:
        return (
            (
                await session.execute(
                    select(Handoff).where(
                        Handoff.conversation_id == conversation_id,
                        Handoff.status != HandoffStatus.CLOSED.value,
                    )
                )
            )
            .scalars()
            .first()
        )

    async def address(self, session: AsyncSession, conversation_id: int) -> Address | None:
        conv = await session.get(Conversation, conversation_id)
        if conv is None:
            return None
        chat = await session.get(Chat, conv.chat_id)
        assert chat is not None
        prefix = f"{conv.platform}:{chat.external_id}:"
        user_id = conv.key[len(prefix) :] if conv.key.startswith(prefix) else conv.key.rsplit(":", 1)[-1]
        name = await session.scalar(
            select(PlatformIdentity.display_name).where(
                PlatformIdentity.platform == conv.platform, PlatformIdentity.external_id == user_id
            )
        )
        if not name:
            person = await session.get(Person, conv.person_id)
            name = person.display_name if person else ""
        return Address(
            conversation_id=conv.id,
            community_id=conv.community_id,
            platform=conv.platform,
            chat_id=chat.external_id,
            chat_type=chat.chat_type,
            chat_title=chat.title,
            user_id=user_id,
            name=name or "",
        )

    async def summary(self, session: AsyncSession, conversation_id: int) -> Summary:
        address = await self.address(session, conversation_id)
        conv = await session.get(Conversation, conversation_id)
        if address is None or conv is None:
            return Summary("", "", "", "", "", "", False)
        rows = await session.execute(
            select(TranscriptMessage.text, TranscriptMessage.intent)
            .where(
                TranscriptMessage.conversation_id == conversation_id,
                TranscriptMessage.author == "resident",
            )
            .order_by(TranscriptMessage.id.desc())
            .limit(SUMMARY_LINES)
        )
        lines = [ResidentLine(t, i) for t, i in reversed(rows.all()) if t and not t.startswith("/")]
        community = await session.get(Community, conv.community_id)
        return summarize(
            who=address.name,
            lines=lines,
            dialog_state=conv.dialog_state,
            kb=self.kb,
            community_code=community.code if community else self.settings.default_community,
        )

    async def queue(self, session: AsyncSession, community_ids: Sequence[int]) -> list[QueueItem]:
        """Waiting and active conversations of ``community_ids``: urgent first, then oldest first."""
        if not community_ids:
            return []
        rows = await session.execute(
            select(Handoff)
            .where(
                Handoff.community_id.in_(list(community_ids)),
                Handoff.status != HandoffStatus.CLOSED.value,
            )
            .order_by(Handoff.urgent.desc(), Handoff.requested_at)
            .limit(200)
        )
        items: list[QueueItem] = []
        for handoff in rows.scalars():
            address = await self.address(session, handoff.conversation_id)
            if address is None:
                continue
            holder = await staff_name(session, handoff.holder_id) if handoff.holder_id else None
            items.append(
                QueueItem(
                    handoff=handoff,
                    address=address,
                    summary=await self.summary(session, handoff.conversation_id),
                    holder_name=holder,
                    waiting_since=handoff.requested_at,
                )
            )
        return items

    async def notes(self, session: AsyncSession, conversation_id: int) -> list[tuple[HandoffNote, str]]:
        rows = await session.execute(
            select(HandoffNote).where(HandoffNote.conversation_id == conversation_id).order_by(HandoffNote.id)
        )
        return [(n, await staff_name(session, n.author_id)) for n in rows.scalars()]

    async def canned(self, session: AsyncSession, community_id: int) -> list[CannedReply]:
        rows = await session.execute(
            select(CannedReply).where(CannedReply.community_id == community_id).order_by(CannedReply.id)
        )
        return list(rows.scalars())

    # --- operations ------------------------------------------------------------------------------------
    async def request(
        self,
        session: AsyncSession,
        *,
        conversation_id: int,
        reason: str,
        urgent: bool = False,
        dialog_state: dict[str, Any] | None = None,
        requested_by: int | None = None,
    ) -> tuple[Handoff, bool]:
        """Queue a conversation for staff. Returns ``(handoff, created)``; an open one is reused."""
        if reason not in REASONS:
            raise ValueError(f"unknown handoff reason {reason!r}")
        existing = await self.open_handoff(session, conversation_id)
        if existing is not None:
            return existing, False
        conv = await session.get(Conversation, conversation_id)
        assert conv is not None
        summary = await self.summary(session, conversation_id)
        now = utcnow()
        handoff = Handoff(
            conversation_id=conversation_id,
            community_id=conv.community_id,
            status=HandoffStatus.WAITING.value,
            reason=reason,
            urgent=urgent or summary.urgent,
            summary=summary.to_dict(),
            requested_by_id=requested_by,
            requested_at=now,
            last_activity_at=now,
            holder_chat={},
        )
        try:
            async with session.begin_nested():
                session.add(handoff)
        except IntegrityError:  # another process queued it at the same moment
            existing = await self.open_handoff(session, conversation_id)
            assert existing is not None
            return existing, False
        text = self.words.get(
            "staff.new_waiting",
            id=conversation_id,
            reason=self.words.get(f"staff.reasons.{reason}"),
            summary=summary.one_line(),
        )
        await notify_staff(self.redis, session, conv.community_id, text)
        log.info("handoff queued", conversation=conversation_id, reason=reason)
        return handoff, True

    async def take(
        self,
        session: AsyncSession,
        conversation_id: int,
        staff_person_id: int,
        *,
        holder_chat: dict[str, str] | None = None,
        via: str = "console",
    ) -> Outcome:
        """Take the conversation over: the bot goes quiet and the resident is told a person joined.

        Taking a conversation nobody queued starts a handoff (reason ``staff``). Taking one a colleague
        holds is refused (``staff.taken_by_other``); taking one you hold again is harmless.
        """
        address = await self._address_or_fail(session, conversation_id)
        handoff = await self.open_handoff(session, conversation_id)
        now = utcnow()
        created = False
        if handoff is None:
            handoff = Handoff(
                conversation_id=conversation_id,
                community_id=address.community_id,
                status=HandoffStatus.ACTIVE.value,
                reason="staff",
                holder_id=staff_person_id,
                holder_chat=holder_chat or {},
                summary=(await self.summary(session, conversation_id)).to_dict(),
                requested_by_id=staff_person_id,
                requested_at=now,
                taken_at=now,
                last_activity_at=now,
            )
            try:
                async with session.begin_nested():
                    session.add(handoff)
                created = True
            except IntegrityError:
                handoff = await self.open_handoff(session, conversation_id)
                assert handoff is not None
        if not created:
            if handoff.status == HandoffStatus.WAITING.value:
                taken = await session.execute(
                    update(Handoff)
                    .where(Handoff.id == handoff.id, Handoff.status == HandoffStatus.WAITING.value)
                    .values(
                        status=HandoffStatus.ACTIVE.value,
                        holder_id=staff_person_id,
                        holder_chat=holder_chat or {},
                        taken_at=now,
                        last_activity_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                await session.refresh(handoff)
                if _rowcount(taken) == 0 and handoff.holder_id != staff_person_id:
                    name = await staff_name(session, handoff.holder_id) if handoff.holder_id else "同事"
                    raise HandoffError("taken_by_other", id=conversation_id, name=name)
            elif handoff.holder_id != staff_person_id:
                name = await staff_name(session, handoff.holder_id) if handoff.holder_id else "同事"
                raise HandoffError("taken_by_other", id=conversation_id, name=name)
            else:  # already ours: only where we work from may change
                if holder_chat:
                    handoff.holder_chat = holder_chat
                return Outcome(handoff, address)
        conv = await session.get(Conversation, conversation_id)
        assert conv is not None
        conv.handoff_holder_id = staff_person_id
        await self.redis.set(held_marker(address.key), str(handoff.id))
        name = await staff_name(session, staff_person_id)
        joined = self.words.get("handoff.joined", name=name)
        await Repository(session).conversations.add_transcript(
            conversation_id, direction="out", author="bot", text=joined, payload={"event": "joined"}
        )
        audit(
            session,
            actor_person_id=staff_person_id,
            action="handoff.take",
            target_type="conversation",
            target_id=conversation_id,
            community_id=address.community_id,
            detail={"via": via, "handoff": handoff.id},
        )
        return Outcome(handoff, address, [address.notice(joined)], created=True)

    async def reply(
        self,
        session: AsyncSession,
        conversation_id: int,
        staff_person_id: int,
        text: str,
        *,
        via: str = "console",
        canned_id: int | None = None,
    ) -> Outcome:
        """Answer the resident as the staff member (signed). Only the holder may reply."""
        text = text.strip()[:MAX_STAFF_TEXT]
        if not text:
            raise HandoffError("reply_usage")
        address = await self._address_or_fail(session, conversation_id)
        handoff = await self.open_handoff(session, conversation_id)
        if (
            handoff is None
            or handoff.status != HandoffStatus.ACTIVE.value
            or handoff.holder_id != staff_person_id
        ):
            raise HandoffError("not_held", id=conversation_id)
        community = await session.get(Community, address.community_id)
        signed = self.words.get(
            "handoff.staff_reply",
            text=text,
            name=await staff_name(session, staff_person_id),
            community=community.name if community else "社区",
        )
        handoff.last_activity_at = utcnow()
        await Repository(session).conversations.add_transcript(
            conversation_id,
            direction="out",
            author="staff",
            text=signed,
            author_person_id=staff_person_id,
            payload={"via": via, **({"canned": canned_id} if canned_id else {})},
        )
        audit(
            session,
            actor_person_id=staff_person_id,
            action="handoff.reply",
            target_type="conversation",
            target_id=conversation_id,
            community_id=address.community_id,
            detail={"via": via, "chars": len(text), **({"canned": canned_id} if canned_id else {})},
        )
        return Outcome(handoff, address, [address.notice(signed)])

    async def note(
        self,
        session: AsyncSession,
        conversation_id: int,
        staff_person_id: int,
        text: str,
        *,
        via: str = "console",
    ) -> Outcome:
        """An internal note: stored apart from the transcript and never sent to anyone."""
        text = text.strip()[:MAX_STAFF_TEXT]
        if not text:
            raise HandoffError("note_usage")
        address = await self._address_or_fail(session, conversation_id)
        session.add(HandoffNote(conversation_id=conversation_id, author_id=staff_person_id, text=text))
        audit(
            session,
            actor_person_id=staff_person_id,
            action="handoff.note",
            target_type="conversation",
            target_id=conversation_id,
            community_id=address.community_id,
            detail={"via": via, "chars": len(text)},
        )
        return Outcome(await self.open_handoff(session, conversation_id), address)

    async def release(
        self,
        session: AsyncSession,
        conversation_id: int,
        actor_person_id: int | None,
        *,
        reason: str = "released",
        via: str = "console",
        quiet_before: datetime | None = None,
    ) -> Outcome:
        """Give the conversation back to the bot (or take a waiting one off the queue).

        ``quiet_before`` makes it conditional (auto-release): only if nothing happened since then.
        The resident is told when a person leaves; a waiting conversation is closed silently.
        """
        address = await self._address_or_fail(session, conversation_id)
        handoff = await self.open_handoff(session, conversation_id)
        if handoff is None:
            raise HandoffError("not_open", id=conversation_id)
        was_active = handoff.status == HandoffStatus.ACTIVE.value
        holder_id = handoff.holder_id
        stmt = update(Handoff).where(Handoff.id == handoff.id, Handoff.status != HandoffStatus.CLOSED.value)
        if quiet_before is not None:
            stmt = stmt.where(
                Handoff.status == HandoffStatus.ACTIVE.value, Handoff.last_activity_at < quiet_before
            )
        done = await session.execute(
            stmt.values(
                status=HandoffStatus.CLOSED.value, closed_at=utcnow(), close_reason=reason
            ).execution_options(synchronize_session=False)
        )
        if _rowcount(done) == 0:
            raise HandoffError("not_open", id=conversation_id)
        await session.refresh(handoff)
        conv = await session.get(Conversation, conversation_id)
        assert conv is not None
        conv.handoff_holder_id = None
        # Once the release is durable: until then the conversation is held, and the marker must say so
        # (the dispatcher trusts its absence, see HELD_COMPLETE).
        marker = held_marker(address.key)
        after_commit(session, lambda: self.redis.delete(marker))
        audit(
            session,
            actor_person_id=actor_person_id,
            action="handoff.auto_release" if reason == "auto" else "handoff.release",
            target_type="conversation",
            target_id=conversation_id,
            community_id=address.community_id,
            detail={"via": via, "handoff": handoff.id, "was": "active" if was_active else "waiting"},
        )
        notices: list[Notice] = []
        if was_active:
            name = await staff_name(session, holder_id) if holder_id else "工作人员"
            key = "handoff.auto_left" if reason == "auto" else "handoff.left"
            left = self.words.get(key, name=name, bot_name=self.settings.bot_name)
            await Repository(session).conversations.add_transcript(
                conversation_id, direction="out", author="bot", text=left, payload={"event": reason}
            )
            notices.append(address.notice(left))
        return Outcome(handoff, address, notices)

    async def release_quiet(self, db: Database, outbound: Outbound | None) -> int:
        """Release every conversation staff hold that has been quiet for the configured period."""
        cutoff = utcnow() - timedelta(seconds=self.settings.handoff_quiet_release_s)
        released = 0
        async with db.unit_of_work() as uow:
            ids = list(
                (
                    await uow.session.execute(
                        select(Handoff.conversation_id).where(
                            Handoff.status == HandoffStatus.ACTIVE.value, Handoff.last_activity_at < cutoff
                        )
                    )
                ).scalars()
            )
        for conversation_id in ids:
            async with db.unit_of_work() as uow:
                try:
                    outcome = await self.release(
                        uow.session, conversation_id, None, reason="auto", via="auto", quiet_before=cutoff
                    )
                except HandoffError:  # someone spoke, or another process released it first
                    continue
                await uow.commit()
            released += 1
            await self.send(outcome.notices, outbound)
            log.info("handoff released after a quiet period", conversation=conversation_id)
        return released

    async def run_auto_release(self, db: Database, outbound: Outbound) -> None:
        """Background job of ``huiyin serve``: :meth:`release_quiet` every check interval."""
        import asyncio

        while True:
            await asyncio.sleep(self.settings.handoff_check_interval_s)
            try:
                await self.release_quiet(db, outbound)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be briefly away; try again next round
                log.warning("auto-release round failed", error=repr(exc))

    async def restore_markers(self, db: Database) -> int:
        """Put the "held" markers back into Redis (an in-process Redis starts empty after a restart),
        then set :data:`HELD_COMPLETE`."""
        restored = 0
        async with db.unit_of_work() as uow:
            rows = await uow.session.execute(
                select(Handoff.id, Handoff.conversation_id).where(
                    Handoff.status == HandoffStatus.ACTIVE.value
                )
            )
            for handoff_id, conversation_id in rows.all():
                address = await self.address(uow.session, conversation_id)
                if address is not None:
                    await self.redis.set(held_marker(address.key), str(handoff_id))
                    restored += 1
        await self.store.mark_complete(HELD_COMPLETE)
        return restored

    async def send(self, notices: Sequence[Notice], outbound: Outbound | None) -> list[Notice]:
        """Send to residents now through ``outbound`` (returns what failed), or queue for the notice job."""
        failed: list[Notice] = []
        for notice in notices:
            if outbound is None:
                await queue_notice(self.redis, notice)
                continue
            if await outbound.deliver(Platform(notice.platform), [notice.reply()]):
                failed.append(notice)
        return failed

    async def _address_or_fail(self, session: AsyncSession, conversation_id: int) -> Address:
        address = await self.address(session, conversation_id)
        if address is None:
            raise HandoffError("not_found", id=conversation_id)
        return address


HELD_COMPLETE = _HELD_COMPLETE
"""Set by :meth:`HandoffDesk.restore_markers` once every held conversation has its marker. While it
exists, a conversation without a marker is not held and the dispatcher's turn skips the database check;
markers are set before a take commits and removed only after a release commits, so the marker errs on
the side of "held" (which only costs that check). When Redis loses its data this key goes too, and every
turn asks the database until the next start-up restores them. (Redis must not evict keys without an
expiry: ``maxmemory-policy`` noeviction or volatile-*, see docs/staff.md.)"""


def held_marker(key: ConversationKey) -> str:
    """The Redis key that marks ``key``'s conversation as held by staff, mirroring the database: in a
    group, a held resident's replies reach staff even when they do not address the bot (the dispatcher
    checks this key on every unaddressed group message)."""
    return Keys.held(key)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _say_before_resume(out: TurnOutput, text: str) -> None:
    """Answer the request for a person; in the middle of a form, before the line that resumes it."""
    if out.state and out.state.get("dialog") and out.prompts:
        out.prompts.insert(len(out.prompts) - 1, Prompt(text))
    else:
        out.say(text)


def _replace_prompt(out: TurnOutput, old_text: str, new_text: str) -> None:
    """Swap the turn's ``old_text`` line (the "not understood" reply) for ``new_text``."""
    for i in range(len(out.prompts) - 1, -1, -1):
        if out.prompts[i].text == old_text:
            out.prompts[i] = Prompt(new_text, (), out.prompts[i].private)
            return
    out.say(new_text)


__all__ = ["Address", "HandoffDesk", "HandoffError", "Outcome", "QueueItem", "Verdict"]
