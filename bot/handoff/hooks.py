"""The handoff desk's part of every turn (the turn's staff handlers, :mod:`bot.turn.handlers.staff`,
call in here).

Before the bot's own turn: staff commands and invites (:attr:`TurnHooks.commands`), building leaders'
relays (:attr:`TurnHooks.relay`), and conversations staff hold (:meth:`TurnHooks.held`).
:meth:`TurnHooks.after_turn` runs after the bot's turn and queues the conversation for staff when the
turn asks for a person, reports an emergency, or failed to understand several times in a row.
"""

from __future__ import annotations

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import utcnow
from bot.db.repository import ConversationRef, Repository
from bot.db.repository.conversation_records import ConversationRecords
from bot.db.repository.handoffs import HandoffRepository
from bot.dialog.engine import Prompt
from bot.handoff.commands import StaffCommands
from bot.handoff.desk import HandoffDesk
from bot.handoff.model import HandoffReason, TurnOutput
from bot.handoff.notices import Notice, queue_notice
from bot.handoff.relay import Relay
from bot.message import IncomingMessage
from bot.nlu.base import Intent, Understanding


class TurnHooks:
    """Built from the desk; owns the chat commands and the relay that build on it."""

    def __init__(self, desk: HandoffDesk) -> None:
        self.desk = desk
        self.words = desk.words
        self.redis: Redis = desk.redis
        self.commands = StaffCommands(desk)
        self.relay = Relay(desk)

    async def held(
        self, repo: Repository, ref: ConversationRef, message: IncomingMessage, u: Understanding
    ) -> bool:
        """Whether staff hold this conversation; if so the resident's message is recorded for them (the
        holder's chat is told, the handoff kept lively) and the bot stays silent. Asked only when Redis
        cannot rule it out (no held marker while the markers are complete)."""
        if await HandoffRepository(repo.session).holder_id(ref.conversation_id) is None:
            return False
        await self._resident_message_held(repo.session, ref, message, u)
        return True

    async def after_turn(
        self, repo: Repository, ref: ConversationRef, message: IncomingMessage, out: TurnOutput
    ) -> None:
        """After the bot's turn: queue the conversation for staff when the turn asks for it."""
        reason = HandoffReason(out.handoff) if out.handoff is not None else None
        if reason is None and out.not_understood:
            if await self._failed_in_a_row(repo.session, ref.conversation_id):
                reason = HandoffReason.NOT_UNDERSTOOD
        if reason is None:
            return
        session = repo.session
        if not await ConversationRecords(session).has_staff(ref.community_id):
            self._no_staff(ref, reason, out)
            return
        _handoff, created = await self.desk.request(
            session,
            conversation_id=ref.conversation_id,
            reason=reason,
            urgent=reason is HandoffReason.EMERGENCY,
            dialog_state=out.state,
        )
        if not created:
            if reason is HandoffReason.ASKED:
                _say_before_resume(out, self.words.get("handoff.already_queued"))
            return
        if reason is HandoffReason.ASKED:
            _say_before_resume(
                out, self.words.get("handoff.queued", community_contact=self._office(ref.community_code))
            )
        elif reason is HandoffReason.NOT_UNDERSTOOD:
            _replace_not_understood(out, self.words.get("handoff.queued_not_understood"))
            # The line now says staff are coming: the next failure starts counting afresh.
            out.not_understood_at = None
        else:
            out.say(self.words.get("handoff.queued_emergency"))

    def _no_staff(self, ref: ConversationRef, reason: HandoffReason, out: TurnOutput) -> None:
        """No staff in this community yet: point to the community office instead of a silent queue."""
        if reason is HandoffReason.ASKED:
            _say_before_resume(
                out, self.words.get("human.contact", community_contact=self._office(ref.community_code))
            )
        elif reason is HandoffReason.NOT_UNDERSTOOD:
            # Still a "not understood" line (it keeps its place, so it keeps counting as a failure).
            _replace_not_understood(out, self.words.get("not_understood_again"))

    def _office(self, community_code: str) -> str:
        try:
            office = self.desk.kb.community(community_code).community
        except KeyError:
            return "社区工作站"
        return "，".join(x for x in (office.name, office.phone, office.hours, office.location) if x)

    async def _failed_in_a_row(self, session: AsyncSession, conversation_id: int) -> bool:
        """This turn did not understand; did the previous ``limit - 1`` turns fail too?

        Read from the transcript (the bot's earlier replies flagged as "not understood"), so the good
        path costs nothing.
        """
        before = self.desk.settings.handoff_not_understood_limit - 1
        if before <= 0:
            return True
        return await ConversationRecords(session).not_understood_in_a_row(conversation_id, before)

    async def _resident_message_held(
        self, session: AsyncSession, ref: ConversationRef, message: IncomingMessage, u: Understanding
    ) -> None:
        """A resident wrote while staff hold the conversation: keep it lively and tell the holder."""
        handoff = await self.desk.open_handoff(session, ref.conversation_id)
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


def _say_before_resume(out: TurnOutput, text: str) -> None:
    """Answer the request for a person; in the middle of a form, before the line that resumes it."""
    if out.state and out.state.get("dialog") and out.prompts:
        at = len(out.prompts) - 1
        out.prompts.insert(at, Prompt(text))
        if out.not_understood_at is not None and out.not_understood_at >= at:
            out.not_understood_at += 1  # the "not understood" line moved down by one
    else:
        out.say(text)


def _replace_not_understood(out: TurnOutput, text: str) -> None:
    """Swap the turn's "not understood" line (``out.not_understood_at``) for ``text``; say ``text`` at
    the end when the turn has no such line."""
    at = out.not_understood_at
    if at is not None and 0 <= at < len(out.prompts):
        out.prompts[at] = Prompt(text, (), out.prompts[at].private)
        return
    out.say(text)
