"""Outages make the platforms deliver again: with Redis or the database out of reach, or the conversation
locked, every webhook path answers 503 with Retry-After (never success for a message that was not stored),
and the redelivery once the service is back is handled, once.

Redis here is a server each test starts itself on a port of its own, and kills; the database that fails is
a URL on a port where nothing listens. Never the machine's shared services.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from wechatpy import parse_message
from wechatpy.enterprise import parse_message as parse_wecom_message

from bot.db.session import Database
from bot.message import Platform
from bot.runtime import Runtime
from bot.settings import Settings
from bot.state import ConversationKey, Keys
from tests.conftest import make_settings
from tests.outages import disposable_redis, unreachable_database_url
from tests.platforms.conftest import (
    TG_SECRET,
    TelegramFake,
    inbound_rows,
    install_wechat_family,
    load,
    load_json,
    platform_settings,
    robot_decrypt,
    robot_encrypted,
    wechat_decrypt,
    wechat_encrypted,
    wecom_app_decrypt,
    wecom_app_encrypted,
)
from tests.platforms.fake_api import FakeAPI

OPENID = "oRmM-6XBp0jNnGdBvtq5tYb2jHsM"
WECOM_USER = "WangXiuYing"
ROBOT_CHAT = "wrkSFfCgAAxr0Lm3YbFsZ9wRw0pT1E7A"
TG_USER = "5012345678"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    with disposable_redis(tmp_path) as server:
        yield server


@pytest.fixture
def settings(
    tmp_path: Path,
    fake_api: FakeAPI,
    tg_fake: TelegramFake,
    redis_server: tuple[str, subprocess.Popen[bytes]],
) -> Settings:
    """Every platform on, against this test's own Redis; a lock wait short enough to run out in a test."""
    install_wechat_family(fake_api)
    return make_settings(
        tmp_path, **platform_settings(fake_api.url), redis_url=redis_server[0], lock_wait_s=0.5
    )


@dataclass
class Delivery:
    """One platform's delivery of one resident message, posted the same each time (a redelivery)."""

    name: str
    key: ConversationKey  # whose conversation it is
    request: httpx.Request
    answered: Callable[[httpx.Response, FakeAPI], str]  # the reply's text, wherever it went

    async def post(self, client: httpx.AsyncClient) -> httpx.Response:
        return await client.send(self.request)


def wechat(client: httpx.AsyncClient, fake_api: FakeAPI) -> Delivery:
    query, body = wechat_encrypted(load("wechat_text.xml"))

    def answered(r: httpx.Response, api: FakeAPI) -> str:
        assert r.status_code == 200, r.text
        return str(parse_message(wechat_decrypt(r.text, query)).content)

    return Delivery(
        "wechat",
        ConversationKey.private(Platform.WECHAT, OPENID),
        client.build_request("POST", "/webhooks/wechat/webhook", params=query, content=body.encode()),
        answered,
    )


def wecom_app(client: httpx.AsyncClient, fake_api: FakeAPI) -> Delivery:
    query, body = wecom_app_encrypted(load("wecom_app_text.xml"))

    def answered(r: httpx.Response, api: FakeAPI) -> str:
        assert r.status_code == 200, r.text
        return str(parse_wecom_message(wecom_app_decrypt(r.text)).content)

    return Delivery(
        "wecom-app",
        ConversationKey.private(Platform.WECOM, WECOM_USER),
        client.build_request("POST", "/webhooks/wecom/webhook", params=query, content=body.encode()),
        answered,
    )


def wecom_robot(client: httpx.AsyncClient, fake_api: FakeAPI) -> Delivery:
    payload = load_json("wecom_robot_group_text.json")
    payload["response_url"] = f"{fake_api.url}/cgi-bin/aibot/response?response_code=RC1"
    query, body = robot_encrypted(payload)

    def answered(r: httpx.Response, api: FakeAPI) -> str:
        assert r.status_code == 200, r.text
        return str(robot_decrypt(r.json())["stream"]["content"])

    return Delivery(
        "wecom-robot",
        ConversationKey(Platform.WECOM, ROBOT_CHAT, WECOM_USER),
        client.build_request("POST", "/webhooks/wecom/webhook", params=query, content=body),
        answered,
    )


