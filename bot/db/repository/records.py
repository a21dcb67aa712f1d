"""What the repositories take and give besides ORM rows, and the names the session's write-behind
buffer (:mod:`bot.db.session`) shares with them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table

from bot.db.models import Conversation, Person, TranscriptMessage

TRANSCRIPT_TABLE = cast(Table, TranscriptMessage.__table__)
CONVERSATION_TABLE = cast(Table, Conversation.__table__)
PERSON_TABLE = cast(Table, Person.__table__)
PENDING_TRANSCRIPT = "huiyin.pending_transcript"
"""``session.info`` key of the transcript lines :meth:`ConversationRepository.add_transcript` has not written yet."""
PENDING_TOUCH = "huiyin.pending_touch"
"""``session.info`` key of the conversations :meth:`ConversationRepository.touch_conversation` has not written yet
(a dict by conversation id: a later touch of the same conversation replaces an earlier one)."""


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
    """The identity of an appeal :meth:`AppealRepository.create_appeal` filed (or found already filed)."""

    id: int
    public_id: str
    incident_case: str | None = None
    """The public id of the area-wide incident's case the appeal was merged into, if it was."""


SKIP_PENDING_OPTION = "huiyin_skip_pending"
SKIP_PENDING = {SKIP_PENDING_OPTION: True}
"""Execution options of a statement that reads neither transcript lines nor conversations: the
buffered ones (:meth:`ConversationRepository.add_transcript`, :meth:`ConversationRepository.touch_conversation`) need not be
written before it, and are written with the commit instead (one round trip fewer)."""
