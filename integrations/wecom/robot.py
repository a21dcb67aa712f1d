"""The WeCom intelligent robot (智能机器人, API mode): encrypted JSON callbacks and passive replies.

When a member @-mentions the robot in a group (or writes to it in a single chat), WeCom posts
``{"encrypt": "..."}`` with ``msg_signature``/``timestamp``/``nonce`` in the query. The crypto is WeCom's
callback scheme (AES-CBC, SHA-1 signature over token, timestamp, nonce and the ciphertext), with an empty
receive id for a company's own robot; wechatpy's enterprise crypto does the work. The decrypted JSON:

    {"msgid": "...", "aibotid": "...", "chatid": "...", "chattype": "group" | "single",
     "from": {"userid": "..."}, "response_url": "...", "msgtype": "text", "text": {"content": "@回音 ..."}}

Replies go back encrypted in the response as a finished stream message
(``{"msgtype": "stream", "stream": {"id", "finish": true, "content"}}``); a reply that misses the deadline
goes to the message's ``response_url`` (markdown, usable once within an hour).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import to_text

from bot.message import Attachment, AttachmentKind, ChatType
from integrations.payload import BadJSON, loads_bounded
from integrations.wechat.channel import signature, signature_matches


class RobotRefused(ValueError):
    """The callback is forged (403) or unusable (400); ``status`` says which."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


# A company's own intelligent robot has no receive id (the docs: "ReceiveId 为空字符串").
RECEIVE_ID = ""
# How deep a callback's outer envelope may nest: it is {"encrypt": "..."}, one level.
ENVELOPE_DEPTH = 2


