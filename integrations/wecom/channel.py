"""The WeCom (企业微信) channel: ``GET|POST /webhooks/wecom/webhook``.

One URL serves two kinds of callbacks, told apart by their body:

- **the self-built app** (自建应用, 接收消息 in API mode): encrypted XML, decrypted with wechatpy's enterprise
  ``WeChatCrypto`` (receive id = CorpID). A resident writes to the app in a private chat; answers go back
  passively (encrypted XML) inside the deadline, otherwise through the app message API
  (``message/send``), which is also this platform's :class:`~bot.outbound.Sender`.
- **the intelligent robot** (智能机器人, API mode): encrypted JSON when a member @-mentions the robot in a
  group or writes to it in a single chat (:mod:`integrations.wecom.robot`). Answers into the chat go back
  as a passive stream reply, or to the message's ``response_url`` when late; answers meant for the
  resident alone (phone numbers, room numbers) go privately through the app message API.

Both are always encrypted and signed over the ciphertext (``msg_signature``), and the signed timestamp
must be fresh (``HUIYIN_SIGNATURE_MAX_AGE_S``); there is no plaintext mode to fall back to. As on WeChat,
the platform hears success only once the message is durably handled: an outage answers 503 and WeCom
delivers the callback again (:mod:`integrations.wechat.passive`).

URL verification (``GET``, encrypted ``echostr``) is accepted for whichever of the two the signature
matches. A resident is their WeCom ``userid`` in both, so a dialog started in a group continues in the
app's private chat. Notifications into a staff group use a group-robot webhook
(:mod:`integrations.wecom.notify`).
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import structlog
from fastapi import HTTPException, Response
from fastapi.responses import JSONResponse
from wechatpy.enterprise import parse_message
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.enterprise.replies import TextReply
from wechatpy.exceptions import InvalidSignatureException

from bot.message import ChatType, IncomingMessage, Platform, Reply, Target
from bot.outbound import DeliveryError, Sender
from bot.state import ConversationKey, Keys
from integrations.core import Core
from integrations.wechat.api import AccessToken, fetch_json, post_json
from integrations.wechat.channel import DECRYPT_ERRORS, aes_key_checked, parse_body, refuse_stale
from integrations.wechat.passive_channel import PassiveReplyChannel
from integrations.wechat.translate import BadMessage, Decision, inbound
from integrations.wechat.xmlsafe import cdata_safe
from integrations.wecom.notify import StaffGroupRobot
from integrations.wecom.robot import (
    RobotCrypto,
    RobotMessage,
    RobotRefused,
    robot_message,
    stream_reply,
    text_reply,
)

log = structlog.get_logger(__name__)


class WeComChannel(PassiveReplyChannel):
    """A company's WeCom: its self-built app and/or its intelligent robot."""

    name = "wecom"
    platform = Platform.WECOM
    undelivered_event = "WeCom reply not delivered"

    def __init__(self, core: Core, *, http: httpx.AsyncClient | None = None) -> None:
        s = core.settings
        self.corp_id = s.wecom_corp_id or ""
        self.agent_id = s.wecom_agent_id
        self.app_crypto: WeChatCrypto | None = None
        if s.wecom_token is not None:
            if s.wecom_aes_key is None or not self.corp_id:
                raise ValueError("HUIYIN_WECOM_TOKEN needs HUIYIN_WECOM_AES_KEY and HUIYIN_WECOM_CORP_ID")
            key = aes_key_checked(s.wecom_aes_key.get_secret_value(), "HUIYIN_WECOM_AES_KEY")
            self.app_crypto = WeChatCrypto(s.wecom_token.get_secret_value(), key, self.corp_id)
        self.robot: RobotCrypto | None = None
        if s.wecom_robot_token is not None:
            if s.wecom_robot_aes_key is None:
                raise ValueError("HUIYIN_WECOM_ROBOT_TOKEN needs HUIYIN_WECOM_ROBOT_AES_KEY")
            key = aes_key_checked(s.wecom_robot_aes_key.get_secret_value(), "HUIYIN_WECOM_ROBOT_AES_KEY")
            self.robot = RobotCrypto(s.wecom_robot_token.get_secret_value(), key)
        self.max_age_s = s.signature_max_age_s
        self.api_base = s.wecom_api_base.rstrip("/")
        super().__init__(
            core, Platform.WECOM, window_prefix="wecom", deadline_s=s.wecom_reply_deadline_s, http=http
        )
        self.access: AccessToken | None = None
        if self.corp_id and s.wecom_secret is not None and self.agent_id is not None:
            self._secret = s.wecom_secret.get_secret_value()
            self.access = AccessToken(
                core.store.redis,
                Keys.channels.wecom_token(self.corp_id, self.agent_id),
                self._fetch_token,
            )
        self.staff: StaffGroupRobot | None = None
        if s.wecom_staff_webhook is not None:
            self.staff = StaffGroupRobot(s.wecom_staff_webhook.get_secret_value(), self.http)

    @property
    def enabled(self) -> bool:
        return self.app_crypto is not None or self.robot is not None or self.access is not None

    def sender(self) -> Sender | None:
        """The app message API; without it (robot callbacks only) WeCom cannot send on its own."""
        return self if self.access is not None else None

    def published(self) -> dict[str, object]:
        return {"wecom_staff": self.staff} if self.staff is not None else {}

    async def start(self) -> None:
        log.info(
            "WeCom on",
            app_callbacks=self.app_crypto is not None,
            robot_callbacks=self.robot is not None,
            sending=self.access is not None,
            staff_group=self.staff is not None,
        )

    # --- verification ----------------------------------------------------------------------------------
    def refuse_stale(self, query: Mapping[str, str]) -> None:
        """403 unless the signed ``timestamp`` is within ``HUIYIN_SIGNATURE_MAX_AGE_S`` of now (both the
        app's and the robot's signatures cover it): a captured callback stops working."""
        refuse_stale(query, self.max_age_s)

    def verify_url(self, query: Mapping[str, str]) -> str:
        """The decrypted ``echostr``, for whichever callback (app or robot) the signature matches."""
        args = (
            query.get("msg_signature", ""),
            query.get("timestamp", ""),
            query.get("nonce", ""),
            query.get("echostr", ""),
        )
        for crypto in (self.app_crypto, self.robot):
            if crypto is None:
                continue
            try:
                if isinstance(crypto, RobotCrypto):
                    return crypto.verify_url(*args)
                return str(crypto.check_signature(*args))
            except InvalidSignatureException:
                continue
            except (InvalidCorpIdException, *DECRYPT_ERRORS):
                raise HTTPException(400, "echostr does not decrypt") from None
        raise HTTPException(403, "msg_signature does not match")

    # --- callbacks -----------------------------------------------------------------------------------
    async def callback(self, query: Mapping[str, str], body: bytes, started: float) -> Response:
        head = body.lstrip()[:1]
        if head == b"<":
            return await self._app_callback(query, body, started)
        if head == b"{":
            return await self._robot_callback(query, body, started)
        raise HTTPException(400, "the body is neither WeCom XML nor JSON")

    async def _app_callback(self, query: Mapping[str, str], body: bytes, started: float) -> Response:
        if self.app_crypto is None:
            raise HTTPException(404, "WeCom app callbacks are not configured (HUIYIN_WECOM_TOKEN)")
        envelope = parse_body(body)
        encrypt = envelope.get("Encrypt")
        if not encrypt:
            raise HTTPException(400, "no <Encrypt> element")
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        try:
            xml = str(
                self.app_crypto.decrypt_message(
                    {"Encrypt": encrypt}, query.get("msg_signature", ""), timestamp, nonce
                )
            )
        except (InvalidSignatureException, InvalidCorpIdException):
            raise HTTPException(403, "msg_signature does not match") from None
        except DECRYPT_ERRORS:
            raise HTTPException(400, "<Encrypt> does not decrypt") from None
        parse_body(xml)
        try:
            msg = parse_message(xml)
            item = inbound(msg)
        except (BadMessage, KeyError, AttributeError) as exc:
            raise HTTPException(400, f"not a WeCom message: {exc}") from None

        user = item.sender_id
        if item.decision is Decision.IGNORE:
            return Response(b"")
        if item.decision is Decision.WELCOME:
            replies: list[Reply] | None = [self._say(user, user, "greet")]
        elif item.decision is Decision.UNSUPPORTED:
            replies = [self._say(user, user, "unsupported_attachment")]
        else:
            message = IncomingMessage(
                platform=Platform.WECOM,
                chat_id=user,
                chat_type=ChatType.PRIVATE,
                sender_id=user,
                text=item.text,
                message_id=item.message_id,
                attachments=item.attachments,
                raw=dict(msg._data),
            )
            replies = await self.within_deadline(
                self.process(message),
                key=ConversationKey.of(message),
                message_id=item.message_id,
                started=started,
            )
        if not replies:
            return Response(b"")
        text = cdata_safe("\n\n".join(r.as_text() for r in replies))
        reply_xml = TextReply(message=msg, content=text).render()
        return Response(
            self.app_crypto.encrypt_message(reply_xml, nonce, timestamp or None),
            media_type="application/xml",
        )

    async def _robot_callback(self, query: Mapping[str, str], body: bytes, started: float) -> Response:
        if self.robot is None:
            raise HTTPException(404, "WeCom robot callbacks are not configured (HUIYIN_WECOM_ROBOT_TOKEN)")
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        try:
            data = self.robot.decrypt(body, query.get("msg_signature", ""), timestamp, nonce)
            item = robot_message(data)
        except RobotRefused as exc:
            raise HTTPException(exc.status, str(exc)) from None

        if item.kind == "ignore":
            return Response(b"")
        if item.kind == "welcome":
            greet = self._say(item.chat_id, item.sender_id, "greet").text
            return JSONResponse(self.robot.encrypt(text_reply(greet), timestamp, nonce))
        if item.kind == "unsupported":
            text = self._say(item.chat_id, item.sender_id, "unsupported_attachment").text
            return JSONResponse(self.robot.encrypt(stream_reply(text), timestamp, nonce))

        message = IncomingMessage(
            platform=Platform.WECOM,
            chat_id=item.chat_id,
            chat_type=item.chat_type,
            sender_id=item.sender_id,
            text=item.text,
            message_id=item.message_id,
            mentions_bot=item.chat_type is ChatType.GROUP,
            attachments=item.attachments,
            raw=data,
        )

        async def late(replies: list[Reply]) -> None:
            await self._deliver_robot(item, replies, passive=False)

        replies = await self.within_deadline(
            self.process(message),
            key=ConversationKey.of(message),
            message_id=item.message_id,
            started=started,
            late=late,
        )
        if not replies:
            return Response(b"")
        here = await self._deliver_robot(item, replies, passive=True)
        if not here:
            return Response(b"")
        content = "\n\n".join(r.as_text() for r in here)
        return JSONResponse(self.robot.encrypt(stream_reply(content), timestamp, nonce))

    async def _deliver_robot(self, item: RobotMessage, replies: list[Reply], *, passive: bool) -> list[Reply]:
        """Send what does not belong in this chat (private answers) through the app; return what does.

        With ``passive=False`` (the deadline was missed) the chat's part goes to ``response_url`` too.
        """
        here = [r for r in replies if r.target is Target.CHAT and r.chat_id == item.chat_id]
        elsewhere = [r for r in replies if r not in here]
        if elsewhere:
            # Sending is an API round trip: the passive answer must not wait for it.
            self.window.background(self.send_all(elsewhere))
        if passive or not here:
            return here
        if not item.response_url:
            log.warning("late robot reply lost: no response_url", chat=item.chat_id)
            return []
        content = "\n\n".join(r.as_text() for r in here)
        try:
            await fetch_json(
                self.http,
                "POST",
                item.response_url,
                json={"msgtype": "markdown", "markdown": {"content": content}},
            )
        except DeliveryError as exc:
            log.warning("late robot reply not delivered", chat=item.chat_id, error=str(exc))
        return []

    async def process(self, message: IncomingMessage) -> list[Reply]:
        """The core's replies to one message, numbered answers resolved first."""
        text = await self.resolved_text(message.chat_id, message.sender_id, message.text)
        if text != message.text:
            message = _with_text(message, text)
        return await self.dispatch(message)

    # --- sending through the app ---------------------------------------------------------------------
    async def _post(self, reply: Reply) -> None:
        """One reply to a resident through the app message API (``message/send``).

        Group chats cannot be written to proactively: the robot only answers messages.
        """
        if reply.target is Target.CHAT and reply.chat_id != reply.recipient_id:
            raise DeliveryError("a WeCom group chat can only be answered in reply to a message")
        if self.access is None or self.agent_id is None:
            raise DeliveryError(
                "WeCom sending needs HUIYIN_WECOM_CORP_ID, HUIYIN_WECOM_AGENT_ID and HUIYIN_WECOM_SECRET"
            )
        payload = {
            "touser": reply.recipient_id,
            "msgtype": "text",
            "agentid": self.agent_id,
            "text": {"content": reply.as_text()},
            "safe": 0,
        }
        answer = await post_json(self.http, self.access, f"{self.api_base}/cgi-bin/message/send", payload)
        if answer.get("invaliduser"):
            raise DeliveryError(f"WeCom does not know user {answer['invaliduser']}")

    async def _fetch_token(self, http: httpx.AsyncClient) -> tuple[str, int]:
        data = await fetch_json(
            http,
            "GET",
            f"{self.api_base}/cgi-bin/gettoken",
            params={"corpid": self.corp_id, "corpsecret": self._secret},
        )
        return str(data["access_token"]), int(data.get("expires_in", 7200))


def _with_text(message: IncomingMessage, text: str) -> IncomingMessage:
    from dataclasses import replace

    return replace(message, text=text)


__all__ = ["WeComChannel"]
