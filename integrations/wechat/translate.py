"""wechatpy's parsed messages → what the core needs: text, attachments, a message id, or a decision.

Shared by the Official Account and the WeCom self-built app, whose callbacks carry the same message
types (wechatpy models both). The decision is one of:

- ``message``: hand it to the core (text, a photo, a location, a voice message with its transcript, a
  custom-menu click whose key is a command or words);
- ``welcome``: a new follower; greet them;
- ``unsupported``: a message type the bot cannot read (video, link, file, voice without transcript);
  reply politely with the ``unsupported_attachment`` wording;
- ``ignore``: events that need no answer (unfollow, menu links, location reports, opening the app).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.message import Attachment, AttachmentKind


class Decision(StrEnum):
    MESSAGE = "message"
    WELCOME = "welcome"
    UNSUPPORTED = "unsupported"
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class Inbound:
    decision: Decision
    sender_id: str
    message_id: str
    text: str = ""
    attachments: tuple[Attachment, ...] = ()


class BadMessage(ValueError):
    """A callback message that parses as XML but is not a usable WeChat message."""


WELCOME_EVENTS = frozenset({"subscribe", "subscribe_scan"})


def inbound(msg: Any) -> Inbound:
    """Classify one wechatpy message or event (``wechatpy.parse_message`` or its enterprise twin)."""
    sender = msg.source
    if not isinstance(sender, str) or not sender:
        raise BadMessage("FromUserName is missing or not text")
    kind = str(msg.type)
    if kind == "unknown" and str(msg._data.get("MsgType", "")).lower() == "event":
        kind = "event"  # an event wechatpy has no class for: still an event, never "unsupported"
    event = str(getattr(msg, "event", "") or msg._data.get("Event", "")).lower() if kind == "event" else ""
    try:
        # Events carry no MsgId; WeChat's docs recommend FromUserName + CreateTime for deduplication.
        message_id = str(msg.id) if msg.id else f"{sender}:{msg.time}:{event or kind}"
    except (TypeError, ValueError):
        raise BadMessage("MsgId/CreateTime are not numbers") from None

    def decide(decision: Decision, text: str = "", *attachments: Attachment) -> Inbound:
        return Inbound(decision, sender, message_id, text, attachments)

    if kind == "text":
        return decide(Decision.MESSAGE, str(msg.content or ""))
    if kind == "image":
        photo = Attachment(AttachmentKind.PHOTO, file_id=msg.media_id or None, url=msg.image or None)
        return decide(Decision.MESSAGE, "", photo)
    if kind == "voice":
        transcript = str(msg.recognition or "").strip()
        if not transcript:
            return decide(Decision.UNSUPPORTED)
        voice = Attachment(AttachmentKind.VOICE, file_id=msg.media_id or None, transcript=transcript)
        return decide(Decision.MESSAGE, transcript, voice)
    if kind == "location":
        try:
            lat, lng = float(msg.location_x), float(msg.location_y)
        except (TypeError, ValueError):
            raise BadMessage("Location_X/Location_Y are not numbers") from None
        place = Attachment(AttachmentKind.LOCATION, latitude=lat, longitude=lng, label=msg.label or None)
        return decide(Decision.MESSAGE, "", place)
    if kind == "event":
        if event in WELCOME_EVENTS:
            return decide(Decision.WELCOME)
        if event == "click" and getattr(msg, "key", None):
            return decide(Decision.MESSAGE, str(msg.key))
        return decide(Decision.IGNORE)
    return decide(Decision.UNSUPPORTED)
