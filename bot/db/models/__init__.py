"""The tables: what must outlive a process. SQLAlchemy 2 typed declarative models.

Portable between SQLite (embedded default) and PostgreSQL: JSON columns use the generic ``JSON`` type,
timestamps are stored timezone-aware in UTC, enums are stored as plain strings (readable in SQL, and a
new value needs no migration of a database enum type).
"""

from __future__ import annotations

from bot.db.models.appeals import Appeal, AppealEvent, AppealSupporter, Counter, OutboxEntry
from bot.db.models.base import NAMING, Base, BigId, UTCDateTime, utcnow
from bot.db.models.cases import Handler, HandlerMember
from bot.db.models.conversations import Chat, Conversation, TranscriptMessage
from bot.db.models.handoffs import CannedReply, Handoff, HandoffNote
from bot.db.models.incidents import INCIDENT_OPEN, INCIDENT_RESOLVED, Announcement, Incident
from bot.db.models.people import (
    AuditEntry,
    Community,
    InstanceSetting,
    InviteCode,
    Person,
    PlatformIdentity,
    RoleGrant,
    StaffAccount,
)
from bot.db.models.status import OPEN_STATUSES, AppealStatus, HandoffStatus, Role

__all__ = [
    "INCIDENT_OPEN",
    "INCIDENT_RESOLVED",
    "NAMING",
    "OPEN_STATUSES",
    "Announcement",
    "Appeal",
    "AppealEvent",
    "AppealStatus",
    "AppealSupporter",
    "AuditEntry",
    "Base",
    "BigId",
    "CannedReply",
    "Chat",
    "Community",
    "Conversation",
    "Counter",
    "Handler",
    "HandlerMember",
    "Handoff",
    "HandoffNote",
    "HandoffStatus",
    "Incident",
    "InstanceSetting",
    "InviteCode",
    "OutboxEntry",
    "Person",
    "PlatformIdentity",
    "Role",
    "RoleGrant",
    "StaffAccount",
    "TranscriptMessage",
    "UTCDateTime",
    "utcnow",
]