def telegram(client: httpx.AsyncClient, fake_api: FakeAPI) -> Delivery:
    def answered(r: httpx.Response, api: FakeAPI) -> str:
        assert r.status_code == 200 and r.json() == {"ok": True}, r.text
        return "\n".join(c.data["text"] for c in api.to("/sendMessage"))

    return Delivery(
        "telegram",
        ConversationKey(Platform.TELEGRAM, TG_USER, TG_USER),
        client.build_request(
            "POST",
            "/webhooks/telegram/webhook",
            json=load_json("telegram_private_text.json"),
            headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET},
        ),
        answered,
    )


PATHS = [wechat, wecom_app, wecom_robot, telegram]
Build = Callable[[httpx.AsyncClient, FakeAPI], Delivery]


def assert_redeliver(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) > 0
    assert "deliver it again" in r.json()["detail"]


async def redelivered_once(
    client: httpx.AsyncClient, runtime: Runtime, fake_api: FakeAPI, delivery: Delivery
) -> None:
    """The platform delivers the message again: it is handled and answered; once more, and nothing more
    happens (one row in the transcript, one answer)."""
    again = await delivery.post(client)
    assert "照片" in delivery.answered(again, fake_api), "the redelivery is handled: the form asks on"
    assert await inbound_rows(runtime) == 1
    third = await delivery.post(client)
    assert third.status_code == 200, third.text
    assert await inbound_rows(runtime) == 1, "handled once"
    if delivery.name == "telegram":
        assert len(fake_api.to("/sendMessage")) == 1, "answered once"


@pytest.mark.parametrize("build", PATHS, ids=lambda b: b.__name__)
async def test_redis_out_of_reach_is_answered_503_and_the_redelivery_is_handled_once(
    client: httpx.AsyncClient,
    runtime: Runtime,
    fake_api: FakeAPI,
    redis_server: tuple[str, subprocess.Popen[bytes]],
    tmp_path: Path,
    build: Build,
) -> None:
    url, server = redis_server
    delivery = build(client, fake_api)
    server.kill()
    server.wait(timeout=10)
    assert_redeliver(await delivery.post(client))
    assert await inbound_rows(runtime) == 0
    port = urlsplit(url).port
    assert port is not None
    with disposable_redis(tmp_path, port=port):  # Redis is back (empty: it kept nothing on disk)
        await redelivered_once(client, runtime, fake_api, delivery)


@pytest.mark.parametrize("build", PATHS, ids=lambda b: b.__name__)
async def test_the_database_out_of_reach_is_answered_503_and_the_redelivery_is_handled_once(
    client: httpx.AsyncClient, runtime: Runtime, fake_api: FakeAPI, build: Build
) -> None:
    delivery = build(client, fake_api)
    healthy = runtime.dispatcher.db
    broken = Database(unreachable_database_url())
    runtime.dispatcher.db = broken
    try:
        assert_redeliver(await delivery.post(client))
    finally:
        runtime.dispatcher.db = healthy
        await broken.dispose()
    assert await inbound_rows(runtime) == 0
    if delivery.name == "telegram":
        assert fake_api.to("/sendMessage") == [], "nothing was said for a message not handled"
    await redelivered_once(client, runtime, fake_api, delivery)


@pytest.mark.parametrize("build", PATHS, ids=lambda b: b.__name__)
async def test_a_conversation_that_stays_locked_is_answered_503_not_busy(
    client: httpx.AsyncClient, runtime: Runtime, fake_api: FakeAPI, build: Build
) -> None:
    """Another message of the conversation holds its lock past the lock wait: the message was not
    handled; the platform is asked to deliver it again (the resident is not asked to repeat it)."""
    delivery = build(client, fake_api)
    lock = Keys.lock(delivery.key)
    await runtime.store.redis.set(lock, "another-process", px=60_000)
    assert_redeliver(await delivery.post(client))
    assert fake_api.to("/sendMessage") == [] and fake_api.to("/message/send") == []
    await runtime.store.redis.delete(lock)
    await redelivered_once(client, runtime, fake_api, delivery)
