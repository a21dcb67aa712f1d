"""Domain-level reads and writes over one session. The core never builds SQL itself.

Get-or-create of people, chats and conversations is race-safe across processes: it inserts with
``ON CONFLICT DO NOTHING`` and reads back, so two processes meeting the same new resident at once both
end with the same row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Select, Table, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    Appeal,
    AppealEvent,
    AppealStatus,
    Base,
    Chat,
    Community,
    Conversation,
    Counter,
    OutboxEntry,
    Person,
    PlatformIdentity,
    RoleGrant,
    TranscriptMessage,
    utcnow,
)

TRANSCRIPT_TABLE = cast(Table, TranscriptMessage.__table__)
CONVERSATION_TABLE = cast(Table, Conversation.__table__)
PERSON_TABLE = cast(Table, Person.__table__)
PENDING_TRANSCRIPT = "huiyin.pending_transcript"
"""``session.info`` key of the transcript lines :meth:`Repository.add_transcript` has not written yet."""
PENDING_TOUCH = "huiyin.pending_touch"
"""``session.info`` key of the conversations :meth:`Repository.touch_conversation` has not written yet
(a dict by conversation id: a later touch of the same conversation replaces an earlier one)."""
T = TypeVar("T")
M = TypeVar("M", bound=Base)


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """The database identities behind one conversation, resolved once per handled message."""

    conversation_id: int
    person_id: int
    community_id: int
    community_code: str
    chat_pk: int
    chat_purpose: str = "residents"  # "staff" for a bound staff chat (see bot.handoff.notices.STAFF_CHAT)


@dataclass(frozen=True, slots=True)
class NewAppeal:
    """Everything a confirmed appeal dialog collected. ``draft_key`` identifies the dialog instance."""

    draft_key: str
    description: str
    origin_platform: str
    origin_chat: str
    origin_chat_type: str
    building: str | None = None
    unit: str | None = None
    room: str | None = None
    place: str | None = None
    location: dict[str, Any] = field(default_factory=dict)
    photos: list[Any] = field(default_factory=list)
    contact_phone: str | None = None
    category: str | None = None
    kb_matter_id: str | None = None
    responsible_party: str | None = None
    responsible_sub: str | None = None
    urgent: bool = False
    relayed_by_id: int | None = None


@dataclass(frozen=True, slots=True)
class FiledAppeal:
    """The identity of an appeal :meth:`Repository.create_appeal` filed (or found already filed)."""

    id: int
    public_id: str


SKIP_PENDING_OPTION = "huiyin_skip_pending"
SKIP_PENDING = {SKIP_PENDING_OPTION: True}
"""Execution options of a statement that reads neither transcript lines nor conversations: the
buffered ones (:meth:`Repository.add_transcript`, :meth:`Repository.touch_conversation`) need not be
written before it, and are written with the commit instead (one round trip fewer)."""

# PostgreSQL: an appeal, its first status event and its outbox row in one statement. The day's counter
# is incremented in the same statement (its row stays locked until the commit, which serializes the
# numbering), unless the dialog's appeal exists already (``draft_key``): then nothing is written and no
# row is returned. (Two processes filing the same dialog at the same instant, which the conversation lock
# prevents, would both pass that check; the loser's ON CONFLICT leaves a gap in the day's numbers and
# nothing else.) Parameters in a SELECT list have no type from the column they go to, hence the casts.
_PG_FILE_APPEAL = text(
    """
    WITH seq AS (
        INSERT INTO counter (name, value)
        SELECT :counter, 1 WHERE NOT EXISTS (SELECT 1 FROM appeal WHERE draft_key = :draft_key)
        ON CONFLICT (name) DO UPDATE SET value = counter.value + 1
        RETURNING value
    ), filed AS (
        INSERT INTO appeal (public_id, draft_key, community_id, reporter_id, relayed_by_id,
            conversation_id, origin_platform, origin_chat, origin_chat_type, description, building, unit,
            room, place, location, photos, contact_phone, category, kb_matter_id, responsible_party,
            responsible_sub, urgent, status, supporters, first_response_due_at, backend_state,
            created_at, updated_at)
        SELECT :prefix || lpad(CAST(value AS TEXT), greatest(4, length(CAST(value AS TEXT))), '0'),
            :draft_key, CAST(:community_id AS BIGINT), CAST(:reporter_id AS BIGINT),
            CAST(:relayed_by_id AS BIGINT), CAST(:conversation_id AS BIGINT), :origin_platform,
            :origin_chat, :origin_chat_type, :description, :building, :unit, :room, :place,
            CAST(:location AS JSON), CAST(:photos AS JSON), :contact_phone, :category, :kb_matter_id,
            :responsible_party, :responsible_sub, CAST(:urgent AS BOOLEAN), :status, 1,
            CAST(:first_response_due_at AS TIMESTAMPTZ), '{}', CAST(:now AS TIMESTAMPTZ),
            CAST(:now AS TIMESTAMPTZ)
        FROM seq
        ON CONFLICT (draft_key) DO NOTHING
        RETURNING id, public_id
    ), event AS (
        INSERT INTO appeal_event (appeal_id, kind, status_to, note, actor, payload, created_at)
        SELECT id, 'status', :status, :note, :actor, '{}', CAST(:now AS TIMESTAMPTZ) FROM filed
    ), queued AS (
        INSERT INTO outbox (appeal_id, action, idempotency_key, payload, attempts, next_attempt_at,
                            created_at)
        SELECT id, 'create', public_id || :create_suffix, json_build_object('public_id', public_id), 0,
               CAST(:now AS TIMESTAMPTZ), CAST(:now AS TIMESTAMPTZ)
        FROM filed
    )
    SELECT id, public_id FROM filed
    """
)


class Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _dialect(self) -> str:
        bind = self.session.bind
        return bind.dialect.name if bind is not None else ""

    # --- helpers -------------------------------------------------------------------------------------
    def _insert(self, model: type[Base]) -> Any:
        return (postgresql.insert if self._dialect() == "postgresql" else sqlite.insert)(model)

    async def _first(self, stmt: Select[T]) -> T | None:
        return (await self.session.execute(stmt)).scalars().first()

    async def _get_or_insert(self, model: type[M], lookup: Select[M], values: dict[str, Any]) -> M:
        found = await self._first(lookup)
        if found is not None:
            return found
        await self.session.execute(self._insert(model).values(**values).on_conflict_do_nothing())
        found = await self._first(lookup)
        assert found is not None, f"{model.__name__} vanished right after insert"
        return found

    # --- communities, people, chats, conversations ---------------------------------------------------
    async def community(self, code: str, name: str | None = None) -> Community:
        return await self._get_or_insert(
            Community, select(Community).where(Community.code == code), {"code": code, "name": name or code}
        )

    async def person_for(self, platform: str, external_id: str, display_name: str) -> Person:
        identity = await self._first(
            select(PlatformIdentity).where(
                PlatformIdentity.platform == platform, PlatformIdentity.external_id == external_id
            )
        )
        if identity is not None:
            if display_name and identity.display_name != display_name:
                identity.display_name = display_name
            person = await self.session.get(Person, identity.person_id)
            assert person is not None
            return person
        person = Person(display_name=display_name)
        self.session.add(person)
        await self.session.flush()
        await self.session.execute(
            self._insert(PlatformIdentity)
            .values(
                person_id=person.id, platform=platform, external_id=external_id, display_name=display_name
            )
            .on_conflict_do_nothing()
        )
        identity = await self._first(
            select(PlatformIdentity).where(
                PlatformIdentity.platform == platform, PlatformIdentity.external_id == external_id
            )
        )
        assert identity is not None
        if identity.person_id != person.id:  # another process won the race: use its person
            await self.session.delete(person)
            winner = await self.session.get(Person, identity.person_id)
            assert winner is not None
            return winner
        return person

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
        conv = await self._get_or_insert(
            Conversation,
            select(Conversation).where(Conversation.key == key),
            {
                "key": key,
                "platform": platform,
                "chat_id": chat.id,
                "person_id": person.id,
                "community_id": chat.community_id,
            },
        )
        conv.last_message_at = utcnow()
        return conv

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

    async def roles_of(self, person_id: int, community_id: int) -> dict[str, list[Any]]:
        grants = (
            await self.session.execute(
                select(RoleGrant).where(
                    RoleGrant.person_id == person_id, RoleGrant.community_id == community_id
                )
            )
        ).scalars()
        return {g.role: list(g.buildings or []) for g in grants}

    async def anyone_holds(self, community_id: int, roles: Sequence[str]) -> bool:
        """Whether anybody holds one of ``roles`` in the community."""
        found = await self.session.scalar(
            select(RoleGrant.id)
            .where(RoleGrant.community_id == community_id, RoleGrant.role.in_(list(roles)))
            .limit(1)
        )
        return found is not None

    async def community_code(self, community_id: int) -> str | None:
        community = await self.session.get(Community, community_id)
        return community.code if community else None

    async def set_phone(self, person_id: int, phone: str) -> None:
        person = await self.session.get(Person, person_id)
        if person is not None:
            person.phone = phone

    async def saved_phone(self, person_id: int) -> str | None:
        """The phone number the resident left before, if any (one column, without loading the person)."""
        connection = await self.session.connection()
        stmt = select(PERSON_TABLE.c.phone).where(PERSON_TABLE.c.id == person_id)
        return cast(str | None, await connection.scalar(stmt))

    async def person(self, person_id: int) -> Person | None:
        return await self.session.get(Person, person_id)

    # --- transcript ----------------------------------------------------------------------------------
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

    # --- appeals -------------------------------------------------------------------------------------
    async def next_sequence(self, name: str) -> int:
        """Atomically increment and return a named counter (row-locked on PostgreSQL)."""
        ins = self._insert(Counter).values(name=name, value=1)
        stmt = ins.on_conflict_do_update(
            index_elements=[Counter.name], set_={"value": Counter.value + 1}
        ).returning(Counter.value)
        return cast(int, (await self.session.execute(stmt)).scalar_one())

    async def appeal_by_draft(self, draft_key: str) -> Appeal | None:
        return await self._first(select(Appeal).where(Appeal.draft_key == draft_key))

    async def appeal_by_public_id(self, public_id: str) -> Appeal | None:
        return await self._first(select(Appeal).where(Appeal.public_id == public_id))

    async def create_appeal(
        self,
        new: NewAppeal,
        ref: ConversationRef,
        *,
        public_id_prefix: str,
        day: str,
        first_response_due_at: datetime,
        actor: str | None = None,
        note: str = "居民通过回音提交",
    ) -> tuple[FiledAppeal, bool]:
        """Create the appeal, its first status event and its outbox row; idempotent on ``draft_key``.

        Returns ``(appeal, created)``; ``created`` is False when the dialog's appeal existed already (then
        nothing is written). ``actor`` and ``note`` are the status event's (default: the reporter,
        through huiyin). The caller commits: all three rows land in one transaction, on PostgreSQL in
        one statement with the day's sequence number (see :data:`_PG_FILE_APPEAL`).
        """
        values = {
            "draft_key": new.draft_key,
            "community_id": ref.community_id,
            "reporter_id": ref.person_id,
            "relayed_by_id": new.relayed_by_id,
            "conversation_id": ref.conversation_id,
            "origin_platform": new.origin_platform,
            "origin_chat": new.origin_chat,
            "origin_chat_type": new.origin_chat_type,
            "description": new.description,
            "building": new.building,
            "unit": new.unit,
            "room": new.room,
            "place": new.place,
            "location": new.location,
            "photos": new.photos,
            "contact_phone": new.contact_phone,
            "category": new.category,
            "kb_matter_id": new.kb_matter_id,
            "responsible_party": new.responsible_party,
            "responsible_sub": new.responsible_sub,
            "urgent": new.urgent,
            "status": AppealStatus.SUBMITTED.value,
            "first_response_due_at": first_response_due_at,
        }
        event = {"actor": actor or f"resident:{ref.person_id}", "note": note}
        if self._dialect() == "postgresql":
            now = utcnow()
            params = {
                **values,
                "location": json.dumps(new.location, ensure_ascii=False),
                "photos": json.dumps(new.photos, ensure_ascii=False),
                **event,
                "counter": f"appeal:{day}",
                "create_suffix": ":create",  # the outbox row's idempotency key, as below
                "prefix": f"{public_id_prefix}-{day}-",
                "now": now,
            }
            row = (
                await self.session.execute(_PG_FILE_APPEAL, params, execution_options=SKIP_PENDING)
            ).first()
            if row is not None:
                return FiledAppeal(row.id, row.public_id), True
            existing = await self.appeal_by_draft(new.draft_key)
            assert existing is not None, "an appeal conflicted on its draft key and is not there"
            return FiledAppeal(existing.id, existing.public_id), False
        existing = await self.appeal_by_draft(new.draft_key)
        if existing is not None:
            return FiledAppeal(existing.id, existing.public_id), False
        seq = await self.next_sequence(f"appeal:{day}")
        appeal = Appeal(public_id=f"{public_id_prefix}-{day}-{seq:04d}", **values)
        self.session.add(appeal)
        await self.session.flush()
        self.session.add(
            AppealEvent(appeal_id=appeal.id, kind="status", status_to=AppealStatus.SUBMITTED.value, **event)
        )
        self.session.add(
            OutboxEntry(
                appeal_id=appeal.id,
                action="create",
                idempotency_key=f"{appeal.public_id}:create",
                payload={"public_id": appeal.public_id},
            )
        )
        return FiledAppeal(appeal.id, appeal.public_id), True

    async def appeals_of(self, person_id: int, limit: int = 5) -> list[Appeal]:
        rows = await self.session.execute(
            select(Appeal)
            .where((Appeal.reporter_id == person_id) | (Appeal.relayed_by_id == person_id))
            .order_by(Appeal.id.desc())
            .limit(limit)
        )
        return list(rows.scalars())

    async def latest_event(self, appeal_id: int) -> AppealEvent | None:
        return await self._first(
            select(AppealEvent)
            .where(AppealEvent.appeal_id == appeal_id)
            .order_by(AppealEvent.id.desc())
            .limit(1)
        )
