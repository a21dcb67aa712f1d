"""``handle(message) -> replies``: the one transport-free entry point every channel and test uses.

The path of one message (see ARCHITECTURE.md):

1. Group etiquette, before anything costly: in a group the bot acts only when addressed (@-mention,
   reply to the bot, a command, its name) or when the sender is in the middle of a form in this group.
   Otherwise it stays silent, except that a group in *listen* mode may get one short offer of help.
   Ignored chatter is not recorded anywhere.
2. The conversation lock (per platform + chat + user), taken before any state is read.
3. Dedup by platform message id: a redelivered message returns the replies of the first delivery and has
   no second effect.
4. Understanding (NLU) → emergency first → the running dialog, or routing by intent.
5. Effects in one database transaction: transcript in and out, the durable copy of the dialog state, and
   a confirmed appeal together with its outbox row.
6. The dialog state is saved to Redis, the message marked as seen, the lock released.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.exc import IntegrityError

from bot.appeals.flow import FollowUp
from bot.db.conversations import NOT_UNDERSTOOD
from bot.db.models import AppealStatus, RoleGrant
from bot.db.repository import ConversationRef, NewAppeal, Repository
from bot.db.session import Database
from bot.dialog.engine import DialogEngine, Prompt, Turn, TurnContext
from bot.dialog.slots import bare, mask_personal
from bot.dialog.spec import DialogBundle
from bot.handoff import HandoffDesk, TurnHooks, Verdict
from bot.handoff.desk import HELD_COMPLETE, held_marker
from bot.message import Button, ChatType, IncomingMessage, Reply, Target
from bot.metrics import Metrics
from bot.nlu.base import EntityType, Intent, NLUBackend, Understanding
from bot.nlu.normalize import normalize
from bot.settings import Settings
from bot.state import DIALOGS_COMPLETE, ConversationKey, StateStore, private_key_for
from kb import KBAnswer, KnowledgeBase

log = structlog.get_logger(__name__)

# How sure the NLU must be of a report in an unaddressed group message before listen mode offers help.
LISTEN_OFFER_CONFIDENCE = 0.75
# Conversations whose database ids are cached per process (a few MB at most).
REF_CACHE_SIZE = 50_000
REF_CACHE_TTL_S = 60.0
"""How long a process trusts its cached ids of a conversation. The ids never change, but the community a
chat belongs to can (``huiyin admin bind-chat``): running servers see a rebinding within this time."""
# An emergency intent below this needs the knowledge base to agree before the safety script interrupts.
EMERGENCY_CONFIDENCE = 0.6
# Below this, an "other" message in a private chat is "not understood" unless the KB matches it.
UNDERSTOOD_CONFIDENCE = 0.5


@dataclass(slots=True)
class _TurnOutput:
    """What one turn produces, collected as the turn runs."""

    prompts: list[Prompt] = field(default_factory=list)
    state: dict[str, Any] | None = None
    private_state: dict[str, Any] | None = None  # a dialog moving into the resident's private chat
    intent: str | None = None
    handoff: str | None = None  # this turn asks for staff: asked | emergency (see bot/handoff)
    not_understood: bool = False
    not_understood_at: int | None = None  # index in prompts of the "not understood" line, if any
    chat_changed: bool = False  # a staff command rebound the chat (see bot/handoff/commands.py)

    def say(self, text: str, buttons: tuple[Button, ...] = (), *, private: bool = False) -> None:
        self.prompts.append(Prompt(text, buttons, private))


@dataclass(frozen=True, slots=True)
class _Hints:
    """What the turn's opening read from Redis says the turn may skip (see :meth:`Dispatcher.handle`)."""

    maybe_held: bool  # a held marker exists, or the markers are not known to be complete: ask the DB
    state_known: bool  # no state means no dialog: the database's durable copy need not be read
    comment_pending: bool  # the resident was asked for a comment on a rating


