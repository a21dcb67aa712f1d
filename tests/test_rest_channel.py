"""The REST channel (Rasa-compatible) and the app's other endpoints, through the real ASGI app."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bot.app import create_app
from bot.db.models import Appeal, TranscriptMessage
from bot.nlu.base import NLUBackend
from bot.runtime import Runtime
from bot.settings import Settings
from tests.outages import disposable_redis, unreachable_database_url

URL = "/webhooks/rest/webhook"


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=runtime)
    app.state.runtime = runtime  # the lifespan is not run by ASGITransport
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://huiyin.test") as c:
        yield c


def group(text: str, sender: str = "web-wang", **meta: Any) -> dict[str, Any]:
    metadata = {"chat_id": "web-group", "chat_type": "group", "user_name": "王阿姨", "mentioned": False}
    metadata.update(meta)
    return {"sender": sender, "message": text, "metadata": metadata}


async def transcript_rows(runtime: Runtime) -> int:
    async with runtime.db.unit_of_work() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(TranscriptMessage)) or 0)


async def test_private_chat_without_metadata(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, json={"sender": "u1", "message": "你好"})
    assert r.status_code == 200
    [reply] = r.json()
    assert reply["recipient_id"] == "u1" and reply["target"] == "chat" and reply["chat_id"] == "u1"
    assert reply["text"] and reply["buttons"] == []


async def test_files_an_appeal_with_buttons_as_payloads(client: httpx.AsyncClient, runtime: Runtime) -> None:
    r = await client.post(URL, json=group("@回音 3栋2单元楼道灯坏了", mentioned=True, message_id="w1"))
    assert r.status_code == 200
    skip = next(b for b in r.json()[-1]["buttons"] if "跳过" in b["title"])
    r = await client.post(URL, json=group(skip["payload"], message_id="w2"))
    targets = {x["target"] for x in r.json()}
    assert targets == {"chat", "private"}
    r = await client.post(URL, json={"sender": "web-wang", "message": "13812345678"})
    confirm = next(b for b in r.json()[-1]["buttons"] if b["title"] == "确认提交")
    r = await client.post(URL, json={"sender": "web-wang", "message": confirm["payload"]})
    body = r.json()
    assert any(re.search(r"HY-\d{8}-\d{4}", x["text"]) for x in body)
    assert any(x["chat_id"] == "web-group" for x in body), "the group hears that the appeal was filed"
    async with runtime.db.unit_of_work() as uow:
        assert await uow.session.scalar(select(func.count()).select_from(Appeal)) == 1


async def test_ignored_group_chatter_answers_an_empty_list(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, json=group("大家晚上好"))
    assert r.status_code == 200 and r.json() == []


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b'{"sender": "u1", "message": ""}', 422, "must not be empty"),
        (b'{"sender": "u1", "message": "   "}', 422, "must not be empty"),
        (json.dumps({"sender": "u1", "message": "漏" * 20_000}).encode(), 413, None),
        (b'{"sender": "u1", "message": "hi"', 400, "not valid JSON"),
        (b"not json at all", 400, "not valid JSON"),
        (b"", 400, "not valid JSON"),
        (b'{"message": "hi"}', 422, "sender"),
        (b'{"sender": "u1"}', 422, "message"),
        (b'{"sender": 123, "message": "hi"}', 422, "sender"),
        (b'{"sender": "u1", "message": ["hi"]}', 422, "message"),
        (b'{"sender": "u1", "message": "hi", "metadata": {"mentioned": "yes"}}', 422, "mentioned"),
        (b'{"sender": "u1", "message": "hi", "metadata": {"chat_type": "channel"}}', 422, "chat_type"),
        (b'{"sender": "u1", "message": "hi", "metadata": {"chat_type": "group"}}', 422, "chat_id"),
        (b'{"sender": "", "message": "hi"}', 422, "sender"),
        (b"[1, 2, 3]", 422, None),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_written(
    client: httpx.AsyncClient, runtime: Runtime, body: bytes, status: int, detail: str | None
) -> None:
    r = await client.post(URL, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert isinstance(r.json()["detail"], str) and r.json()["detail"]
    if detail:
        assert detail in r.json()["detail"]
    assert await transcript_rows(runtime) == 0


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (rb'{"sender": "u1", "message": "\ud800"}', "message"),
        (rb'{"sender": "u1", "message": "lamp \udc00 broken"}', "message"),
        (rb'{"sender": "u1", "message": "hi", "metadata": {"user_name": "\ud83d"}}', "metadata.user_name"),
        (rb'{"sender": "u\udfff", "message": "hi"}', "sender"),
    ],
)
async def test_a_lone_surrogate_is_refused_with_422_saying_where(
    client: httpx.AsyncClient, runtime: Runtime, body: bytes, where: str
) -> None:
    """Valid JSON, but not text: no database stores it. Refused, not accepted and lost on the way."""
    r = await client.post(URL, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(f"{where}: ") and "surrogate" in r.json()["detail"]
    assert await transcript_rows(runtime) == 0
    # A valid pair is an emoji, and welcome.
    ok = await client.post(
        URL,
        content=rb'{"sender": "u1", "message": "\ud83d\ude00"}',
        headers={"content-type": "application/json"},
    )
    assert ok.status_code == 200


async def test_oversized_body_is_refused_before_parsing(client: httpx.AsyncClient) -> None:
    r = await client.post(
        URL, content=b"{" + b" " * 70_000 + b"}", headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200
    checks = r.json()["checks"]
    assert checks["database"] == "ok" and checks["redis"].startswith("ok") and "embedded" in checks["nlu"]


async def test_readiness_reports_a_dead_database(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await runtime.db.engine.dispose()
    original = runtime.db.engine.url
    from sqlalchemy.ext.asyncio import create_async_engine

    runtime.db.engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        r = await client.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"]["database"].startswith("error")
    finally:
        await runtime.db.engine.dispose()
        runtime.db.engine = create_async_engine(original)


async def test_web_chat_page_is_served(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    script = re.search(r'<script src="/?(static/[\w.-]+\.js)"', r.text)
    assert script, "the page loads its script"
    js = await client.get("/" + script.group(1))
    assert js.status_code == 200 and "webhooks/rest/webhook" in js.text


async def test_a_message_id_reused_by_another_sender_is_not_a_redelivery(client: httpx.AsyncClient) -> None:
    """The dedup record belongs to one sender in one chat: Bob sending Alice's message id gets his own
    answer (not Alice's replies, her phone number in them), and Alice's own redelivery still replays."""

    async def say(sender: str, text: str, message_id: str) -> list[dict[str, Any]]:
        r = await client.post(
            URL, json={"sender": sender, "message": text, "metadata": {"message_id": message_id}}
        )
        assert r.status_code == 200, r.text
        return list(r.json())

    await say("alice", "地下车库积水了", "a-1")
    await say("alice", "跳过", "a-2")
    alice = await say("alice", "13812345678", "a-3")
    assert any("13812345678" in x["text"] for x in alice), "Alice's summary shows her phone"
    bob = await say("bob", "你好", "a-3")
    assert bob and all(x["recipient_id"] == "bob" for x in bob)
    assert not any("13812345678" in x["text"] for x in bob)
    assert await say("alice", "13812345678", "a-3") == alice, "Alice's redelivery replays her replies"
    # Bob's own redelivery replays his answer.
    assert await say("bob", "你好", "a-3") == bob


async def test_a_redelivery_after_redis_lost_its_data_is_answered_as_the_first_time(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """The embedded Redis forgets everything on a restart; a client that resends a message it got no
    answer to must not get a 500 (the transcript already holds that message) but the first answer."""
    body = {"sender": "web-zhao", "message": "地下车库积水了", "metadata": {"message_id": "z-1"}}
    first = await client.post(URL, json=body)
    assert first.status_code == 200
    rows = await transcript_rows(runtime)
    await runtime.store.redis.flushdb()
    again = await client.post(URL, json=body)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert await transcript_rows(runtime) == rows, "the redelivery wrote nothing"


async def test_redis_out_of_reach_is_answered_503_with_retry_after(
    settings: Settings, shared_nlu: NLUBackend, tmp_path: Path
) -> None:
    """A message that could not be durably handled is refused so that the client sends it again."""
    with disposable_redis(tmp_path) as (url, redis_server):
        rt = await Runtime.start(settings.model_copy(update={"redis_url": url}), nlu=shared_nlu)
        try:
            app = create_app(runtime=rt)
            app.state.runtime = rt
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://huiyin.test") as c:
                ok = await c.post(URL, json={"sender": "u-out", "message": "你好"})
                assert ok.status_code == 200
                redis_server.kill()
                redis_server.wait(timeout=10)
                r = await c.post(URL, json={"sender": "u-out", "message": "地下车库积水了"})
            assert r.status_code == 503, r.text
            assert int(r.headers["retry-after"]) > 0
            assert "detail" in r.json()
        finally:
            await rt.close()


async def test_the_database_out_of_reach_is_answered_503_and_nothing_is_half_written(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    from bot.db.session import Database

    healthy = runtime.dispatcher.db
    broken = Database(unreachable_database_url())
    runtime.dispatcher.db = broken
    try:
        r = await client.post(URL, json={"sender": "u-db", "message": "地下车库积水了"})
    finally:
        runtime.dispatcher.db = healthy
        await broken.dispose()
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) > 0
    # Once the database is back, the same message is handled (it was not recorded as handled).
    again = await client.post(URL, json={"sender": "u-db", "message": "地下车库积水了"})
    assert again.status_code == 200 and again.json()
