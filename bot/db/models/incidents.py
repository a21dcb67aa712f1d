"""Area-wide incidents (片区性事件): many residents reporting the same kind of problem across a community
within a short time — the water off in the whole estate — handled as one case."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models.base import Base, BigId, utcnow

INCIDENT_OPEN = "open"
INCIDENT_RESOLVED = "resolved"


class Incident(Base):
    """One incident of one kind (a KB matter group or category: ``water``, ``power``…) in one community.

    ``open_key`` is ``"<community id>:<kind>"`` while the incident is open and NULL once resolved: its
    unique constraint lets only one incident of a kind be open in a community, whichever process detects
    it first (NULLs never collide). ``case_appeal_id`` is the one appeal that carries the case: every
    report of the incident is a supporter of it, so its status changes reach all of them.
    """

    __tablename__ = "incident"
    __table_args__ = (Index("ix_incident_community_status", "community_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(32))  # what residents call it: 停水, 停电
    status: Mapped[str] = mapped_column(String(16), default=INCIDENT_OPEN)
    open_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    case_appeal_id: Mapped[int | None] = mapped_column(
        ForeignKey("appeal.id", ondelete="SET NULL"), unique=True
    )
    buildings: Mapped[list[Any]] = mapped_column(default=list)
    reports: Mapped[int] = mapped_column(Integer, default=0)
    first_report_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_report_at: Mapped[datetime] = mapped_column(default=utcnow)
    # What residents are told while it is open ("物业正在抢修，预计14:00恢复"): the case's latest progress.
    restore_text: Mapped[str] = mapped_column(Text, default="")
    # The staff alert: how many reports the last alert counted, and when it went (updates are throttled).
    alerted_reports: Mapped[int] = mapped_column(Integer, default=0)
    alerted_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Announcement(Base):
    """A notice staff posted to a community's residents' groups (计划停水, 电梯维保, 物业费催缴 …), answered
    from while it is valid: ``topics`` are the words of residents' questions it answers ("停水"),
    ``chat_ids`` the groups it went to (the external ids; residents elsewhere are not answered from it)."""

    __tablename__ = "announcement"
    __table_args__ = (Index("ix_announcement_community_valid", "community_id", "valid_until"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    topics: Mapped[list[Any]] = mapped_column(default=list)
    chat_ids: Mapped[list[Any]] = mapped_column(default=list)
    valid_until: Mapped[datetime] = mapped_column()
    posted_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
