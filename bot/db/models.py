"""The tables: what must outlive a process. SQLAlchemy 2 typed declarative models.

Portable between SQLite (embedded default) and PostgreSQL: JSON columns use the generic ``JSON`` type,
timestamps are stored timezone-aware in UTC, enums are stored as plain strings (readable in SQL, and a
new value needs no migration of a database enum type).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Named constraints so that Alembic migrations are reproducible on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite drops the zone; this puts it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger there would not.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class Role(StrEnum):
    RESIDENT = "resident"
    BUILDING_LEADER = "building_leader"
    STAFF = "staff"


class AppealStatus(StrEnum):
    """The life of an appeal. ``submitted`` is where huiyin leaves it; the backend moves it on."""

    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    REJECTED = "rejected"
    CLOSED = "closed"
    REOPENED = "reopened"  # the resident was not satisfied with the result: handled again

    @property
    def label(self) -> str:
        return _STATUS_LABELS[self]


_STATUS_LABELS = {
    AppealStatus.SUBMITTED: "已提交",
    AppealStatus.ACCEPTED: "已受理",
    AppealStatus.ASSIGNED: "已派单",
    AppealStatus.IN_PROGRESS: "处理中",
    AppealStatus.RESOLVED: "已办结",
    AppealStatus.REJECTED: "未受理",
    AppealStatus.CLOSED: "已关闭",
    AppealStatus.REOPENED: "重新办理中",
}

OPEN_STATUSES = (
    AppealStatus.SUBMITTED,
    AppealStatus.ACCEPTED,
    AppealStatus.ASSIGNED,
    AppealStatus.IN_PROGRESS,
    AppealStatus.REOPENED,
)


class Community(Base):
    __tablename__ = "community"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Person(Base):
    """A resident, building leader or staff member: one person across chats of a platform."""

    __tablename__ = "person"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    identities: Mapped[list[PlatformIdentity]] = relationship(back_populates="person")


class PlatformIdentity(Base):
    __tablename__ = "platform_identity"
    __table_args__ = (UniqueConstraint("platform", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    person: Mapped[Person] = relationship(back_populates="identities")


class RoleGrant(Base):
    """A role of a person in one community. Building leaders carry the buildings they look after."""

    __tablename__ = "role_grant"
    __table_args__ = (UniqueConstraint("person_id", "community_id", "role"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    buildings: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Chat(Base):
    """A group or private chat on a platform, bound to a community, with its group settings."""

    __tablename__ = "chat"
    __table_args__ = (UniqueConstraint("platform", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128))
    chat_type: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200), default="")
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    listen: Mapped[bool] = mapped_column(Boolean, default=False)
    # "residents" (a building group or a resident's private chat) or "staff" (a staff group of the
    # community: staff commands and notices about waiting conversations; see bot/handoff).
    purpose: Mapped[str] = mapped_column(String(16), default="residents", server_default="residents")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversation(Base):
    """One resident in one chat: the unit of dialog state, transcript and (later) staff handoff."""

    __tablename__ = "conversation"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    platform: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[int] = mapped_column(ForeignKey("chat.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    handoff_holder_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    # The durable copy of the resident's dialog state (Redis holds the working copy). Written in the same
    # transaction as the turn's transcript, so a half-finished appeal survives losing Redis or a restart.
    dialog_state: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_message_at: Mapped[datetime] = mapped_column(default=utcnow)


class TranscriptMessage(Base):
    """The transcript: what residents said to the bot and what the bot (or staff) answered.

    Group chatter the bot ignores is not recorded: residents did not address the bot.
    """

    __tablename__ = "transcript_message"
    __table_args__ = (
        UniqueConstraint("conversation_id", "platform_message_id", "direction"),
        Index("ix_transcript_conversation_time", "conversation_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(8))  # "in" | "out"
    author: Mapped[str] = mapped_column(String(16))  # "resident" | "bot" | "staff"
    author_person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    platform_message_id: Mapped[str | None] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text, default="")
    intent: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Appeal(Base):
    """A confirmed appeal (诉求). ``draft_key`` makes creation idempotent: one dialog, one appeal."""

    __tablename__ = "appeal"
    __table_args__ = (Index("ix_appeal_community_status", "community_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    draft_key: Mapped[str] = mapped_column(String(64), unique=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    relayed_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversation.id"))
    origin_platform: Mapped[str] = mapped_column(String(16))
    origin_chat: Mapped[str] = mapped_column(String(128))
    origin_chat_type: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    building: Mapped[str | None] = mapped_column(String(16))
    unit: Mapped[str | None] = mapped_column(String(16))
    room: Mapped[str | None] = mapped_column(String(16))
    place: Mapped[str | None] = mapped_column(String(200))
    location: Mapped[dict[str, Any]] = mapped_column(default=dict)
    photos: Mapped[list[Any]] = mapped_column(default=list)
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    category: Mapped[str | None] = mapped_column(String(64))
    kb_matter_id: Mapped[str | None] = mapped_column(String(100))
    responsible_party: Mapped[str | None] = mapped_column(String(32))
    responsible_sub: Mapped[str | None] = mapped_column(String(64))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=AppealStatus.SUBMITTED.value)
    backend_id: Mapped[str | None] = mapped_column(String(128))
    supporters: Mapped[int] = mapped_column(Integer, default=1)
    first_response_due_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # The city's case backend (bot/appeals, integrations/backend): which configured backend took the
    # appeal, the id (or Open311 token) it gave, what it last reported, and when to ask it again.
    backend: Mapped[str | None] = mapped_column(String(32))
    backend_token: Mapped[str | None] = mapped_column(String(128))
    backend_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    next_poll_at: Mapped[datetime | None] = mapped_column(index=True)
    # SLA and staff attention: the first response from the backend, an overdue first response, and a
    # flag (with its latest reason) that puts the appeal on the staff's list.
    first_responded_at: Mapped[datetime | None] = mapped_column()
    overdue_at: Mapped[datetime | None] = mapped_column()
    flagged_at: Mapped[datetime | None] = mapped_column(index=True)
    flag_reason: Mapped[str | None] = mapped_column(String(32))
    # The resident's rating of the result (satisfied | basic | unsatisfied).
    rating: Mapped[str | None] = mapped_column(String(16))
    rating_requested_at: Mapped[datetime | None] = mapped_column()
    rated_at: Mapped[datetime | None] = mapped_column()

    events: Mapped[list[AppealEvent]] = relationship(back_populates="appeal", order_by="AppealEvent.id")


class AppealSupporter(Base):
    """A resident who reported the same problem and joined an open appeal instead of filing a new one.

    Where they joined from is kept so that status changes reach them there too.
    """

    __tablename__ = "appeal_supporter"
    __table_args__ = (UniqueConstraint("appeal_id", "person_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeal.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    origin_platform: Mapped[str] = mapped_column(String(16))
    origin_chat: Mapped[str] = mapped_column(String(128))
    origin_chat_type: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AppealEvent(Base):
    """The status history of an appeal, plus notes, ratings and supporters joining."""

    __tablename__ = "appeal_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeal.id", ondelete="CASCADE"), index=True)
    # status | note | rating | comment | supporter | forwarded | overdue | flag
    kind: Mapped[str] = mapped_column(String(16))
    status_from: Mapped[str | None] = mapped_column(String(16))
    status_to: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(
        String(64), default=""
    )  # "resident:12" | "bot" | "backend" | "staff:3"
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The backend's own id of the event this row records (inbound webhook): a replay changes nothing.
    source_event_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    appeal: Mapped[Appeal] = relationship(back_populates="events")


class OutboxEntry(Base):
    """Work for the backend forwarder, written in the same transaction as the change it announces.

    Rows without ``platform`` go to the city's case backend; rows with a ``platform`` (action
    ``notify``) are messages to residents, sent by a process that has a sender for that platform.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeal.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(32))  # create | update | rating | comment | notify
    platform: Mapped[str | None] = mapped_column(String(16))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    failed_at: Mapped[datetime | None] = mapped_column()  # a notification given up on (never backend rows)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Counter(Base):
    """Named counters, e.g. the daily sequence behind readable appeal ids (HY-20261122-0001)."""

    __tablename__ = "counter"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class AuditEntry(Base):
    """Who did what to which conversation or appeal (staff actions; filled by the staff console)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    actor_person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    # The community the action concerns, so staff see only their own communities' entries.
    community_id: Mapped[int | None] = mapped_column(ForeignKey("community.id"), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- staff, roles and handoff (bot/roles.py, bot/handoff/, bot/staff/) ----------------------------------


class StaffAccount(Base):
    """A staff member's console login. The communities they serve are their ``staff`` role grants."""

    __tablename__ = "staff_account"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), unique=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id, never the password
    display_name: Mapped[str] = mapped_column(String(100))  # signs the replies residents receive
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column()


