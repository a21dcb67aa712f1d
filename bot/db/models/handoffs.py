"""Conversations handed to staff: the handoff, staff's internal notes, and canned replies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    String,
    Text,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models.base import Base, BigId, utcnow
from bot.db.models.status import HandoffStatus


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
