"""Chats, the conversations in them (one per platform + chat + user) and their transcript."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models.base import Base, BigId, utcnow


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
    # "residents" (a building group or a resident's private chat), "staff" (a staff group of the
    # community: staff commands and notices about waiting conversations; see bot/handoff) or "handler"
    # (the chat of a property company, grid worker or department; see bot/cases).
    purpose: Mapped[str] = mapped_column(String(16), default="residents", server_default="residents")
    # A chat bound to a handler (purpose "handler"): new assignments and reminders are pushed there.
    handler_id: Mapped[int | None] = mapped_column(ForeignKey("handler.id", ondelete="SET NULL"))
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
