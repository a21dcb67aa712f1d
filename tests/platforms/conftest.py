"""Fixtures for the platform connectors: every platform configured against one local fake API server,
the app with the connectors set up, and helpers that sign and encrypt recorded payloads with wechatpy."""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.responses import JSONResponse
from wechatpy.crypto import WeChatCrypto
from wechatpy.enterprise.crypto import PrpCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as EnterpriseCrypto
from wechatpy.utils import WeChatSigner, to_text

from bot.app import create_app
from bot.db.models import TranscriptMessage
from bot.message import IncomingMessage, Reply
from bot.runtime import Runtime
from bot.settings import Settings
from integrations import telegram, wechat, wecom
from tests.conftest import make_settings
from tests.platforms.fake_api import Call, FakeAPI

RESPONSES = Path(__file__).with_name("responses")

TG_TOKEN = "7000000001:AAHtestTOKENforHuiyin"
TG_SECRET = "s3cret-Token_for-webhook"
TG_BOT = {
    "id": 7000000001,
    "is_bot": True,
    "first_name": "回音",
    "username": "huiyin_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
WX_TOKEN = "wxCallbackToken2025"
WX_APP_ID = "wx5823bf96d3bd56c7"
WX_AES_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")
WECOM_CORP = "ww6a112a7c6f8e2b3d"
WECOM_AGENT = 1000002
WECOM_TOKEN = "wecomAppToken"
WECOM_AES_KEY = base64.b64encode(bytes(range(32, 64))).decode().rstrip("=")
ROBOT_TOKEN = "wecomRobotToken"
ROBOT_AES_KEY = base64.b64encode(bytes(range(64, 96))).decode().rstrip("=")
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00fake-photo-bytes\xff\xd9"


def load(name: str) -> str:
    return (RESPONSES / name).read_text(encoding="utf-8")


def load_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(load(name))
    return copy.deepcopy(data)


class TelegramFake:
    """The Bot API methods the connector uses, answered like Telegram does."""

    def __init__(self, api: FakeAPI) -> None:
        self.blocked: set[int] = set()  # users who never opened a chat with the bot (403 on send)
        self._ids = itertools.count(1000)
        prefix = f"/bot{TG_TOKEN}/"
        api.on(prefix + "getMe", lambda c: {"ok": True, "result": TG_BOT})
        api.on(prefix + "sendMessage", self._send)
        api.on(
            prefix + "getFile",
            lambda c: {
                "ok": True,
                "result": {
                    "file_id": c.data["file_id"],
                    "file_unique_id": "AQADlarge",
                    "file_size": len(JPEG),
                    "file_path": "photos/file_7.jpg",
                },
            },
        )
        api.on(f"/file/bot{TG_TOKEN}/photos/file_7.jpg", lambda c: JPEG)

    def _send(self, call: Call) -> Any:
        chat_id = int(call.data["chat_id"])
        if chat_id in self.blocked:
            return JSONResponse(
                {
                    "ok": False,
                    "error_code": 403,
                    "description": "Forbidden: bot can't initiate conversation with a user",
                },
                status_code=403,
            )
        chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
        message = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": chat,
            "from": TG_BOT,
            "text": call.data.get("text", ""),
        }
        return {"ok": True, "result": message}


def install_wechat_family(api: FakeAPI) -> None:
    api.on("/cgi-bin/stable_token", lambda c: {"access_token": "WX-ACCESS-1", "expires_in": 7200})
    api.on("/cgi-bin/message/custom/send", lambda c: {"errcode": 0, "errmsg": "ok"})
    api.on(
        "/cgi-bin/gettoken",
        lambda c: {"errcode": 0, "errmsg": "ok", "access_token": "WW-ACCESS-1", "expires_in": 7200},
    )
    api.on("/cgi-bin/message/send", lambda c: {"errcode": 0, "errmsg": "ok", "invaliduser": ""})
    api.on("/cgi-bin/webhook/send", lambda c: {"errcode": 0, "errmsg": "ok"})
    api.on("/cgi-bin/aibot/response", lambda c: {"errcode": 0, "errmsg": "ok"})


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeAPI]:
    api = FakeAPI()
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
def tg_fake(fake_api: FakeAPI) -> TelegramFake:
    return TelegramFake(fake_api)


