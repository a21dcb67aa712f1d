"""The one normalized message type the core sees, and the replies it produces.

Every channel (REST, terminal, web chat, Telegram, WeChat, WeCom) translates its raw payload into an
:class:`IncomingMessage` and renders :class:`Reply` objects back. Nothing platform-specific crosses this
line inward: the raw payload rides along in ``raw`` for the transcript and for debugging only, and the
core never reads it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class Platform(StrEnum):
    """Where a message came from. The value is part of every conversation key."""

    REST = "rest"
    TERMINAL = "terminal"
    WEB = "web"
    TELEGRAM = "telegram"
    WECHAT = "wechat"
    WECOM = "wecom"


class ChatType(StrEnum):
    GROUP = "group"
    PRIVATE = "private"


class AttachmentKind(StrEnum):
    PHOTO = "photo"
    LOCATION = "location"
    VOICE = "voice"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A non-text part of a message.

    A photo carries a platform ``file_id`` and/or a ``url``; a location carries ``latitude``/``longitude``
    and an optional ``label`` (the place name the platform sent); a voice message carries the platform's
    speech ``transcript`` when it has one (WeChat's ``Recognition``).
    """

    kind: AttachmentKind
    file_id: str | None = None
    url: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    label: str | None = None
    transcript: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k in self.__slots__ if (v := getattr(self, k)) is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Attachment:
        return cls(
            kind=AttachmentKind(data["kind"]),
            file_id=data.get("file_id"),
            url=data.get("url"),
            latitude=data.get("latitude"),
            longitude=data.get("longitude"),
            label=data.get("label"),
            transcript=data.get("transcript"),
        )


_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One message from a resident, a building leader or a staff member, on any platform.

    ``chat_id`` identifies the chat (a group, or the private chat with the bot); ``sender_id`` the person
    on that platform. In a private chat ``chat_id`` is usually the sender's own id. ``message_id`` is the
    platform's id for this delivery: a redelivery carries the same id and must have no second effect.
    ``mentions_bot`` / ``reply_to_bot`` are set by the channel from the platform's own signals (an
    @-mention entity, a reply to one of the bot's messages); the core additionally recognises commands and
    the bot's name in the text.
    """

    platform: Platform
    chat_id: str
    chat_type: ChatType
    sender_id: str
    text: str = ""
    sender_name: str = ""
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    mentions_bot: bool = False
    reply_to_bot: bool = False
    attachments: tuple[Attachment, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    chat_title: str = ""
    received_at: datetime = field(default_factory=_utcnow)

    @property
    def is_group(self) -> bool:
        return self.chat_type is ChatType.GROUP

    def attachment(self, kind: AttachmentKind) -> Attachment | None:
        return next((a for a in self.attachments if a.kind is kind), None)


class Target(StrEnum):
    """Where a reply goes: back into the chat the message came from, or privately to one resident."""

    CHAT = "chat"
    PRIVATE = "private"


@dataclass(frozen=True, slots=True)
class Button:
    """A choice offered to the resident. Sending ``payload`` back as a message selects it.

    Platforms without buttons (WeChat) render buttons as numbered options; the resident answers with
    the number or the title, and the channel maps it back to the payload.
    """

    title: str
    payload: str


@dataclass(frozen=True, slots=True)
class Reply:
    """One message the bot sends.

    ``target`` says whether it goes to the chat the conversation lives in or privately to ``recipient_id``
    (the resident, by their platform id). ``chat_id`` is the chat the reply belongs to on the platform:
    for a private reply it is the resident's private chat id.
    """

    text: str
    chat_id: str
    recipient_id: str
    target: Target = Target.CHAT
    buttons: tuple[Button, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of the reply (buttons as ``[title, payload]`` pairs), as the outbox and the
        dedup cache store it; :meth:`from_dict` reads it back."""
        return {
            "text": self.text,
            "chat_id": self.chat_id,
            "recipient_id": self.recipient_id,
            "target": self.target.value,
            "buttons": [[b.title, b.payload] for b in self.buttons],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reply:
        """The reply :meth:`to_dict` wrote. A missing ``target`` means the chat, missing ``buttons`` none."""
        return cls(
            text=str(data["text"]),
            chat_id=str(data["chat_id"]),
            recipient_id=str(data["recipient_id"]),
            target=Target(data.get("target", Target.CHAT.value)),
            buttons=tuple(Button(str(t), str(p)) for t, p in data.get("buttons", [])),
        )

    def as_text(self) -> str:
        """The reply with its buttons degraded to numbered options, for text-only platforms."""
        if not self.buttons:
            return self.text
        options = "\n".join(f"{i}. {b.title}" for i, b in enumerate(self.buttons, start=1))
        return f"{self.text}\n{options}"
