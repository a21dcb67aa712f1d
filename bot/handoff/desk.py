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
committed (the console sends them directly; a chat turn queues them for the notice job). The hooks the
dispatcher calls on every turn are :class:`bot.handoff.hooks.TurnHooks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from bot.appeals.filing import AppealFiling
from bot.db.models import Community, Conversation, Handoff, HandoffNote, HandoffStatus, utcnow
from bot.db.repository import ConversationRef, Repository
from bot.db.repository.appeal_records import AppealRecords
from bot.db.repository.conversation_records import ConversationRecords
from bot.db.repository.handoffs import HandoffRepository
from bot.db.session import Database, after_commit
from bot.dialog.slots import mask_personal
from bot.dialog.spec import Responses
from bot.handoff import drafts, upkeep
from bot.handoff.model import (
    HELD_COMPLETE,
    Address,
    HandoffError,
    HandoffReason,
    Outcome,
    held_marker,
)
from bot.handoff.notices import Notice, notify_staff, queue_notice
from bot.handoff.reading import SUMMARY_LINES, HandoffReader
from bot.handoff.summary import ResidentLine
from bot.message import ChatType, Platform, Target
from bot.metrics import Metrics
from bot.outbound import Outbound
from bot.roles import audit, staff_name
from bot.settings import Settings
from bot.state import LockTimeout, StateStore
from kb import KnowledgeBase

log = structlog.get_logger(__name__)

MAX_STAFF_TEXT = 2000


class HandoffDesk(HandoffReader):
    def __init__(
        self,
        *,
        settings: Settings,
        store: StateStore,
        kb: KnowledgeBase,
        words: Responses,
        filing: AppealFiling,
        metrics: Metrics | None = None,
    ) -> None:
        """``filing``: the one filing service (staff filing from a conversation, relays)."""
        self.settings = settings
        self.metrics = metrics or Metrics()  # the relay counts the appeals it files
        self.store = store
        self.redis: Redis = store.redis
        self.kb = kb
        self.words = words
        self.filing = filing

    # --- operations ------------------------------------------------------------------------------------
    async def request(
        self,
        session: AsyncSession,
        *,
        conversation_id: int,
        reason: HandoffReason | str,
        urgent: bool = False,
        dialog_state: dict[str, Any] | None = None,
        requested_by: int | None = None,
    ) -> tuple[Handoff, bool]:
        """Queue a conversation for staff. Returns ``(handoff, created)``; an open one is reused."""
        try:
            reason = HandoffReason(reason)
        except ValueError:
            raise ValueError(f"unknown handoff reason {reason!r}") from None
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
            reason=reason.value,
            urgent=urgent or summary.urgent,
            summary=summary.to_dict(),
            requested_by_id=requested_by,
            requested_at=now,
            last_activity_at=now,
            holder_chat={},
        )
        if not await HandoffRepository(session).insert_open(handoff):  # queued by another process
            existing = await self.open_handoff(session, conversation_id)
            assert existing is not None
            return existing, False
        text = self.words.get(
            "staff.new_waiting",
            id=conversation_id,
            reason=self.words.get(f"staff.reasons.{reason.value}"),
            summary=summary.one_line(masked=True),  # a staff group is a group: the details on /take
        )
        await notify_staff(self.redis, session, conv.community_id, text)
        log.info("handoff queued", conversation=conversation_id, reason=reason.value)
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
        handoffs = HandoffRepository(session)
        handoff = await handoffs.open_handoff(conversation_id)
        now = utcnow()
        created = False
        if handoff is None:
            handoff = Handoff(
                conversation_id=conversation_id,
                community_id=address.community_id,
                status=HandoffStatus.ACTIVE.value,
                reason=HandoffReason.STAFF.value,
                holder_id=staff_person_id,
                holder_chat=holder_chat or {},
                summary=(await self.summary(session, conversation_id)).to_dict(),
                requested_by_id=staff_person_id,
                requested_at=now,
                taken_at=now,
                last_activity_at=now,
            )
            created = await handoffs.insert_open(handoff)
            if not created:
                handoff = await self.open_handoff(session, conversation_id)
                assert handoff is not None
        if not created:
            if handoff.status == HandoffStatus.WAITING.value:
                taken = await handoffs.take_waiting(handoff.id, staff_person_id, holder_chat or {}, now)
                await session.refresh(handoff)
                if not taken and handoff.holder_id != staff_person_id:
                    raise await _taken_by_other(session, handoff)
            elif handoff.holder_id != staff_person_id:
                raise await _taken_by_other(session, handoff)
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
        _audit(session, address, staff_person_id, "handoff.take", {"via": via, "handoff": handoff.id})
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
        _audit(
            session,
            address,
            staff_person_id,
            "handoff.reply",
            {"via": via, "chars": len(text), **({"canned": canned_id} if canned_id else {})},
        )
        if address.chat_type != ChatType.GROUP.value:
            return Outcome(handoff, address, [address.notice(signed)])
        # In a group everyone reads it: phones and flats masked there ("师傅10分钟后到***"), the whole
        # reply in the resident's private chat with the bot when there is one.
        notices = [address.notice(mask_personal(signed))]
        masked = notices[0].text != address.notice(signed).text
        if masked and await AppealRecords(session).has_private_chat(address.platform, address.user_id):
            notices.append(
                Notice(address.platform, address.user_id, address.user_id, signed, Target.PRIVATE.value)
            )
        return Outcome(handoff, address, notices)

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
        _audit(session, address, staff_person_id, "handoff.note", {"via": via, "chars": len(text)})
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
        if not await HandoffRepository(session).close(handoff.id, reason, quiet_before=quiet_before):
            raise HandoffError("not_open", id=conversation_id)
        await session.refresh(handoff)
        conv = await session.get(Conversation, conversation_id)
        assert conv is not None
        conv.handoff_holder_id = None
        # Once the release is durable: until then the conversation is held, and the marker must say so
        # (the dispatcher trusts its absence, see HELD_COMPLETE).
        marker = held_marker(address.key)
        after_commit(session, lambda: self.redis.delete(marker))
        _audit(
            session,
            address,
            actor_person_id,
            "handoff.auto_release" if reason == "auto" else "handoff.release",
            {"via": via, "handoff": handoff.id, "was": "active" if was_active else "waiting"},
        )
        notices: list[Notice] = []
        if was_active:
            name = await staff_name(session, holder_id) if holder_id else "工作人员"
            key = "handoff.auto_left" if reason == "auto" else "handoff.left"
            left = self.words.get(key, name=name, bot_name=self.settings.bot_name)
            conversations = Repository(session).conversations
            await conversations.add_transcript(
                conversation_id, direction="out", author="bot", text=left, payload={"event": reason}
            )
            notices.append(address.notice(left))
            offer = await self._pause_form(session, address, conv, reason)
            if offer is not None:
                buttons = drafts.offer_buttons(self.words)
                await conversations.add_transcript(
                    conversation_id,
                    direction="out",
                    author="bot",
                    text=offer,
                    payload={"event": "resume_offer", "buttons": [b.payload for b in buttons]},
                )
                notices.append(address.notice(offer, buttons))
        return Outcome(handoff, address, notices)

    async def _pause_form(
        self, session: AsyncSession, address: Address, conv: Conversation, reason: str
    ) -> str | None:
        """The resident's half-finished form, paused as staff give the conversation back; the offer to
        go on with it, or None (no form, or staff filed its appeal meanwhile).

        Written while the conversation is still held, so that no turn of it changes the state meanwhile
        (a held turn leaves the form as it is); the durable copy goes with the release's transaction."""
        state = await self._form_state(address, conv)
        if not drafts.running_form(state):
            return None
        assert state is not None
        filed = await Repository(session).appeals.appeal_by_draft(str(state.get("draft_key") or ""))
        pause = drafts.paused(state, reason, filed=filed.public_id if filed else None)
        try:
            await self.store.put_state(address.key, pause)
        except LockTimeout:  # a turn of that very conversation holds it (staff releasing themselves)
            log.warning("form not paused: conversation busy", conversation=address.conversation_id)
            return None
        conv.dialog_state = pause
        if filed is not None:
            return None
        description = drafts.draft_description(state, in_group=address.chat_type == ChatType.GROUP.value)
        return self.words.get("handoff.resume_offer", description=description or "问题")

    async def _form_state(self, address: Address, conv: Conversation) -> dict[str, Any] | None:
        """The resident's dialog state: Redis's working copy, else the durable copy."""
        return await self.store.get_state(address.key) or conv.dialog_state

    async def file_appeal(
        self,
        session: AsyncSession,
        conversation_id: int,
        staff_person_id: int,
        text: str = "",
        *,
        via: str = "console",
    ) -> Outcome:
        """File an appeal for the conversation's resident, as the staff member: from ``text`` when given,
        else from the resident's half-finished form, else from the resident's latest messages.

        Idempotent, so a double click files one appeal: without ``text`` the form's draft key when there
        is a form (filed or not), else a key made of the conversation and the description
        (:func:`~bot.handoff.drafts.staff_draft_key`), so another problem staff describe is another
        appeal. A form filed here is paused as filed (its next message drops it). The resident is told
        the id (the outcome's notices); :attr:`Outcome.appeal` has it, :attr:`Outcome.created` says
        whether it is new."""
        address = await self._address_or_fail(session, conversation_id)
        conv = await session.get(Conversation, conversation_id)
        community = await session.get(Community, address.community_id)
        assert conv is not None and community is not None
        handoff = await self.open_handoff(session, conversation_id)
        state = await self._form_state(address, conv)
        form = state if state and state.get("dialog") and state.get("draft_key") else None
        draft = form if drafts.unfiled_form(form) else None  # what the form collected, still to file
        rows = await ConversationRecords(session).resident_lines(conversation_id, SUMMARY_LINES)
        lines = [ResidentLine(t, i) for t, i in rows]
        text = text.strip()[:MAX_STAFF_TEXT]
        description, source = text, "text"
        if not description and draft is not None:
            description, source = str((draft.get("slots") or {}).get("description") or ""), "form"
        if not description:
            description, source = drafts.description_from_lines(lines), "transcript"
        if not description and (form is None or draft is not None):  # (a filed form: found below)
            raise HandoffError("file_nothing", id=conversation_id)
        # Without words of their own, staff file the form (a second click finds it filed); otherwise the
        # appeal is the conversation's with this description.
        if not text and form is not None:
            draft_key = str(form["draft_key"])
        else:
            draft_key = drafts.staff_draft_key(conversation_id, description)
        new = drafts.appeal_from_conversation(
            draft_key=draft_key,
            description=description,
            draft=draft,
            lines=lines,
            origin={"platform": address.platform, "chat_id": address.chat_id, "chat_type": address.chat_type},
            kb=self.kb,
            community_code=community.code,
        )
        ref = ConversationRef(conv.id, conv.person_id, conv.community_id, community.code, conv.chat_id)
        name = await staff_name(session, staff_person_id)
        repo = Repository(session)
        appeal, created = await self.filing.file(
            repo,
            new,
            ref,
            source="staff",
            actor=f"staff:{staff_person_id}",
            note=self.words.get("staff.file_note", name=name),
        )
        if not created:
            return Outcome(handoff, address, appeal=appeal.public_id)
        if handoff is not None:
            handoff.last_activity_at = utcnow()
        if draft is not None:
            # The form is done with: paused as filed, its next message drops it (and its old buttons
            # say the appeal is filed), and a release offers nothing.
            filed = drafts.paused(draft, "filed", filed=appeal.public_id)
            conv.dialog_state = filed
            key = address.key

            async def end_form() -> None:
                try:
                    await self.store.put_state(key, filed)
                except LockTimeout:  # a turn of that very conversation holds it (staff filing
                    # their own conversation): the form goes on
                    log.warning("filed form not ended: conversation busy", conversation=conversation_id)

            after_commit(session, end_form)
        told = self.words.get(
            "handoff.filed",
            name=name,
            public_id=appeal.public_id,
            sla_hours=self.settings.first_response_hours,
        )
        await repo.conversations.add_transcript(
            conversation_id,
            direction="out",
            author="staff",
            text=told,
            author_person_id=staff_person_id,
            payload={"event": "filed", "appeal": appeal.public_id, "via": via},
        )
        _audit(
            session,
            address,
            staff_person_id,
            "appeal.file_from_conversation",
            {
                "via": via,
                "appeal": appeal.public_id,
                "from": source,
                "handoff": handoff.id if handoff else None,
            },
        )
        log.info("appeal filed by staff", conversation=conversation_id, public_id=appeal.public_id)
        return Outcome(handoff, address, [address.notice(told)], created=True, appeal=appeal.public_id)

    async def release_quiet(self, db: Database, outbound: Outbound | None) -> int:
        """Release every conversation staff hold that has been quiet for the configured period."""
        return await upkeep.release_quiet(self, db, outbound)

    async def run_auto_release(self, db: Database, outbound: Outbound) -> None:
        """Background job of ``huiyin serve``: :meth:`release_quiet` every check interval."""
        await upkeep.run_auto_release(self, db, outbound)

    async def restore_markers(self, db: Database) -> int:
        """Put the "held" markers back into Redis, then set :data:`HELD_COMPLETE`."""
        return await upkeep.restore_markers(self, db)

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


def _audit(
    session: AsyncSession, address: Address, actor: int | None, action: str, detail: dict[str, Any]
) -> None:
    """Audit a staff operation on the conversation at ``address``."""
    audit(
        session,
        actor_person_id=actor,
        action=action,
        target_type="conversation",
        target_id=address.conversation_id,
        community_id=address.community_id,
        detail=detail,
    )


async def _taken_by_other(session: AsyncSession, handoff: Handoff) -> HandoffError:
    name = await staff_name(session, handoff.holder_id) if handoff.holder_id else "同事"
    return HandoffError("taken_by_other", id=handoff.conversation_id, name=name)


__all__ = ["HELD_COMPLETE", "Address", "HandoffDesk", "HandoffError", "Outcome", "held_marker"]
