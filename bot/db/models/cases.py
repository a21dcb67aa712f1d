"""The case desk: the organisations that handle appeals (分拨对象) and the people who act for them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models.base import Base, BigId, utcnow


class Handler(Base):
    """An organisation that handles appeals in one community: the property company, the community
    office, a grid worker (网格员), a department — or the city's case backend (kind ``city``).

    Seeded from the community's profile (``kb/communities/*.yml``) and added with ``huiyin admin``.
    ``sees_contact`` says whether an assignment pushed to the handler carries the resident's phone.
    """

    __tablename__ = "handler"
    __table_args__ = (UniqueConstraint("community_id", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # property | community | grid | department | city
    phone: Mapped[str | None] = mapped_column(String(32))
    sees_contact: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HandlerMember(Base):
    """A person who acts for a handler: sees and acts on the appeals assigned to it (console and chat)."""

    __tablename__ = "handler_member"
    __table_args__ = (UniqueConstraint("handler_id", "person_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    handler_id: Mapped[int] = mapped_column(ForeignKey("handler.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
