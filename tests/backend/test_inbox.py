"""The mailboxes that stand in for push on the REST channel and the web chat."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.app import create_app
from bot.message import Button, Platform, Reply, Target
from bot.runtime import Runtime
from integrations.rest.inbox import INBOX_KEEP, InboxSender, take

URL = "/webhooks/rest/inbox"


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=runtime)
    app.state.runtime = runtime  # ASGITransport does not run the lifespan
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://huiyin.test") as c:
        yield c


async def test_messages_wait_in_order_and_are_taken_once(runtime: Runtime, client: httpx.AsyncClient) -> None:
    sender = InboxSender(runtime.store.redis, Platform.REST)
    await sender.send(Reply("第一条", chat_id="grp", recipient_id="wang"))
    await sender.send(
        Reply(
            "第二条",
            chat_id="wang",
            recipient_id="wang",
            target=Target.PRIVATE,
            buttons=(Button("满意", "/rate x satisfied"),),
        )
    )
    await sender.send(Reply("给李先生", chat_id="li", recipient_id="li"))
    r = await client.get(URL, params=[("sender", "wang"), ("sender", "nobody")])
    assert r.status_code == 200
    assert [(m["text"], m["target"], m["chat_id"]) for m in r.json()] == [
        ("第一条", "chat", "grp"),
        ("第二条", "private", "wang"),
    ]
    assert r.json()[1]["buttons"] == [{"title": "满意", "payload": "/rate x satisfied"}]
    assert (await client.get(URL, params={"sender": "wang"})).json() == []
    assert [m["text"] for m in (await client.get(URL, params={"sender": "li"})).json()] == ["给李先生"]


async def test_a_mailbox_keeps_only_the_newest(runtime: Runtime) -> None:
    sender = InboxSender(runtime.store.redis, Platform.WEB)
    for i in range(INBOX_KEEP + 5):
        await sender.send(Reply(f"m{i}", chat_id="u", recipient_id="u"))
    kept = await take(runtime.store.redis, Platform.WEB, ["u"])
    assert len(kept) == INBOX_KEEP and kept[0]["text"] == "m5"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"sender": ""},
        {"sender": "u", "platform": "telegram"},
        [("sender", f"u{i}") for i in range(21)],
        {"sender": "x" * 129},
    ],
)
async def test_bad_requests_are_refused(client: httpx.AsyncClient, params: object) -> None:
    r = await client.get(URL, params=params)  # type: ignore[arg-type]
    assert r.status_code == 422 and r.json()["detail"]


async def test_the_webhook_announces_the_mailboxes(client: httpx.AsyncClient) -> None:
    r = await client.post("/webhooks/rest/webhook", json={"sender": "u1", "message": "你好"})
    assert r.status_code == 200 and r.headers["x-huiyin-inbox"] == "webhooks/rest/inbox"
    assert "x-huiyin-inbox" not in (await client.get("/healthz")).headers
