"""The conversations aggregate: communities, chats, conversations, their dialog state and transcript."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import select

from bot.db.models import Chat, Community, Conversation, Person, TranscriptMessage, utcnow
from bot.db.repository.base import RepositoryBase
from bot.db.repository.records import PENDING_TOUCH, PENDING_TRANSCRIPT

NEW_CONVERSATIONS = "huiyin.new_conversations"


class ConversationRepository(RepositoryBase):
    """Where a conversation happens and what was said in it."""

    async def community(self, code: str, name: str | None = None) -> Community:
        return await self._get_or_insert(
            Community, select(Community).where(Community.code == code), {"code": code, "name": name or code}
        )

    async def community_code(self, community_id: int) -> str | None:
        community = await self.session.get(Community, community_id)
        return community.code if community else None

    async def chat(
        self, platform: str, external_id: str, chat_type: str, title: str, community_id: int, listen: bool
    ) -> Chat:
        chat = await self._get_or_insert(
            Chat,
            select(Chat).where(Chat.platform == platform, Chat.external_id == external_id),
            {
                "platform": platform,
                "external_id": external_id,
                "chat_type": chat_type,
                "title": title,
                "community_id": community_id,
                "listen": listen,
            },
        )
        if title and chat.title != title:
            chat.title = title
        return chat

    async def find_chat(self, platform: str, external_id: str) -> Chat | None:
        return await self._first(
            select(Chat).where(Chat.platform == platform, Chat.external_id == external_id)
        )

    async def conversation(self, key: str, platform: str, chat: Chat, person: Person) -> Conversation:
        lookup = select(Conversation).where(Conversation.key == key)
        conv = await self._first(lookup)
        if conv is None:
            conv = await self._get_or_insert(
                Conversation,
                lookup,
                {
                    "key": key,
                    "platform": platform,
                    "chat_id": chat.id,
                    "person_id": person.id,
                    "community_id": chat.community_id,
                },
            )
            self.session.info.setdefault(NEW_CONVERSATIONS, set()).add(key)
        conv.last_message_at = utcnow()
        return conv

    def is_new(self, key: str) -> bool:
        """Whether this unit of work started the conversation ``key`` (the resident's first contact in
        that chat)."""
        return key in self.session.info.get(NEW_CONVERSATIONS, ())

    async def dialog_state(self, conversation_id: int) -> dict[str, Any] | None:
        """The durable copy of the conversation's dialog state."""
        return cast(
            dict[str, Any] | None,
            await self.session.scalar(
                select(Conversation.dialog_state).where(Conversation.id == conversation_id)
            ),
        )

    async def touch_conversation(self, conversation_id: int, dialog_state: dict[str, Any] | None) -> None:
        """Record activity and the durable copy of the dialog state.

        Written like transcript lines (:meth:`add_transcript`): before the session's next statement or at
        commit, in the same statement as the lines on PostgreSQL. A turn that wrote nothing else then
        commits in one statement without a transaction around it (see :func:`bot.db.session.commit`)."""
        touches = self.session.info.setdefault(PENDING_TOUCH, {})
        touches[conversation_id] = {
            "id": conversation_id,
            "last_message_at": utcnow(),
            "dialog_state": dialog_state,
        }

    async def add_transcript(
        self,
        conversation_id: int,
        *,
        direction: str,
        author: str,
        text: str,
        platform_message_id: str | None = None,
        author_person_id: int | None = None,
        intent: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        """Add a line to the transcript. It is written just before the session's next statement (so a
        query sees it, as with an ORM autoflush) or at commit, together with every line added since, in
        one INSERT: a turn's lines in and out cost one statement, where the ORM would insert them one by
        one on SQLite and ask for their ids back (see :func:`bot.db.session.write_pending`)."""
        self.session.info.setdefault(PENDING_TRANSCRIPT, []).append(
            {
                "conversation_id": conversation_id,
                "direction": direction,
                "author": author,
                "author_person_id": author_person_id,
                "platform_message_id": platform_message_id,
                "text": text,
                "intent": intent,
                "payload": payload or {},
                "created_at": utcnow(),
            }
        )

    async def recent_question(
        self, conversation_id: int, *, exclude_message_id: str | None = None
    ) -> str | None:
        """The resident's latest "who should I contact" question in this conversation, if any."""
        stmt = (
            select(TranscriptMessage.text)
            .where(
                TranscriptMessage.conversation_id == conversation_id,
                TranscriptMessage.direction == "in",
                TranscriptMessage.intent.in_(["ask_contact", "report"]),
            )
            .order_by(TranscriptMessage.id.desc())
            .limit(2)
        )
        if exclude_message_id is not None:
            stmt = stmt.where(
                (TranscriptMessage.platform_message_id != exclude_message_id)
                | TranscriptMessage.platform_message_id.is_(None)
            )
        return (await self.session.execute(stmt)).scalars().first()

    async def last_buttons(self, conversation_id: int, *, within_s: float) -> list[str]:
        """The buttons under the bot's latest turn in this conversation (its last few messages), when at
        most ``within_s`` seconds old: a confirmation that was asked for, and is still fresh."""
        rows = (
            await self.session.execute(
                select(TranscriptMessage.payload, TranscriptMessage.created_at)
                .where(
                    TranscriptMessage.conversation_id == conversation_id, TranscriptMessage.direction == "out"
                )
                .order_by(TranscriptMessage.id.desc())
                .limit(3)
            )
        ).all()
        now = utcnow()
        return [
            str(b)
            for payload, at in rows
            if (now - at).total_seconds() <= within_s
            for b in (payload or {}).get("buttons", [])
        ]

    async def transcript(self, conversation_id: int) -> list[TranscriptMessage]:
        rows = await self.session.execute(
            select(TranscriptMessage)
            .where(TranscriptMessage.conversation_id == conversation_id)
            .order_by(TranscriptMessage.id)
        )
        return list(rows.scalars())

    async def recorded_replies(self, conversation_key: str, platform_message_id: str) -> list[Any] | None:
        """The replies the bot gave to the message ``platform_message_id`` of the conversation
        ``conversation_key`` (as stored in ``conversation.key``), as :meth:`bot.message.Reply.to_dict`
        wrote them; ``[]`` if it was handled without a reply; None if it was never handled.

        This is how a redelivery is recognised once Redis has forgotten its dedup record: a handled
        message's line in the transcript is unique per conversation, and the first line of the bot's
        answer carries the same message id with every reply of that turn."""
        rows = await self.session.execute(
            select(TranscriptMessage.direction, TranscriptMessage.payload)
            .join(Conversation, Conversation.id == TranscriptMessage.conversation_id)
            .where(
                Conversation.key == conversation_key,
                TranscriptMessage.platform_message_id == platform_message_id,
            )
        )
        by_direction = {direction: payload for direction, payload in rows}
        if "in" not in by_direction:
            return None
        answered = by_direction.get("out") or {}
        return list(answered.get("replies", []))

    async def dialog_states(self) -> list[tuple[str, dict[str, Any]]]:
        """Every conversation's durable dialog state, by its key (to put back into Redis at start-up)."""
        rows = await self.session.execute(
            select(Conversation.key, Conversation.dialog_state).where(Conversation.dialog_state.is_not(None))
        )
        return [(key, state) for key, state in rows]