class InviteCode(Base):
    """A one-time code that makes whoever redeems it (in a private chat) staff or building leader.

    Only a hash of the code is stored. A staff invite may be tied to a console account: redeeming it
    links the chat identity to that account's person, so "staff in chat" acts as the same person.
    """

    __tablename__ = "invite_code"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    buildings: Mapped[list[Any]] = mapped_column(default=list)
    staff_account_id: Mapped[int | None] = mapped_column(ForeignKey("staff_account.id", ondelete="CASCADE"))
    created_by: Mapped[str] = mapped_column(String(64), default="")
    expires_at: Mapped[datetime] = mapped_column()
    redeemed_at: Mapped[datetime | None] = mapped_column()
    redeemed_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    revoked_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HandoffStatus(StrEnum):
    WAITING = "waiting"  # in the queue; the bot still answers
    ACTIVE = "active"  # a person holds the conversation; the bot is silent
    CLOSED = "closed"


class Handoff(Base):
    """One stretch of a conversation handed to people: queued, taken over, released.

    At most one open (waiting or active) handoff per conversation, enforced by a partial unique index.
    ``conversation.handoff_holder_id`` mirrors the holder of the active one, for the per-turn check.
    """

    __tablename__ = "handoff"
    __table_args__ = (
        Index("ix_handoff_community_status", "community_id", "status"),
        Index(
            "uq_handoff_open_conversation",
            "conversation_id",
            unique=True,
            sqlite_where=sql_text("status != 'closed'"),
            postgresql_where=sql_text("status != 'closed'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversation.id", ondelete="CASCADE"), index=True
    )
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"))
    status: Mapped[str] = mapped_column(String(16), default=HandoffStatus.WAITING.value)
    reason: Mapped[str] = mapped_column(String(16))  # asked | not_understood | emergency | staff
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    holder_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    # Where the holder works from when they took over in a chat ({"platform", "chat_id"}): the
    # resident's messages are forwarded there.
    holder_chat: Mapped[dict[str, Any]] = mapped_column(default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    taken_at: Mapped[datetime | None] = mapped_column()
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()
    close_reason: Mapped[str | None] = mapped_column(String(16))  # released | auto | withdrawn


class HandoffNote(Base):
    """An internal note by staff on a conversation. Kept apart from the transcript: never sent."""

    __tablename__ = "handoff_note"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversation.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CannedReply(Base):
    """A prepared answer staff can send with one click (console) or ``/reply N #k`` (chat)."""

    __tablename__ = "canned_reply"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
