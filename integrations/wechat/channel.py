"""The WeChat Official Account (公众号) channel: ``GET|POST /webhooks/wechat/webhook``.

- ``GET`` is WeChat's URL verification: the ``signature`` of token + timestamp + nonce is checked and
  ``echostr`` echoed.
- ``POST`` is a message or event. Before the body is read (403, nothing processed, otherwise): the
  ``signature`` must match, the ``timestamp`` it signs must be within ``HUIYIN_SIGNATURE_MAX_AGE_S`` of
  now (a captured request stops working), and with ``HUIYIN_WECHAT_AES_KEY`` set (safe mode) the callback
  must be encrypted (``encrypt_type=aes`` with a ``msg_signature``): ``signature`` does not cover the body,
  so a plaintext body proves nothing about who wrote it. The ``msg_signature`` over the ``<Encrypt>``
  element is then checked and the message decrypted with wechatpy's ``WeChatCrypto`` (in compatible
  mode the body's plaintext copy is ignored); the reply is encrypted the same way. Without an AES key
  (plaintext mode) a timestamp + nonce is good for one body only (:meth:`WeChatChannel.first_use`).
- Each message gets its answer inside WeChat's 5 s when it can: see :mod:`integrations.wechat.passive`.
  Replies that miss the window go out through the customer-service message API (``message/custom/send``),
  which is also this platform's :class:`~bot.outbound.Sender` for proactive messages (it only reaches
  residents who wrote within the last 48 hours; that is WeChat's rule). WeChat hears "success" only once
  the message is durably handled; a message the core could not store (an outage) is answered 503, and
  WeChat delivers it again.
- Buttons become numbered options (:mod:`integrations.wechat.options`).

An Official Account conversation is always one resident with the account: chat id and sender id are the
resident's OpenID, so the core's private conversation and the resident are one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
import time
from collections.abc import Mapping
from typing import Any

import httpx
import structlog
from fastapi import HTTPException, Response
from fastapi.responses import PlainTextResponse
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import TextReply
from wechatpy.utils import WeChatSigner

from bot.message import ChatType, IncomingMessage, Platform, Reply
from bot.outbound import DeliveryError, Sender
from bot.state import ConversationKey, Keys
from integrations.core import Core
from integrations.wechat.api import AccessToken, fetch_json, json_body, post_json
from integrations.wechat.passive_channel import PassiveReplyChannel
from integrations.wechat.translate import BadMessage, Decision, Inbound, inbound
from integrations.wechat.xmlsafe import BadXML, cdata_safe, parse_xml

log = structlog.get_logger(__name__)

SUCCESS = "success"
# What a corrupt ciphertext can raise inside wechatpy's decryption (bad base64, bad block size, ...).
DECRYPT_ERRORS = (ValueError, IndexError, TypeError, struct.error, binascii.Error)


def signature(token: str, *parts: str) -> str:
    """WeChat's SHA-1 signature over the sorted ``token`` and ``parts`` (wechatpy's signer)."""
    signer = WeChatSigner()
    signer.add_data(token, *parts)
    return str(signer.signature)


def signature_matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def refuse_stale(query: Mapping[str, str], max_age_s: int) -> None:
    """403 unless the request's ``timestamp`` is a whole number of seconds within ``max_age_s`` of now,
    either way (clocks drift both ways). Every signature of the WeChat family covers the timestamp, so a
    captured request stops working once it is that old. Shared with the WeCom channel."""
    stamp = query.get("timestamp", "")
    if not _TIMESTAMP.fullmatch(stamp):
        raise HTTPException(403, "timestamp is missing or not a number")
    if abs(time.time() - int(stamp)) > max_age_s:
        raise HTTPException(403, f"timestamp is more than {max_age_s} s away from now")


def aes_key_checked(value: str, variable: str) -> str:
    """The EncodingAESKey, refused at start-up when it cannot be one (43 base64 characters, 32 bytes)."""
    try:
        ok = len(value) == 43 and len(base64.b64decode(value + "=")) == 32
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{variable} must be the 43-character EncodingAESKey shown by the platform")
    return value


class WeChatChannel(PassiveReplyChannel):
    """One Official Account: verifies, decrypts, hands messages to the core and answers."""

    name = "wechat"
    platform = Platform.WECHAT
    undelivered_event = "late WeChat reply not delivered"

    def __init__(self, core: Core, *, http: httpx.AsyncClient | None = None) -> None:
        s = core.settings
        if s.wechat_token is None:
            raise ValueError("HUIYIN_WECHAT_TOKEN is not set")
        self.token = s.wechat_token.get_secret_value()
        self.app_id = s.wechat_app_id or ""
        self.crypto: WeChatCrypto | None = None
        if s.wechat_aes_key is not None:
            if not self.app_id:
                raise ValueError("HUIYIN_WECHAT_AES_KEY (safe mode) needs HUIYIN_WECHAT_APP_ID")
            key = aes_key_checked(s.wechat_aes_key.get_secret_value(), "HUIYIN_WECHAT_AES_KEY")
            self.crypto = WeChatCrypto(self.token, key, self.app_id)
        self.max_age_s = s.signature_max_age_s
        self.api_base = s.wechat_api_base.rstrip("/")
        super().__init__(
            core, Platform.WECHAT, window_prefix="wx", deadline_s=s.wechat_reply_deadline_s, http=http
        )
        self.access: AccessToken | None = None
        if self.app_id and s.wechat_app_secret is not None:
            self._secret = s.wechat_app_secret.get_secret_value()
            self.access = AccessToken(
                core.store.redis, Keys.channels.wechat_token(self.app_id), self._fetch_token
            )

    def sender(self) -> Sender:
        return self

    async def start(self) -> None:
        log.info(
            "WeChat Official Account on", safe_mode=self.crypto is not None, sending=self.access is not None
        )

    # --- verification ----------------------------------------------------------------------------------
    def authenticate(self, query: Mapping[str, str], *, callback: bool) -> None:
        """Refuse (403) a request whose ``signature`` does not match token + timestamp + nonce (sent on
        every request), whose timestamp is stale, or, for a ``callback`` (POST) in safe mode, that is not
        encrypted with a ``msg_signature``. Reads only the query: the body is not read before this."""
        expected = signature(self.token, query.get("timestamp", ""), query.get("nonce", ""))
        if not signature_matches(expected, query.get("signature", "")):
            raise HTTPException(403, "signature does not match")
        refuse_stale(query, self.max_age_s)
        if callback and self.crypto is not None:
            if query.get("encrypt_type", "").lower() != "aes" or not query.get("msg_signature"):
                raise HTTPException(
                    403, "safe mode: a callback must be encrypted (encrypt_type=aes with msg_signature)"
                )

    async def first_use(self, query: Mapping[str, str], body: bytes) -> None:
        """Refuse (403) a plaintext callback whose signed timestamp + nonce already came with another body.

        In plaintext mode ``signature`` covers only timestamp and nonce, so a query string read off a log
        would carry any body for as long as the timestamp is fresh. The first body seen with it is
        remembered (its SHA-256, for twice the freshness window, the longest a timestamp can stay fresh)
        and only that body is accepted again: a redelivery of the same request is still handled (the
        core's dedup answers it once), a forged body is not.
        """
        name = Keys.channels.wechat_nonce(query.get("timestamp", ""), query.get("nonce", ""))
        digest = hashlib.sha256(body).hexdigest()
        redis = self.core.store.redis
        if await redis.set(name, digest, nx=True, ex=2 * self.max_age_s):
            return
        if await redis.get(name) != digest:
            raise HTTPException(403, "this timestamp and nonce were already used for another message")

    # --- one callback --------------------------------------------------------------------------------
    async def callback(self, query: Mapping[str, str], body: bytes, started: float) -> Response:
        """Handle one POST that passed :meth:`authenticate`. Raises HTTPException 400/403 for bodies that
        must not be processed; what an outage raises (:mod:`bot.outage`) is left to the route."""
        envelope = parse_body(body)
        encrypted = query.get("encrypt_type", "").lower() == "aes"
        xml: str | bytes = body
        if encrypted:
            xml = self._decrypt(envelope, query)
            parse_body(xml)  # the decrypted document gets the same DTD/entity/depth refusal
        else:
            await self.first_use(query, body)
        try:
            msg = parse_message(xml)
            item = inbound(msg)
        except (BadMessage, KeyError, AttributeError) as exc:
            raise HTTPException(400, f"not a WeChat message: {exc}") from None

        if item.decision is Decision.IGNORE:
            return PlainTextResponse(SUCCESS)
        if item.decision is Decision.WELCOME:
            replies: list[Reply] | None = [self._say(item.sender_id, item.sender_id, "greet")]
        elif item.decision is Decision.UNSUPPORTED:
            replies = [self._say(item.sender_id, item.sender_id, "unsupported_attachment")]
        else:
            replies = await self.within_deadline(
                self.process(item, msg._data),
                key=ConversationKey.private(Platform.WECHAT, item.sender_id),
                message_id=item.message_id,
                started=started,
            )
        if not replies:
            return PlainTextResponse(SUCCESS)
        text = cdata_safe("\n\n".join(r.as_text() for r in replies))
        reply_xml = TextReply(message=msg, content=text).render()
        if encrypted and self.crypto is not None:
            reply_xml = self.crypto.encrypt_message(
                reply_xml, query.get("nonce", ""), query.get("timestamp") or None
            )
        return Response(reply_xml, media_type="application/xml")

    def _decrypt(self, envelope: Mapping[str, str], query: Mapping[str, str]) -> str:
        if self.crypto is None:
            raise HTTPException(400, "a safe-mode callback, but HUIYIN_WECHAT_AES_KEY is not set")
        encrypt = envelope.get("Encrypt")
        if not encrypt:
            raise HTTPException(403, "a safe-mode callback without <Encrypt>: nothing is signed")
        try:
            return str(
                self.crypto.decrypt_message(
                    {"Encrypt": encrypt},
                    query.get("msg_signature", ""),
                    query.get("timestamp", ""),
                    query.get("nonce", ""),
                )
            )
        except (InvalidSignatureException, InvalidAppIdException):
            raise HTTPException(403, "msg_signature does not match") from None
        except DECRYPT_ERRORS:
            raise HTTPException(400, "<Encrypt> does not decrypt") from None

    async def process(self, item: Inbound, raw: Mapping[str, Any]) -> list[Reply]:
        """The core's replies to one resident message (numbered answers resolved first)."""
        openid = item.sender_id
        text = await self.resolved_text(openid, openid, item.text)
        message = IncomingMessage(
            platform=Platform.WECHAT,
            chat_id=openid,
            chat_type=ChatType.PRIVATE,
            sender_id=openid,
            text=text,
            message_id=item.message_id,
            attachments=item.attachments,
            raw=dict(raw),
        )
        return await self.dispatch(message)

    # --- sending (customer-service messages) -----------------------------------------------------------
    async def _post(self, reply: Reply) -> None:
        """One reply as a customer-service text message (``message/custom/send``)."""
        if self.access is None:
            raise DeliveryError("WeChat sending needs HUIYIN_WECHAT_APP_ID and HUIYIN_WECHAT_APP_SECRET")
        payload = {"touser": reply.recipient_id, "msgtype": "text", "text": {"content": reply.as_text()}}
        await post_json(self.http, self.access, f"{self.api_base}/cgi-bin/message/custom/send", payload)

    async def _fetch_token(self, http: httpx.AsyncClient) -> tuple[str, int]:
        # stable_token: several processes (or a redeploy) fetching do not invalidate each other's token.
        data = await fetch_json(
            http,
            "POST",
            f"{self.api_base}/cgi-bin/stable_token",
            content=json_body(
                {"grant_type": "client_credential", "appid": self.app_id, "secret": self._secret}
            ),
            headers={"Content-Type": "application/json"},
        )
        return str(data["access_token"]), int(data.get("expires_in", 7200))


def parse_body(body: bytes | str) -> dict[str, str]:
    """A callback's XML (outer envelope or decrypted message) as a mapping, or 400 when it is not safe,
    well-formed WeChat XML. Shared with the WeCom channel."""
    try:
        return parse_xml(body)
    except BadXML as exc:
        raise HTTPException(400, str(exc)) from None