def platform_settings(api_url: str) -> dict[str, Any]:
    return {
        "telegram_token": TG_TOKEN,
        "telegram_mode": "webhook",
        "telegram_secret": TG_SECRET,
        "telegram_api_base": api_url,
        "telegram_rate_per_s": 0,
        "telegram_group_rate_per_min": 0,
        "wechat_token": WX_TOKEN,
        "wechat_app_id": WX_APP_ID,
        "wechat_app_secret": "wx-app-secret",
        "wechat_aes_key": WX_AES_KEY,
        "wechat_api_base": api_url,
        "wecom_corp_id": WECOM_CORP,
        "wecom_agent_id": WECOM_AGENT,
        "wecom_secret": "wecom-app-secret",
        "wecom_token": WECOM_TOKEN,
        "wecom_aes_key": WECOM_AES_KEY,
        "wecom_robot_token": ROBOT_TOKEN,
        "wecom_robot_aes_key": ROBOT_AES_KEY,
        "wecom_staff_webhook": f"{api_url}/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa",
        "wecom_api_base": api_url,
    }


@pytest.fixture
def settings(tmp_path: Path, fake_api: FakeAPI, tg_fake: TelegramFake) -> Settings:
    install_wechat_family(fake_api)
    return make_settings(tmp_path, **platform_settings(fake_api.url))


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with every platform set up (the ASGI transport does not run the lifespan)."""
    app = create_app(runtime=runtime)
    app.state.runtime = runtime
    await telegram.setup(app, runtime)
    await wechat.setup(app, runtime)
    await wecom.setup(app, runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://huiyin.test") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c


# --- WeChat-family signing and encryption, done with wechatpy as the platforms do --------------------
def sign(token: str, *parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(token, *parts)
    return str(signer.signature)


def fresh_nonce() -> str:
    """A nonce as the platforms send them: digits, new for every request."""
    return str(secrets.randbelow(10**10))


def wechat_query(*, timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    nonce = nonce or fresh_nonce()
    return {
        "signature": sign(WX_TOKEN, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        "openid": "oRmM-6XBp0jNnGdBvtq5tYb2jHsM",
    }


def wechat_encrypted(
    xml: str, *, nonce: str | None = None, timestamp: str | None = None
) -> tuple[dict[str, str], str]:
    """A safe-mode callback: the query (with msg_signature) and the envelope WeChat posts."""
    crypto = WeChatCrypto(WX_TOKEN, WX_AES_KEY, WX_APP_ID)
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    nonce = nonce or fresh_nonce()
    encrypted = crypto.encrypt_message(xml, nonce, timestamp)
    encrypt = encrypted.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    query = wechat_query(timestamp=timestamp, nonce=nonce)
    query.update(encrypt_type="aes", msg_signature=sign(WX_TOKEN, timestamp, nonce, encrypt))
    body = f"<xml>\n<ToUserName><![CDATA[gh_3c884a361561]]></ToUserName>\n<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n</xml>"
    return query, body


def wechat_decrypt(body: str, query: dict[str, str]) -> str:
    crypto = WeChatCrypto(WX_TOKEN, WX_AES_KEY, WX_APP_ID)
    encrypt = body.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    signature = body.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
    timestamp = body.split("<TimeStamp>")[1].split("</TimeStamp>")[0]
    nonce = body.split("<Nonce><![CDATA[")[1].split("]]>")[0]
    return str(crypto.decrypt_message({"Encrypt": encrypt}, signature, timestamp, nonce))


def wecom_app_encrypted(
    xml: str, *, nonce: str = "5h2rWKsxKAv", timestamp: str | None = None
) -> tuple[dict[str, str], str]:
    crypto = EnterpriseCrypto(WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP)
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    encrypted = crypto.encrypt_message(xml, nonce, timestamp)
    encrypt = encrypted.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    query = {
        "msg_signature": sign(WECOM_TOKEN, timestamp, nonce, encrypt),
        "timestamp": timestamp,
        "nonce": nonce,
    }
    body = (
        f"<xml><ToUserName><![CDATA[{WECOM_CORP}]]></ToUserName>"
        f"<AgentID><![CDATA[{WECOM_AGENT}]]></AgentID><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    )
    return query, body


def wecom_app_decrypt(body: str) -> str:
    crypto = EnterpriseCrypto(WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP)
    encrypt = body.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    signature = body.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
    timestamp = body.split("<TimeStamp>")[1].split("</TimeStamp>")[0]
    nonce = body.split("<Nonce><![CDATA[")[1].split("]]>")[0]
    return str(crypto.decrypt_message({"Encrypt": encrypt}, signature, timestamp, nonce))


def _robot_key() -> bytes:
    key: bytes = EnterpriseCrypto(ROBOT_TOKEN, ROBOT_AES_KEY, "").key
    return key


def robot_encrypted(
    payload: dict[str, Any] | str, *, nonce: str = "nonce8812", timestamp: str | None = None
) -> tuple[dict[str, str], bytes]:
    """An intelligent-robot callback: encrypted JSON (``payload``, or that JSON text as it is) with an
    empty receive id, signed."""
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    plain = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    encrypt = to_text(PrpCrypto(_robot_key()).encrypt(plain, ""))
    query = {
        "msg_signature": sign(ROBOT_TOKEN, timestamp, nonce, encrypt),
        "timestamp": timestamp,
        "nonce": nonce,
    }
    return query, json.dumps({"encrypt": encrypt}).encode()


def robot_decrypt(envelope: dict[str, Any]) -> dict[str, Any]:
    encrypt = envelope["encrypt"]
    assert envelope["msgsignature"] == sign(
        ROBOT_TOKEN, str(envelope["timestamp"]), envelope["nonce"], encrypt
    ), "the reply's signature must verify"
    data: dict[str, Any] = json.loads(PrpCrypto(_robot_key()).decrypt(encrypt, ""))
    return data


# --- what reached the core ---------------------------------------------------------------------------------
async def inbound_rows(runtime: Runtime) -> int:
    """How many inbound messages the transcript holds (0: nothing reached the core)."""
    async with runtime.db.unit_of_work() as uow:
        query = select(func.count()).select_from(TranscriptMessage).where(TranscriptMessage.direction == "in")
        return int(await uow.session.scalar(query) or 0)


async def inbound_transcript(runtime: Runtime) -> list[tuple[str, dict[str, Any] | None]]:
    """``(text, payload)`` of every inbound transcript message, in the order they were written."""
    async with runtime.db.unit_of_work() as uow:
        rows = await uow.session.execute(
            select(TranscriptMessage.text, TranscriptMessage.payload)
            .where(TranscriptMessage.direction == "in")
            .order_by(TranscriptMessage.id)
        )
        return [(text, payload) for text, payload in rows.all()]


def slow_down_core(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, delay_s: float = 1.0
) -> Callable[[IncomingMessage], Awaitable[list[Reply]]]:
    """Make the core take ``delay_s`` longer over every message (an NLU service or a database under
    load), so that replies miss a shortened passive window. Returns the real ``dispatcher.handle``, for
    a test that puts it back with ``monkeypatch.setattr``."""
    handle = runtime.dispatcher.handle

    async def slow(message: IncomingMessage) -> list[Reply]:
        await asyncio.sleep(delay_s)
        return await handle(message)

    monkeypatch.setattr(runtime.dispatcher, "handle", slow)
    return handle
