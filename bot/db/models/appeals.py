"""Appeals, their supporters (+1), their status events, their outbox rows and the day's counters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db.models.base import Base, BigId, utcnow
from bot.db.models.status import AppealStatus


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
    # The case desk: who handles the appeal (None: not assigned yet), whether the community handles it
    # or it went to the city's case backend, and the deadlines that act (bot/cases/deadlines.py).
    handler_id: Mapped[int | None] = mapped_column(ForeignKey("handler.id", ondelete="SET NULL"), index=True)
    destination: Mapped[str] = mapped_column(String(16), default="community", server_default="community")
    assigned_at: Mapped[datetime | None] = mapped_column()
    resolution_due_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    response_reminded_at: Mapped[datetime | None] = mapped_column()
    resolution_reminded_at: Mapped[datetime | None] = mapped_column()
    resolution_overdue_at: Mapped[datetime | None] = mapped_column()
    # Privacy: when the resident withdrew the appeal, and when its personal data (phone, room, photos,
    # the resident's own words) was removed, by the retention period or at the resident's request.
    withdrawn_at: Mapped[datetime | None] = mapped_column()
    personal_data_removed_at: Mapped[datetime | None] = mapped_column(index=True)

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
    )  # "resident:12" | "bot" | "backend" | "staff:3" | "handler:7" (a handler's person)
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
