"""``handle(message) -> replies``: the one transport-free entry point every channel and test uses.

The path of one message, stage by stage:

1. **Etiquette** (:mod:`bot.turn.etiquette`): in a group the bot acts only when addressed (@-mention,
   reply to the bot, a command, its name) or when the sender is in the middle of a form in this group or
   held by staff. Otherwise the message is group chatter.
2. **Lock, dedup, state**: one Redis round trip takes the conversation lock (per platform + chat + user),
   answers a redelivered message from its dedup record, reads the dialog state and the probes that let
   the turn skip database reads (:class:`~bot.turn.context.Probes`); for an unaddressed group message
   it finds out in the same round trip that nothing engages the resident.
3. **Unit of work**: the NLU's understanding, the conversation's ids, the incoming transcript row.
4. **Handlers** (:mod:`bot.turn.handlers`), offered the turn in order until one handles it.
5. **Save**: the outgoing transcript (with the turn's whole answer, so that a redelivery is answered
   from the database when Redis has forgotten), the durable copy of the dialog state, one commit; then
   the dialog state, the dedup record and the lock release in one more Redis round trip.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.exc import IntegrityError

from bot.appeals.filing import AppealFiling
from bot.appeals.flow import FollowUp
from bot.cases.desk import CaseDesk
from bot.db.repository import ConversationRef
from bot.db.repository.cases import RESIDENTS_CHAT
from bot.db.repository.conversation_records import NOT_UNDERSTOOD
from bot.db.session import Database
from bot.dialog.engine import DialogEngine, Prompt, PromptContext
from bot.dialog.spec import DialogBundle, Responses
from bot.handoff import HandoffDesk, TurnHooks
from bot.handoff.model import HELD_COMPLETE, held_marker
from bot.message import IncomingMessage, Reply
from bot.metrics import Metrics
from bot.nlu.base import NLUBackend
from bot.privacy.rights import PrivacyRights
from bot.settings import Settings
from bot.state import DIALOGS_COMPLETE, ConversationKey, StateStore, private_key_for
from bot.turn.context import Probes, TurnContext, TurnOutput
from bot.turn.etiquette import Etiquette
from bot.turn.handlers import Handler, run_handlers, turn_handlers
from bot.turn.refs import ConversationRefs
from bot.turn.render import GroupNotice, to_reply
from bot.turn.services import Services
from kb import KnowledgeBase

log = structlog.get_logger(__name__)

_Move = tuple[ConversationKey, dict[str, Any]]


class TurnPipeline:
    def __init__(
        self,
        *,
        settings: Settings,
        store: StateStore,
        db: Database,
        nlu: NLUBackend,
        kb: KnowledgeBase,
        dialogs: DialogBundle,
        metrics: Metrics | None = None,
    ) -> None:
        metrics = metrics or Metrics()
        words = dialogs.responses
        cases = CaseDesk(settings, kb, words)
        filing = AppealFiling(settings, metrics, cases)
        desk = HandoffDesk(settings=settings, store=store, kb=kb, words=words, filing=filing, metrics=metrics)
        self.services = Services(
            settings=settings,
            store=store,
            kb=kb,
            dialogs=dialogs,
            engine=DialogEngine(dialogs),
            metrics=metrics,
            desk=desk,
            hooks=TurnHooks(desk),
            follow_up=FollowUp(
                settings=settings,
                store=store,
                words=words,
                bot_names=settings.bot_names,
                step_buttons=dialogs.step_buttons(),
            ),
            filing=filing,
            cases=cases,
            privacy=PrivacyRights(settings, words),
            tz=ZoneInfo(settings.timezone),
        )
        self.settings, self.store, self.db, self.nlu = settings, store, db, nlu
        self.metrics = metrics
        self.handoff = self.services.desk
        self.etiquette = Etiquette(self.services, db, nlu)
        self.group_mask = self.etiquette.group_mask  # built once from the knowledge base
        self.refs = ConversationRefs(self.services)
        self.handlers: list[Handler] = turn_handlers(self.services)
        self.known_commands = frozenset(c for h in self.handlers for c in h.commands)

    @property
    def dialogs(self) -> DialogBundle:
        return self.services.dialogs

    @property
    def words(self) -> Responses:
        """The bot's wording (dialogs/responses.yml), for channels that answer on their own (busy…)."""
        return self.services.words

    # --- stages 1, 2 and 5: etiquette, the turn's opening and its close ---------------------------------
    async def handle(self, message: IncomingMessage) -> list[Reply]:
        """Handle one incoming message and return the replies to send. Safe to call concurrently."""
        if "\x00" in message.text or "\x00" in message.sender_name:
            # PostgreSQL text cannot hold NUL; it carries no meaning in a chat message anyway.
            message = replace(
                message,
                text=message.text.replace("\x00", ""),
                sender_name=message.sender_name.replace("\x00", ""),
            )
        key = ConversationKey.of(message)
        follow_up = self.services.follow_up
        # With the lock and the state, whether the conversation may be held by staff and whether a
        # missing state means "no dialog": each saves the turn a database read (see Probes).
        flags = (held_marker(key), HELD_COMPLETE, DIALOGS_COMPLETE, follow_up.comment_key(key))
        # A group message not addressed to the bot is answered only when the resident has a dialog open
        # with it or staff hold their conversation (the held marker, the first flag); otherwise it is
        # group chatter, and finding that out (with the group's settings) is the same single round trip.
        unaddressed = message.is_group and not self.etiquette.addressed(message)
        if message.is_group and not unaddressed:
            # What the resident says, without the words that addressed the bot ("回音，没有照片" answers
            # the photo question; "@回音 3栋楼道灯坏了" describes the problem without the mention).
            spoken = self.etiquette.addressing.without_address(message.text)
            if spoken and spoken != message.text.strip():
                message = replace(message, text=spoken)
        async with self.store.turn(
            key,
            message.message_id,
            flags,
            engaged_by=1 if unaddressed else 0,
            idle_hash=self.store.chat_settings_name(message.platform, message.chat_id)
            if unaddressed
            else None,
        ) as opened:
            if opened.replayed is not None:
                log.info(
                    "duplicate message ignored", platform=message.platform, message_id=message.message_id
                )
                return [Reply.from_dict(r) for r in opened.replayed]
            if not opened.idle:
                held, markers_complete, dialogs_complete, comment_pending = opened.flags
                probes = Probes(
                    maybe_held=held or not markers_complete,
                    state_known=opened.state is not None or dialogs_complete,
                    comment_pending=comment_pending,
                )
                try:
                    replies, state, move = await self._turn(message, key, opened.state, probes)
                except IntegrityError as conflict:
                    replies, state, move = await self._after_conflict(
                        conflict, message, key, opened.state, probes
                    )
                await opened.finish(
                    state, [r.to_dict() for r in replies], self.settings.dedup_ttl_s, also=move
                )
                return replies
        return await self.etiquette.chatter(message, opened.idle_hash)

    async def _after_conflict(
        self,
        conflict: IntegrityError,
        message: IncomingMessage,
        key: ConversationKey,
        state: dict[str, Any] | None,
        probes: Probes,
    ) -> tuple[list[Reply], dict[str, Any] | None, _Move | None]:
        """The turn's transaction failed on a constraint: the message was handled before, or the cached
        ids of its conversation were stale (the resident's data was erased, the conversation with it)."""
        recorded = await self._recorded_replies(message, key)
        if recorded is not None:
            # Handled before, and Redis has forgotten (it lost its data, or the dedup record expired):
            # the transaction that would have handled it again was rolled back.
            log.info(
                "redelivered message answered from the transcript",
                platform=message.platform,
                message_id=message.message_id,
            )
            return recorded, state, None
        if not self.refs.forget(key):
            raise conflict
        return await self._turn(message, key, state, probes)

    async def _recorded_replies(self, message: IncomingMessage, key: ConversationKey) -> list[Reply] | None:
        """The replies recorded in the transcript for ``message``, or None if it was never handled."""
        async with self.db.unit_of_work() as uow:
            recorded = await uow.repo.conversations.recorded_replies(key.part, message.message_id)
        return None if recorded is None else [Reply.from_dict(r) for r in recorded]

    # --- stages 3 to 5: one turn, under the conversation lock, in one transaction -----------------------
    async def _turn(
        self,
        message: IncomingMessage,
        key: ConversationKey,
        state: dict[str, Any] | None,
        probes: Probes,
    ) -> tuple[list[Reply], dict[str, Any] | None, _Move | None]:
        """One turn; ``state`` is the dialog state read from Redis under the lock. Returns the replies,
        the new state and, when the dialog moves into the resident's private chat, that conversation's key
        and state: the caller saves both as it releases the lock."""
        u = await self.nlu.parse(message.text)
        created: dict[str, ConversationRef] = {}
        async with self.db.unit_of_work() as uow:
            repo = uow.repo
            ref = await self.refs.resolve(repo, message, key, created)
            if state is not None and state.get("person") not in (None, ref.person_id):
                state = None  # the form of a resident whose data was erased since (their words, phone)
            await repo.conversations.add_transcript(
                ref.conversation_id,
                direction="in",
                author="resident",
                text=message.text,
                platform_message_id=message.message_id,
                author_person_id=ref.person_id,
                intent=u.intent.name.value,
                payload={"attachments": [a.to_dict() for a in message.attachments]}
                if message.attachments
                else None,
            )
            if not probes.state_known:  # Redis lost its data since start-up: the durable copy
                state = await repo.conversations.dialog_state(ref.conversation_id)
            turn = TurnContext(
                message=message,
                key=key,
                understanding=u,
                repo=repo,
                ref=ref,
                probes=probes,
                out=TurnOutput(state=state, intent=u.intent.name.value),
                command=self.etiquette.command(message),
                prompt_context=self._prompt_context(message, state),
                known_commands=self.known_commands,
            )
            await self._run_handlers(turn)
            out = turn.out
            private_key = private_key_for(message)
            moved = out.private_state is not None and private_key != key
            # Not under the safety instructions of an emergency: nothing may come between them and the
            # resident (the contact question still says what a phone number is kept for).
            if not message.is_group and repo.conversations.is_new(key.part) and out.handoff != "emergency":
                self._add_notice(out.prompts, private=False)
            if moved:
                private_ref = await self.refs.resolve_private(repo, message, ref, created)
                await repo.conversations.touch_conversation(private_ref.conversation_id, out.private_state)
                if repo.conversations.is_new(private_key.part):
                    # The resident's first private contact is the form moving there: the notice too.
                    self._add_notice(out.prompts, private=True)
            # A residents' group hears nothing personal; staff and handler chats are people entitled to it.
            mask = self.group_mask if ref.chat_purpose == RESIDENTS_CHAT else None
            replies = [to_reply(message, p, mask) for p in out.prompts]
            if out.erased:
                # Their conversations are gone: nothing of this turn is recorded for them.
                await uow.commit()
                self.refs.forget(key)
                return replies, None, None
            for i, reply in enumerate(replies):
                payload: dict[str, Any] = {
                    "target": reply.target.value,
                    "buttons": [b.payload for b in reply.buttons],
                }
                if i == out.not_understood_at:
                    payload[NOT_UNDERSTOOD] = True  # counted by the desk (repeated failures)
                if i == 0:
                    # The turn's whole answer, under the message's id: a redelivery after Redis lost
                    # its dedup record is answered from here (ConversationRepository.recorded_replies).
                    payload["replies"] = [r.to_dict() for r in replies]
                await repo.conversations.add_transcript(
                    ref.conversation_id,
                    direction="out",
                    author="bot",
                    text=reply.text,
                    platform_message_id=message.message_id if i == 0 else None,
                    payload=payload,
                )
            # After the transcript rows: its autoflush writes them all (in and out) in one INSERT.
            await repo.conversations.touch_conversation(ref.conversation_id, out.state)
            await uow.commit()
            self.metrics.turn(message, turn.verdict.value, state, out.state or out.private_state)
        self.refs.remember(created, chat_changed=message if out.chat_changed else None)
        # The dialog moving into the private chat is saved there as the turn finishes (same round trip).
        move = (private_key, out.private_state) if moved and out.private_state is not None else None
        return replies, out.state, move

    def _add_notice(self, prompts: list[Prompt], *, private: bool) -> None:
        """The privacy notice under the last reply of a resident's first private contact (one message
        more would be one more for an elderly resident to read, and would split the turn's answer)."""
        for i in range(len(prompts) - 1, -1, -1):
            prompt = prompts[i]
            if prompt.private == private and not isinstance(prompt, GroupNotice):
                notice = self.services.privacy.notice()
                prompts[i] = replace(prompt, text=f"{prompt.text}\n\n{notice}")
                return

    async def _run_handlers(self, turn: TurnContext) -> None:
        for handler in await run_handlers(self.handlers, turn):
            await handler.after(turn)

    def _prompt_context(self, message: IncomingMessage, state: dict[str, Any] | None) -> PromptContext:
        meta = (state or {}).get("meta", {})
        title = message.chat_title
        if state and state.get("origin", {}).get("chat_title"):
            title = str(state["origin"]["chat_title"])
        return PromptContext(
            bot_name=self.settings.bot_name,
            in_group=message.is_group,
            sender_name=message.sender_name,
            chat_title=title or ("群聊" if message.is_group else ""),
            saved_phone=meta.get("saved_phone"),
            party=meta.get("party_name"),
            retention_days=self.settings.retention_days,
        )