class Dispatcher:
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
        self.settings = settings
        self.store = store
        self.db = db
        self.nlu = nlu
        self.kb = kb
        self.dialogs = dialogs
        self.metrics = metrics or Metrics()
        self.words = dialogs.responses
        self.engine = DialogEngine(dialogs)
        self._tz = ZoneInfo(settings.timezone)
        names = sorted({n.lower() for n in settings.bot_names}, key=len, reverse=True)
        self._name_re = re.compile("|".join(re.escape(n) for n in names))
        self._refs: dict[str, tuple[float, ConversationRef]] = {}  # key -> (cached at, ids)
        self.handoff = HandoffDesk(
            settings=settings, store=store, kb=kb, words=self.words, metrics=self.metrics
        )
        self.handoff_hooks = TurnHooks(self.handoff)
        self.follow_up = FollowUp(
            settings=settings,
            store=store,
            words=self.words,
            bot_names=settings.bot_names,
            step_buttons=dialogs.step_buttons(),
        )

    # --- the entry point -------------------------------------------------------------------------------
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
        # With the lock and the state, whether the conversation may be held by staff and whether a
        # missing state means "no dialog": each saves the turn a database read (see the two flags' notes).
        flags = (held_marker(key), HELD_COMPLETE, DIALOGS_COMPLETE, self.follow_up.comment_key(key))
        # A group message not addressed to the bot is answered only when the resident has a dialog open
        # with it or staff hold their conversation (the held marker, the first flag); otherwise it is
        # group chatter, and finding that out (with the group's settings) is the same single round trip.
        unaddressed = message.is_group and not self._addressed(message)
        async with self.store.turn(
            key,
            message.message_id,
            flags,
            engaged_by=1 if unaddressed else 0,
            idle_hash=self.store.chat_settings_name(message.platform, message.chat_id)
            if unaddressed
            else None,
        ) as turn:
            if turn.replayed is not None:
                log.info(
                    "duplicate message ignored", platform=message.platform, message_id=message.message_id
                )
                return [Reply.from_dict(r) for r in turn.replayed]
            if not turn.idle:
                held, markers_complete, dialogs_complete, comment_pending = turn.flags
                hints = _Hints(
                    maybe_held=held or not markers_complete,
                    state_known=turn.state is not None or dialogs_complete,
                    comment_pending=comment_pending,
                )
                try:
                    replies, state, move = await self._handle_locked(message, key, turn.state, hints)
                except IntegrityError:
                    recorded = await self._recorded_replies(message, key)
                    if recorded is None:
                        raise
                    # Handled before, and Redis has forgotten (it lost its data, or the dedup record
                    # expired): the transaction that would have handled it again was rolled back.
                    log.info(
                        "redelivered message answered from the transcript",
                        platform=message.platform,
                        message_id=message.message_id,
                    )
                    replies, state, move = recorded, turn.state, None
                await turn.finish(state, [r.to_dict() for r in replies], self.settings.dedup_ttl_s, also=move)
                return replies
        return await self._unaddressed_group_message(message, turn.idle_hash)

    async def _recorded_replies(self, message: IncomingMessage, key: ConversationKey) -> list[Reply] | None:
        """The replies recorded in the transcript for ``message``, or None if it was never handled."""
        async with self.db.unit_of_work() as uow:
            recorded = await uow.repo.recorded_replies(key.part, message.message_id)
        return None if recorded is None else [Reply.from_dict(r) for r in recorded]

    # --- group etiquette -------------------------------------------------------------------------------
    def _addressed(self, message: IncomingMessage) -> bool:
        if message.mentions_bot or message.reply_to_bot:
            return True
        text = message.text.strip()
        if text.startswith("/"):
            return True
        return bool(self._name_re.search(text[:40].lower()))

    async def _unaddressed_group_message(
        self, message: IncomingMessage, chat_settings: dict[str, str]
    ) -> list[Reply]:
        """Group chatter: nothing, unless the group lets the bot listen (``chat_settings``, as cached in
        Redis; empty when they are not) and the message is an emergency or a likely appeal."""
        self.metrics.chatter(message.platform)
        if not chat_settings:
            chat_settings = await self._chat_settings(message)
        if chat_settings.get("listen") != "1":
            return []
        u = await self.nlu.parse(message.text)
        if u.intent.name is Intent.EMERGENCY and u.intent.confidence >= LISTEN_OFFER_CONFIDENCE:
            community = chat_settings.get("community") or self.settings.default_community
            answer = self.kb.lookup(u.text, community)
            if answer is not None and answer.emergency:
                return [self._to_reply(message, Prompt(answer.text))]
        if u.intent.name is not Intent.REPORT or u.intent.confidence < LISTEN_OFFER_CONFIDENCE:
            return []
        if not await self.store.take_offer_slot(
            message.platform, message.chat_id, message.sender_id, self.settings.listen_offer_cooldown_s
        ):
            return []
        return [
            self._to_reply(message, Prompt(self.words.get("listen.offer", bot_name=self.settings.bot_name)))
        ]

    async def _chat_settings(self, message: IncomingMessage) -> dict[str, str]:
        """The group's settings from the database, cached in Redis (they are read for every message of
        group chatter)."""
        async with self.db.unit_of_work() as uow:
            chat = await uow.repo.find_chat(message.platform.value, message.chat_id)
            listen = chat.listen if chat else self.settings.group_listen_default
            community = await self._community_code_of(uow.repo, chat.community_id) if chat else None
        cached = {
            "listen": "1" if listen else "0",
            "community": community or self.settings.default_community,
        }
        await self.store.set_chat_settings(message.platform, message.chat_id, cached)
        return cached

    def _community_name(self, code: str) -> str:
        try:
            return self.kb.community(code).name
        except KeyError:
            return code

    @staticmethod
    async def _community_code_of(repo: Repository, community_id: int) -> str | None:
        from bot.db.models import Community

        community = await repo.session.get(Community, community_id)
        return community.code if community else None

    # --- one turn, under the conversation lock ---------------------------------------------------------
    async def _handle_locked(
        self,
        message: IncomingMessage,
        key: ConversationKey,
        state: dict[str, Any] | None,
        hints: _Hints,
    ) -> tuple[list[Reply], dict[str, Any] | None, tuple[ConversationKey, dict[str, Any]] | None]:
        """One turn; ``state`` is the dialog state read from Redis under the lock. Returns the replies,
        the new state and, when the dialog moves into the resident's private chat, that conversation's key
        and state: the caller saves both as it releases the lock."""
        u = await self.nlu.parse(message.text)
        created: dict[str, ConversationRef] = {}
        async with self.db.unit_of_work() as uow:
            repo = uow.repo
            ref = await self._resolve(repo, message, key, created)
            await repo.add_transcript(
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
            if not hints.state_known:  # Redis lost its data since start-up: the durable copy
                state = await repo.dialog_state(ref.conversation_id)
            out = _TurnOutput(state=state, intent=u.intent.name.value)
            # Staff commands, invites, building leaders' relays, conversations staff hold: bot/handoff.
            verdict = await self.handoff_hooks.intercept(
                repo, ref, message, u, out, maybe_held=hints.maybe_held
            )
            if verdict is Verdict.HELD and self._is_emergency(u, ref):
                await self._emergency(ref, u, out)  # safety first, even while staff hold it
            elif verdict is Verdict.PASS:
                await self._turn(repo, ref, message, u, out, hints)
                await self.handoff_hooks.after_turn(repo, ref, message, out)

            private_key = private_key_for(message)
            moved = out.private_state is not None and private_key != key
            if moved:
                private_ref = await self._resolve_private(repo, message, ref, created)
                await repo.touch_conversation(private_ref.conversation_id, out.private_state)
            replies = [self._to_reply(message, p) for p in out.prompts]
            for i, reply in enumerate(replies):
                payload: dict[str, Any] = {
                    "target": reply.target.value,
                    "buttons": [b.payload for b in reply.buttons],
                }
                if i == 0:
                    # The turn's whole answer, under the message's id: a redelivery after Redis lost
                    # its dedup record is answered from here (Repository.recorded_replies).
                    payload["replies"] = [r.to_dict() for r in replies]
                if i == out.not_understood_at:
                    payload[NOT_UNDERSTOOD] = True  # counted by the handoff desk's failures in a row
                await repo.add_transcript(
                    ref.conversation_id,
                    direction="out",
                    author="bot",
                    text=reply.text,
                    platform_message_id=message.message_id if i == 0 else None,
                    payload=payload,
                )
            # After the transcript rows: its autoflush writes them all (in and out) in one INSERT.
            await repo.touch_conversation(ref.conversation_id, out.state)
            await uow.commit()
            self.metrics.turn(message, verdict.value, state, out.state or out.private_state)
        # Only ids of rows that now exist: a turn that failed before its commit created nothing.
        if len(self._refs) + len(created) > REF_CACHE_SIZE:
            self._refs.clear()
        now = time.monotonic()
        self._refs.update((k, (now, ref)) for k, ref in created.items())
        if out.chat_changed:
            prefix = f"{message.platform.value}:{message.chat_id}:"
            for stale in [k for k in self._refs if k.startswith(prefix)]:
                del self._refs[stale]
        # The dialog moving into the private chat is saved there as the turn finishes (same round trip).
        move = (private_key, out.private_state) if moved and out.private_state is not None else None
        return replies, out.state, move

    async def _resolve(
        self,
        repo: Repository,
        message: IncomingMessage,
        key: ConversationKey,
        created: dict[str, ConversationRef],
    ) -> ConversationRef:
        """The database ids behind this conversation. They never change once created, so they are
        cached per process (for :data:`REF_CACHE_TTL_S`, as the chat's community may be rebound): a turn
        then costs one UPDATE instead of a handful of SELECTs."""
        cached = self._cached_ref(key)
        if cached is not None:
            return cached
        existing = await repo.find_chat(message.platform.value, message.chat_id)
        if existing is not None:
            code = (
                await self._community_code_of(repo, existing.community_id) or self.settings.default_community
            )
        else:
            code = self.settings.default_community
        community = await repo.community(code, self._community_name(code))
        person = await repo.person_for(message.platform.value, message.sender_id, message.sender_name)
        chat = existing or await repo.chat(
            message.platform.value,
            message.chat_id,
            message.chat_type.value,
            message.chat_title,
            community.id,
            self.settings.group_listen_default if message.is_group else False,
        )
        conv = await repo.conversation(key.part, message.platform.value, chat, person)
        ref = ConversationRef(conv.id, person.id, chat.community_id, code, chat.id, chat.purpose)
        created[key.part] = ref  # cached once the turn's transaction has committed
        return ref

    def _cached_ref(self, key: ConversationKey) -> ConversationRef | None:
        entry = self._refs.get(key.part)
        if entry is None:
            return None
        cached_at, ref = entry
        if time.monotonic() - cached_at > REF_CACHE_TTL_S:
            del self._refs[key.part]
            return None
        return ref

    async def _resolve_private(
        self,
        repo: Repository,
        message: IncomingMessage,
        ref: ConversationRef,
        created: dict[str, ConversationRef],
    ) -> ConversationRef:
        key = private_key_for(message)
        cached = self._cached_ref(key)
        if cached is not None:
            return cached
        person = await repo.person(ref.person_id)
        assert person is not None
        chat = await repo.chat(
            message.platform.value, key.chat_id, ChatType.PRIVATE.value, "", ref.community_id, False
        )
        conv = await repo.conversation(key.part, message.platform.value, chat, person)
        private_ref = ConversationRef(
            conv.id, person.id, chat.community_id, ref.community_code, chat.id, chat.purpose
        )
        created[key.part] = private_ref
        return private_ref

    # --- deciding what to do ---------------------------------------------------------------------------
    async def _turn(
        self,
        repo: Repository,
        ref: ConversationRef,
        message: IncomingMessage,
        u: Understanding,
        out: _TurnOutput,
        hints: _Hints,
    ) -> None:
        ctx = await self._context(repo, ref, message, out.state)
        state = out.state
        # Ratings and their comments, answers to a duplicate offer: bot/appeals.
        handled = await self.follow_up.intercept(
            repo, ref, message, u, state, comment_pending=hints.comment_pending
        )
        if handled is not None:
            out.prompts.extend(handled.prompts)
            out.state = handled.state
            return
        if state is not None and state.get("dialog"):
            if self.engine.expired(state, self.settings.dialog_idle_timeout_s):
                description = str(state["slots"].get("description") or "问题")
                if message.is_group:  # the resident's words may name a phone or a flat
                    description = mask_personal(description)
                description = description[:20]
                out.say(
                    self.words.get(
                        "appeal.expired",
                        description=description,
                        minutes=self.settings.dialog_idle_timeout_s // 60,
                    )
                )
                out.state = state = None
                if self._trivial(message):
                    return
            else:
                if self._is_emergency(u, ref):
                    await self._emergency(ref, u, out)
                    return
                turn = self.engine.step(state, u, message, ctx)
                if turn.interrupted:
                    await self._route(repo, ref, message, u, out, ctx, in_dialog=True)
                    out.prompts.append(self.engine.resume(state, ctx))
                    return
                await self._apply(repo, ref, message, turn, out, ctx)
                return
        await self._route(repo, ref, message, u, out, ctx, in_dialog=False)

    async def _context(
        self, repo: Repository, ref: ConversationRef, message: IncomingMessage, state: dict[str, Any] | None
    ) -> TurnContext:
        meta = (state or {}).get("meta", {})
        title = message.chat_title
        if state and state.get("origin", {}).get("chat_title"):
            title = str(state["origin"]["chat_title"])
        return TurnContext(
            bot_name=self.settings.bot_name,
            in_group=message.is_group,
            sender_name=message.sender_name,
            chat_title=title or ("群聊" if message.is_group else ""),
            saved_phone=meta.get("saved_phone"),
            party=meta.get("party_name"),
        )

    def _trivial(self, message: IncomingMessage) -> bool:
        return len(bare(message.text)) <= 2 and not message.attachments

    async def _apply(
        self,
        repo: Repository,
        ref: ConversationRef,
        message: IncomingMessage,
        turn: Turn,
        out: _TurnOutput,
        ctx: TurnContext,
    ) -> None:
        """Carry out an engine turn: its prompts, its new state, its action, a move to private."""
        state = turn.state
        if (
            state is not None
            and state.get("slots", {}).get("description")
            and "kb" not in state.get("meta", {})
        ):
            self._classify(state, ref.community_code)
            ctx = replace(ctx, party=state["meta"].get("party_name"))
            if state["state"] == "confirm" and turn.prompts:
                # The summary was rendered before the classification was known: render it again.
                turn.prompts[-1] = self.engine.current_prompt(state, ctx)
        if turn.action == "create_appeal" and state is not None:
            await self._create_appeal(repo, ref, message, state, out)
            return
        if turn.action is not None:
            raise ValueError(f"dialog asked for unknown action {turn.action!r}")
        out.prompts.extend(turn.prompts)
        if turn.move_private:
            out.private_state = state
            out.state = None
        else:
            out.state = state

    def _classify(self, state: dict[str, Any], community: str) -> None:
        """Which KB matter and party the appeal is about: shown in the summary, stored on the appeal."""
        meta = state.setdefault("meta", {})
        answer = self.kb.lookup(normalize(str(state["slots"]["description"])), community)
        meta["kb"] = answer.matter_id if answer else None
        if answer is not None:
            meta.update(
                category=answer.category,
                party=answer.first_contact.party,
                party_sub=answer.first_contact.sub,
                party_name=answer.first_contact.name,
                urgent=answer.emergency,
            )

    async def _create_appeal(
        self,
        repo: Repository,
        ref: ConversationRef,
        message: IncomingMessage,
        state: dict[str, Any],
        out: _TurnOutput,
    ) -> None:
        offer = await self.follow_up.offer_duplicate(repo, ref, message, state)
        if offer is not None:  # an open appeal at the same place: offer to join it (bot/appeals)
            out.prompts.extend(offer)
            out.state = state
            return
        slots, meta, origin = state["slots"], state.get("meta", {}), state["origin"]
        place = slots.get("place") or {}
        now = datetime.now(self._tz)
        new = NewAppeal(
            draft_key=state["draft_key"],
            description=str(slots["description"]),
            origin_platform=origin["platform"],
            origin_chat=origin["chat_id"],
            origin_chat_type=origin["chat_type"],
            building=place.get("building"),
            unit=place.get("unit"),
            room=place.get("room"),
            place=place.get("place") or place.get("text"),
            location=place.get("location") or {},
            photos=slots.get("photo") or [],
            contact_phone=slots.get("contact"),
            category=meta.get("category"),
            kb_matter_id=meta.get("kb"),
            responsible_party=meta.get("party"),
            responsible_sub=meta.get("party_sub"),
            urgent=bool(meta.get("urgent")),
        )
        appeal, created = await repo.create_appeal(
            new,
            ref,
            public_id_prefix=self.settings.appeal_id_prefix,
            day=now.strftime("%Y%m%d"),
            first_response_due_at=now + timedelta(hours=self.settings.first_response_hours),
        )
        if not created:
            out.say(self.words.get("appeal.already_created", public_id=appeal.public_id))
            out.state = None
            return
        self.metrics.appeal_filed(repo.session, origin["platform"], "dialog")
        if new.contact_phone:
            await repo.set_phone(ref.person_id, new.contact_phone)
        party = meta.get("party_name")
        party_sentence = self.words.get("appeal.created_party", party=party) if party else ""
        out.say(
            self.words.get(
                "appeal.created",
                public_id=appeal.public_id,
                party_sentence=party_sentence,
                sla_hours=self.settings.first_response_hours,
            )
        )
        if origin["chat_type"] == ChatType.GROUP.value and origin["chat_id"] != message.chat_id:
            name = message.sender_name or "居民"
            text = self.words.get("appeal.created_group", name=name, public_id=appeal.public_id)
            out.prompts.append(_GroupNotice(text, origin_chat=origin["chat_id"]))
        out.state = None
        log.info("appeal created", public_id=appeal.public_id, community=ref.community_code)

    # --- routing outside a dialog ----------------------------------------------------------------------
    async def _route(
        self,
        repo: Repository,
        ref: ConversationRef,
        message: IncomingMessage,
        u: Understanding,
        out: _TurnOutput,
        ctx: TurnContext,
        *,
        in_dialog: bool,
    ) -> None:
        command, arg = self._command(message)
        if command == "kb" and arg:
            await self._kb_choice(ref, arg, out, in_dialog=in_dialog)
            return
        if command in {"help", "start"}:
            out.say(self.words.get("help", bot_name=self.settings.bot_name))
            return
        if command == "listen":
            await self._listen_command(repo, ref, message, arg, out)
            return
        if command == "status":
            await self._status(repo, ref, message, out, u)
            return
        if command == "cancel":
            out.say(self.words.get("appeal.nothing_to_cancel"))
            return
        if command == "human":
            self._human(ref, out)
            return
        if command == "report":
            if in_dialog:
                return
            if not arg:
                # The "帮我登记这个问题" button under an answer: the question is the description.
                arg = (
                    await repo.recent_question(ref.conversation_id, exclude_message_id=message.message_id)
                    or ""
                )
            await self._start_appeal(repo, ref, message, u, out, ctx, arg=arg or None)
            return

        intent = u.intent.name
        if self._is_emergency(u, ref):
            await self._emergency(ref, u, out)
        elif intent is Intent.REPORT and not in_dialog:
            await self._start_appeal(repo, ref, message, u, out, ctx, arg=None)
        elif intent is Intent.ASK_CONTACT:
            self._answer_question(ref, u, message, out)
        elif intent is Intent.STATUS:
            await self._status(repo, ref, message, out, u)
        elif intent is Intent.HUMAN:
            self._human(ref, out)
        elif intent is Intent.GREET:
            out.say(self.words.get("greet", bot_name=self.settings.bot_name))
        elif intent is Intent.THANKS:
            out.say(self.words.get("thanks"))
        elif intent is Intent.CANCEL:
            out.say(self.words.get("appeal.nothing_to_cancel"))
        elif not self._answer_question(ref, u, message, out, only_if_confident=True):
            self._not_understood(out)

    def _command(self, message: IncomingMessage) -> tuple[str | None, str]:
        text = (
            self._name_re.sub("", message.text.strip().lower(), count=1).strip() if message.is_group else ""
        )
        text = text or message.text.strip()
        if text.startswith("/"):
            head, _, arg = text.partition(" ")
            name = self.dialogs.rules.commands.get(head.lower())
            if name is None and head in {"/kb"}:
                name = "kb"
            return name, arg.strip()
        word = self.dialogs.rules.command_words.get(bare(text))
        return word, ""

    async def _start_appeal(
        self,
        repo: Repository,
        ref: ConversationRef,
        message: IncomingMessage,
        u: Understanding,
        out: _TurnOutput,
        ctx: TurnContext,
        *,
        arg: str | None,
    ) -> None:
        if arg is not None:
            # "/report 楼道灯坏了": understand the rest as the first message of the form.
            message = replace(message, text=arg)
            u = _entities_only(u, arg)
        saved_phone = await repo.saved_phone(ref.person_id)
        ctx = replace(ctx, saved_phone=saved_phone)
        turn = self.engine.start("appeal", u, message, ctx)
        state = turn.state
        if state is not None and saved_phone:
            state["meta"]["saved_phone"] = saved_phone
        if state is not None and state["slots"].get("description"):
            self._classify(state, ref.community_code)
            if state["state"] == "confirm":
                ctx = replace(ctx, party=state["meta"].get("party_name"))
                turn.prompts[-1] = self.engine.current_prompt(state, ctx)
        out.prompts.extend(turn.prompts)
        if turn.move_private:
            out.private_state, out.state = state, None
        else:
            out.state = state

    def _answer_question(
        self,
        ref: ConversationRef,
        u: Understanding,
        message: IncomingMessage,
        out: _TurnOutput,
        *,
        only_if_confident: bool = False,
    ) -> bool:
        answer = self.kb.lookup(u.text, ref.community_code)
        if answer is None:
            if not only_if_confident:
                self._not_understood(out)
            return not only_if_confident
        if only_if_confident and answer.score < 0.5:
            return False
        self._say_answer(answer, out)
        return True

    def _not_understood(self, out: _TurnOutput) -> None:
        out.not_understood_at = len(out.prompts)
        out.say(self.words.get("not_understood"))
        out.not_understood = True  # repeated failures queue the conversation for staff (bot/handoff)

    def _say_answer(self, answer: KBAnswer, out: _TurnOutput) -> None:
        if answer.clarify is not None:
            buttons = tuple(Button(title, f"/kb {matter}") for title, matter in answer.clarify.options)
            out.say(answer.clarify.question, buttons)
            return
        buttons = (Button("帮我登记这个问题", "/report"),) if answer.offer_appeal else ()
        out.say(answer.text, buttons)

    async def _kb_choice(
        self, ref: ConversationRef, matter_id: str, out: _TurnOutput, *, in_dialog: bool
    ) -> None:
        try:
            answer = self.kb.answer(matter_id, ref.community_code)
        except KeyError:
            self._not_understood(out)
            return
        self._say_answer(answer, out)

    def _is_emergency(self, u: Understanding, ref: ConversationRef) -> bool:
        """Safety first, but not on a hunch: a sure NLU, or an uncertain one the KB confirms."""
        if u.intent.name is not Intent.EMERGENCY:
            return False
        if u.intent.confidence >= EMERGENCY_CONFIDENCE:
            return True
        answer = self.kb.lookup(u.text, ref.community_code)
        return answer is not None and answer.emergency

    async def _emergency(self, ref: ConversationRef, u: Understanding, out: _TurnOutput) -> None:
        answer = self.kb.lookup(u.text, ref.community_code)
        if answer is not None and answer.emergency:
            out.say(answer.text)
        else:
            out.say(self.words.get("emergency"))
        out.handoff = "emergency"
        log.warning(
            "emergency message", conversation=ref.conversation_id, kb=answer.matter_id if answer else None
        )

    def _human(self, ref: ConversationRef, out: _TurnOutput) -> None:
        out.handoff = "asked"  # queued for staff, or the community office's contact (bot/handoff)

    async def _status(
        self,
        repo: Repository,
        ref: ConversationRef,
        message: IncomingMessage,
        out: _TurnOutput,
        u: Understanding,
    ) -> None:
        private = message.is_group
        if private:
            out.say(self.words.get("status.in_private", name=message.sender_name or "您"))
        asked = u.first(EntityType.APPEAL_ID)
        if asked is not None:  # "/status HY-…": that appeal, when the resident is connected to it
            out.say(await self.follow_up.status_of(repo, ref, asked.value), private=private)
            return
        appeals = await repo.appeals_of(ref.person_id)
        if not appeals:
            out.say(self.words.get("status.none", bot_name=self.settings.bot_name), private=private)
            return
        lines = [self.words.get("status.header")]
        for appeal in appeals:
            latest = await self.follow_up.progress_note(repo, appeal)
            note = f"\n  {latest}" if latest and appeal.status != AppealStatus.SUBMITTED else ""
            lines.append(
                self.words.get(
                    "status.item",
                    public_id=appeal.public_id,
                    status=AppealStatus(appeal.status).label,
                    summary=appeal.description[:24],
                    date=appeal.created_at.astimezone(self._tz).strftime("%m-%d"),
                    note=note,
                )
            )
        out.say("\n".join(lines), private=private)

    async def _listen_command(
        self, repo: Repository, ref: ConversationRef, message: IncomingMessage, arg: str, out: _TurnOutput
    ) -> None:
        if not message.is_group or arg not in {"on", "off"}:
            out.say(self.words.get("listen.usage"))
            return
        if not await self._may_change_group_settings(repo, ref):
            out.say(self.words.get("listen.not_allowed"))
            return
        chat = await repo.find_chat(message.platform.value, message.chat_id)
        assert chat is not None
        chat.listen = arg == "on"
        await self.store.set_chat_settings(
            message.platform,
            message.chat_id,
            {"listen": "1" if chat.listen else "0", "community": ref.community_code},
        )
        out.say(self.words.get(f"listen.{arg}", bot_name=self.settings.bot_name))

    async def _may_change_group_settings(self, repo: Repository, ref: ConversationRef) -> bool:
        """Staff and building leaders may; until a community has any, any member may (bootstrap)."""
        from sqlalchemy import select

        roles = await repo.roles_of(ref.person_id, ref.community_id)
        if {"staff", "building_leader"} & roles.keys():
            return True
        anyone_in_charge = await repo.session.scalar(
            select(RoleGrant.id)
            .where(
                RoleGrant.community_id == ref.community_id, RoleGrant.role.in_(["staff", "building_leader"])
            )
            .limit(1)
        )
        return anyone_in_charge is None

    # --- rendering -------------------------------------------------------------------------------------
    def _to_reply(self, message: IncomingMessage, prompt: Prompt) -> Reply:
        if isinstance(prompt, _GroupNotice):
            return Reply(
                prompt.text, chat_id=prompt.origin_chat, recipient_id=message.sender_id, target=Target.CHAT
            )
        if prompt.private and message.is_group:
            key = private_key_for(message)
            return Reply(prompt.text, chat_id=key.chat_id, recipient_id=message.sender_id, target=Target.PRIVATE,
                         buttons=prompt.buttons)  # fmt: skip
        text = prompt.text
        if message.is_group and message.sender_name:
            text = f"@{message.sender_name} {text}"
        return Reply(text, chat_id=message.chat_id, recipient_id=message.sender_id, buttons=prompt.buttons)


@dataclass(frozen=True, slots=True)
class _GroupNotice(Prompt):
    """A short notice into the group where a dialog started, sent while the dialog runs in private."""

    origin_chat: str = ""


def _entities_only(u: Understanding, text: str) -> Understanding:
    from bot.nlu.entities import extract_entities

    normalized = normalize(text)
    return Understanding(
        text=normalized, intent=u.intent, entities=extract_entities(normalized), ranking=u.ranking
    )
