"""Communities and the people in them: residents and staff, their platform identities, roles,
console accounts, invite codes, and the audit log of what staff did."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db.models.base import Base, BigId, utcnow


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
    # When the resident agreed, after the privacy notice, that their phone number may be kept. A phone
    # number is stored (here or on an appeal) only once this is set.
    consent_at: Mapped[datetime | None] = mapped_column()
    # When the person's data was erased at their request: the row stays so that their (anonymised)
    # appeals keep a reporter, but it holds nothing that identifies anyone.
    erased_at: Mapped[datetime | None] = mapped_column()

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


class InstanceSetting(Base):
    """Facts about this deployment that must not change once chosen (its instance id)."""

    __tablename__ = "instance_setting"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


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
