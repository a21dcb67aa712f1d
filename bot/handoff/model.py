"""The words the handoff package speaks in: reasons, verdicts, addresses, outcomes, queue items, errors,
and the part of a turn's output the desk reads and writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from bot.db.models import Handoff
from bot.dialog.engine import Prompt
from bot.handoff.notices import Notice
from bot.handoff.summary import Summary
from bot.message import Button, ChatType, Platform, Target
from bot.state import HELD_COMPLETE as _HELD_COMPLETE
from bot.state import ConversationKey, Keys


class HandoffReason(Enum):
    """Why a conversation was handed to staff. The values are what ``handoff.reason`` stores and what
    ``staff.reasons.<value>`` in responses.yml names."""

    ASKED = "asked"  # the resident asked for a person (转人工)
    NOT_UNDERSTOOD = "not_understood"  # the bot failed to understand several times in a row
    EMERGENCY = "emergency"
    STAFF = "staff"  # staff took over a conversation nobody queued


class Verdict(Enum):
    """What the desk made of a message, before the bot's own turn."""

    PASS = "pass"  # not ours: the bot's turn runs as usual
    HANDLED = "handled"  # a staff command, an invite, a relay: the replies are in the turn output
    HELD = "held"  # staff hold this conversation: recorded for them, the bot stays silent


class TurnOutput(Protocol):
    """The part of the dispatcher's turn output the desk reads and writes."""

    prompts: list[Prompt]
    state: dict[str, Any] | None
    handoff: str | None  # this turn asks for staff: a HandoffReason value
    not_understood: bool  # this turn did not understand the resident
    not_understood_at: int | None  # the index in ``prompts`` of the line that says so, if there is one
    chat_changed: bool  # a staff command rebound this chat: cached ids of its conversations are stale

    def say(self, text: str, buttons: tuple[Button, ...] = (), *, private: bool = False) -> None: ...


class HandoffError(Exception):
    """An operation was refused. ``key`` names the wording in responses.yml (``staff.<key>``)."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass(frozen=True, slots=True)
class Address:
    """Where a conversation's resident is reached on their platform."""

    conversation_id: int
    community_id: int
    platform: str
    chat_id: str
    chat_type: str
    chat_title: str
    user_id: str
    name: str

    @property
    def key(self) -> ConversationKey:
        return ConversationKey(Platform(self.platform), self.chat_id, self.user_id)

    def notice(self, text: str, buttons: tuple[Button, ...] = ()) -> Notice:
        if self.chat_type == ChatType.GROUP.value and self.name:
            text = f"@{self.name} {text}"
        return Notice(self.platform, self.chat_id, self.user_id, text, Target.CHAT.value, buttons=buttons)


@dataclass(slots=True)
class Outcome:
    """The result of a staff operation: what to tell the staff member, and what to send to the resident."""

    handoff: Handoff | None
    address: Address
    notices: list[Notice] = field(default_factory=list)
    created: bool = False
    appeal: str | None = None  # the public id of the appeal staff filed (:meth:`HandoffDesk.file_appeal`)


@dataclass(frozen=True, slots=True)
class QueueItem:
    handoff: Handoff
    address: Address
    summary: Summary
    holder_name: str | None
    waiting_since: datetime


HELD_COMPLETE = _HELD_COMPLETE
"""Set by :meth:`HandoffDesk.restore_markers` once every held conversation has its marker. While it
exists, a conversation without a marker is not held and the dispatcher's turn skips the database check;
markers are set before a take commits and removed only after a release commits, so the marker errs on
the side of "held" (which only costs that check). When Redis loses its data this key goes too, and every
turn asks the database until the next start-up restores them. (Redis must not evict keys without an
expiry: ``maxmemory-policy`` noeviction or volatile-*, see docs/staff.md.)"""


def held_marker(key: ConversationKey) -> str:
    """The Redis key that marks ``key``'s conversation as held by staff, mirroring the database: in a
    group, a held resident's replies reach staff even when they do not address the bot (the dispatcher
    checks this key on every unaddressed group message)."""
    return Keys.held(key)


__all__ = [
    "HELD_COMPLETE",
    "Address",
    "HandoffError",
    "HandoffReason",
    "Outcome",
    "QueueItem",
    "TurnOutput",
    "Verdict",
    "held_marker",
]