class RobotCrypto:
    """Signature check, decryption and encryption of the robot's JSON callbacks."""

    def __init__(self, token: str, aes_key: str) -> None:
        self.token = token
        self._crypto = WeChatCrypto(token, aes_key, RECEIVE_ID)
        self._key: bytes = self._crypto.key

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """The decrypted ``echostr`` of URL verification; raises InvalidSignatureException."""
        return str(self._crypto.check_signature(msg_signature, timestamp, nonce, echostr))

    def decrypt(self, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> dict[str, Any]:
        """The callback's JSON, decrypted. Raises :class:`RobotRefused` (403 forged, 400 malformed).

        The envelope must be parsed before the signature can be checked (it signs the ``encrypt`` field),
        so it is parsed bounded: ``{"encrypt": "..."}`` nests one level, and anything deeper than two is
        refused before it is parsed. The decrypted message gets the general bound, and its lone
        surrogates (a truncated emoji) become U+FFFD.
        """
        try:
            envelope = loads_bounded(body, max_depth=ENVELOPE_DEPTH)
        except BadJSON as exc:
            raise RobotRefused(400, str(exc)) from None
        encrypt = envelope.get("encrypt") if isinstance(envelope, dict) else None
        if not isinstance(encrypt, str) or not encrypt:
            raise RobotRefused(400, "the body has no 'encrypt' string")
        if not signature_matches(signature(self.token, timestamp, nonce, encrypt), msg_signature):
            raise RobotRefused(403, "msg_signature does not match")
        try:
            plain = PrpCrypto(self._key).decrypt(encrypt, RECEIVE_ID)
            data = loads_bounded(plain)
        except InvalidSignatureException:
            raise RobotRefused(403, "msg_signature does not match") from None
        except Exception:  # wrong key or corrupt ciphertext: anything the decryption raises
            raise RobotRefused(400, "'encrypt' does not decrypt to JSON") from None
        if not isinstance(data, dict):
            raise RobotRefused(400, "the decrypted message is not a JSON object")
        return data

    def encrypt(self, payload: dict[str, Any], timestamp: str, nonce: str) -> dict[str, Any]:
        """The encrypted response envelope for a passive reply."""
        plain = json.dumps(payload, ensure_ascii=False)
        encrypt = to_text(PrpCrypto(self._key).encrypt(plain, RECEIVE_ID))
        return {
            "encrypt": encrypt,
            "msgsignature": signature(self.token, timestamp, nonce, encrypt),
            "timestamp": int(timestamp) if timestamp.isdigit() else timestamp,
            "nonce": nonce,
        }


def stream_reply(content: str) -> dict[str, Any]:
    """A finished stream message: the whole answer at once, so WeCom asks for no refresh."""
    return {
        "msgtype": "stream",
        "stream": {"id": secrets.token_hex(8), "finish": True, "content": content},
    }


def text_reply(content: str) -> dict[str, Any]:
    """A text reply; WeCom accepts it only for the enter-chat event (a welcome)."""
    return {"msgtype": "text", "text": {"content": content}}


@dataclass(frozen=True, slots=True)
class RobotMessage:
    """One robot callback, translated. ``kind`` is message, welcome, unsupported or ignore."""

    kind: str
    message_id: str
    sender_id: str
    chat_id: str
    chat_type: ChatType
    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    response_url: str = ""


def robot_message(data: dict[str, Any]) -> RobotMessage:
    """Translate a decrypted callback. Raises :class:`RobotRefused` (400) when fields are missing."""
    sender = data.get("from")
    user = sender.get("userid") if isinstance(sender, dict) else None
    msgid = data.get("msgid")
    msgtype = data.get("msgtype")
    if not isinstance(user, str) or not user or not isinstance(msgtype, str):
        raise RobotRefused(400, "the message lacks from.userid or msgtype")
    group = data.get("chattype") == "group"
    chat_id = data.get("chatid") if group else user
    if not isinstance(chat_id, str) or not chat_id:
        raise RobotRefused(400, "a group message without chatid")
    message_id = str(msgid) if isinstance(msgid, str | int) and msgid else ""
    response_url = data.get("response_url") if isinstance(data.get("response_url"), str) else ""
    base: dict[str, Any] = {
        "sender_id": user,
        "chat_id": chat_id,
        "chat_type": ChatType.GROUP if group else ChatType.PRIVATE,
        "response_url": response_url or "",
    }

    def item(kind: str, text: str = "", *attachments: Attachment) -> RobotMessage:
        if kind in {"message", "unsupported"} and not message_id:
            raise RobotRefused(400, "the message lacks msgid")
        return RobotMessage(kind, message_id, text=text, attachments=attachments, **base)

    def content(part: Any, field: str) -> str:
        value = part.get(field) if isinstance(part, dict) else None
        inner = value.get("content") if isinstance(value, dict) else None
        return inner if isinstance(inner, str) else ""

    def image(part: Any) -> Attachment | None:
        value = part.get("image") if isinstance(part, dict) else None
        url = value.get("url") if isinstance(value, dict) else None
        return Attachment(AttachmentKind.PHOTO, url=url) if isinstance(url, str) and url else None

    if msgtype == "text":
        return item("message", _without_leading_mention(content(data, "text"), group))
    if msgtype == "voice":
        transcript = content(data, "voice").strip()
        if not transcript:
            return item("unsupported")
        return item("message", transcript, Attachment(AttachmentKind.VOICE, transcript=transcript))
    if msgtype == "image":
        photo = image(data)
        return item("message", "", photo) if photo else item("unsupported")
    if msgtype == "mixed":
        mixed = data.get("mixed")
        parts = mixed.get("msg_item") if isinstance(mixed, dict) else None
        parts = parts if isinstance(parts, list) else []
        texts = [content(p, "text") for p in parts if isinstance(p, dict) and p.get("msgtype") == "text"]
        photos = [a for p in parts if isinstance(p, dict) and (a := image(p)) is not None]
        text = _without_leading_mention(" ".join(t for t in texts if t), group)
        return item("message", text, *photos)
    if msgtype == "event":
        event = data.get("event")
        kind = event.get("eventtype") if isinstance(event, dict) else None
        return item("welcome" if kind == "enter_chat" else "ignore")
    if msgtype == "stream":
        # A refresh of a stream we never left open; nothing to add.
        return item("ignore")
    return item("unsupported")


def _without_leading_mention(text: str, group: bool) -> str:
    """A group callback means the robot was @-mentioned; its name leads the text ("@回音 楼道灯坏了")."""
    stripped = text.strip()
    if group and stripped.startswith("@"):
        # WeCom separates a mention with a space or U+2005 (both \s); "@回音" alone leaves no words.
        after = _LEADING_MENTION.match(stripped)
        return after.group(1).strip() if after else ""
    return stripped


_LEADING_MENTION = re.compile(r"@\S*\s+(.*)", re.DOTALL)
