"""GET /metrics through the real ASGI app: what a day of turns moves, that no personal data appears, the
token, and that the Grafana dashboard only asks for metrics the app serves."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import select, text

from bot.app import create_app
from bot.cases.desk import queue_city_case
from bot.db.models import Appeal, Role
from bot.db.session import Database
from bot.nlu.base import NLUBackend, Understanding
from bot.nlu.fallback import BackendError, FallbackNLU
from bot.roles import create_staff_account, ensure_community, issue_invite
from bot.runtime import Runtime
from bot.settings import Settings
from integrations.backend.forwarder import Forwarder
from integrations.backend.reference import free_port
from integrations.rasa.adapter import RasaNLU
from tests.conftest import REAL

URL = "/webhooks/rest/webhook"
DASHBOARD = Path(__file__).resolve().parents[1] / "docker" / "grafana-dashboard.json"
APPEAL_ID = re.compile(r"HY-\d{8}-\d{4}")
PHONE = "13812345678"


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2id at the smallest cost (the staff account below is only there to take handoffs)."""
    from argon2 import PasswordHasher

    monkeypatch.setattr("bot.roles._hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=runtime)
    app.state.runtime = runtime  # the lifespan is not run by ASGITransport
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://huiyin.test") as c:
        yield c


async def say(client: httpx.AsyncClient, sender: str, message: str, **meta: Any) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"sender": sender, "message": message}
    if meta:
        body["metadata"] = meta
    r = await client.post(URL, json=body)
    assert r.status_code == 200, r.text
    return list(r.json())


def in_group(name: str, **more: Any) -> dict[str, Any]:
    return {"chat_id": "web-group", "chat_type": "group", "user_name": name, **more}


async def scrape(client: httpx.AsyncClient, **headers: str) -> str:
    r = await client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


def samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape: (name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def value(body: str, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels`` (0 when the scrape has none: a counter never moved)."""
    return samples(body).get((name, frozenset(labels.items())), 0.0)


def families(body: str) -> dict[str, str]:
    """Metric family name -> type, from the scrape's ``# TYPE`` lines."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", body, flags=re.MULTILINE))


async def staffed_community(runtime: Runtime) -> str:
    """The demo community with a staff member (so asking for a person queues the conversation) and an
    invite code for a building leader of building 3."""
    async with runtime.db.unit_of_work() as uow:
        demo = await ensure_community(uow.session, "demo", "幸福里社区")
        await create_staff_account(uow.session, "lina", "correct horse battery", "李娜", [demo])
        code = await issue_invite(
            uow.session, demo, Role.BUILDING_LEADER, ttl=timedelta(hours=1), buildings=["3"]
        )
        await uow.commit()
    await runtime.dispatcher.handoff.restore_markers(runtime.db)
    return code


async def test_a_day_of_turns_moves_the_metrics_and_leaks_no_personal_data(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    code = await staffed_community(runtime)
    # A resident files an appeal: report in the group, photo skipped, phone and confirmation in private.
    replies = await say(client, "web-wang", "@回音 3栋2单元楼道灯坏了", **in_group("王阿姨", mentioned=True))
    skip = next(b for b in replies[-1]["buttons"] if "跳过" in b["title"])
    await say(client, "web-wang", skip["payload"], **in_group("王阿姨"))
    await say(client, "web-wang", PHONE)
    filed = await say(client, "web-wang", "/confirm")
    dialog_id = next(m.group() for r in filed if (m := APPEAL_ID.search(r["text"])))
    # Group chatter nobody addressed to the bot.
    assert await say(client, "web-li", "大家晚上好，明天降温", **in_group("李先生")) == []
    # Another resident asks for a person (queued: the community has staff), then for help.
    queued = await say(client, "web-zhang", "转人工")
    assert any("转接" in r["text"] for r in queued), queued
    await say(client, "web-zhang", "/help")
    # A building leader joins and relays a neighbour's problem.
    await say(client, "web-leader", f"/join {code}")
    await say(client, "web-leader", "帮3栋502赵奶奶反映：厨房漏水")
    relayed = await say(client, "web-leader", "/relay ok")
    relay_id = next(m.group() for r in relayed if (m := APPEAL_ID.search(r["text"])))
    # A console page under a path parameter: the label is the template, not the appeal id.
    assert (await client.get(f"/staff/appeals/{relay_id}", follow_redirects=False)).status_code in {303, 401}

    body = await scrape(client)
    assert value(body, "huiyin_turns_total", platform="rest", kind="dialog") == 4
    assert value(body, "huiyin_turns_total", platform="rest", kind="other") == 1  # 转人工
    assert value(body, "huiyin_turns_total", platform="rest", kind="command") == 1  # /help
    assert value(body, "huiyin_turns_total", platform="rest", kind="staff") == 3  # join, relay, confirm
    assert value(body, "huiyin_group_chatter_total", platform="rest") == 1
    assert value(body, "huiyin_appeals_filed_total", platform="rest", source="dialog") == 1
    assert value(body, "huiyin_appeals_filed_total", platform="rest", source="relay") == 1
    # No backend here: the community's case desk handles both appeals, nothing waits for a backend.
    assert value(body, "huiyin_outbox_undelivered", lane="backend") == 0
    assert value(body, "huiyin_outbox_undelivered", lane="notify") == 0
    assert 0 <= value(body, "huiyin_outbox_oldest_undelivered_age_seconds", lane="backend") < 600
    assert value(body, "huiyin_handoffs_waiting") == 1
    assert 0 <= value(body, "huiyin_handoffs_oldest_waiting_age_seconds") < 600
    assert value(body, "huiyin_http_request_duration_seconds_count", route=URL) == 10
    assert value(body, "huiyin_http_request_duration_seconds_count", route="/staff/appeals/{public_id}") == 1
    # Redis scripts reach a server through NoScriptError once: that is not an error.
    assert not [
        k for k in samples(body) if k[0] in {"huiyin_redis_errors_total", "huiyin_database_errors_total"}
    ]

    # Nothing personal: no phone, id, name, chat, appeal id or message text, in labels or anywhere else.
    for secret in (
        PHONE,
        "web-wang",
        "web-li",
        "web-zhang",
        "web-leader",
        "web-group",
        dialog_id,
        relay_id,
        code,
    ):
        assert secret not in body, secret
    assert re.search(r"[\u4e00-\u9fff]", body) is None, "no Chinese text at all (names, messages)"
    assert re.search(r"(?<![\d.])1[3-9]\d{9}(?![\d.])", body) is None


async def test_scrape_time_gauges_are_cached_between_reads(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await staffed_community(runtime)
    assert value(await scrape(client), "huiyin_handoffs_waiting") == 0
    await say(client, "web-zhang", "转人工")
    assert value(await scrape(client), "huiyin_handoffs_waiting") == 0, "read again within a few seconds"
    runtime.metrics.gauge_max_age_s = 0
    body = await scrape(client)
    assert value(body, "huiyin_handoffs_waiting") == 1
    assert value(body, "huiyin_scrape_gauges_age_seconds") < 1


@pytest.mark.skipif(not REAL, reason="needs PostgreSQL: SQLite readers are not blocked by a writer")
async def test_a_slow_database_read_serves_the_previous_gauges_and_blocks_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await scrape(client)  # a first read
    runtime.metrics.gauge_max_age_s = 0
    runtime.metrics.gauge_wait_s = 0.5
    locker = Database(runtime.settings.effective_database_url)
    try:
        async with locker.engine.connect() as conn:
            await conn.execute(text("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE"))  # the read now waits
            started = time.monotonic()
            scrape_task = asyncio.create_task(scrape(client))
            health = await client.get("/healthz")  # the event loop goes on meanwhile
            assert health.status_code == 200 and time.monotonic() - started < 0.5
            body = await scrape_task
            assert 0.5 <= time.monotonic() - started < 2.0
            assert value(body, "huiyin_scrape_gauges_age_seconds") >= 0.5, "the previous values, marked old"
            await conn.rollback()
    finally:
        await locker.dispose()
    await asyncio.sleep(0.2)  # the read that waited completes once the lock is gone
    assert value(await scrape(client), "huiyin_scrape_gauges_age_seconds") < 1


async def test_token_and_switch(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUIYIN_METRICS_TOKEN", "s3cret-token")
    configured = Settings()
    assert configured.metrics_token is not None
    runtime.settings.metrics_token = configured.metrics_token
    assert (await client.get("/metrics")).status_code == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert (await client.get("/metrics", headers={"Authorization": "s3cret-token"})).status_code == 401
    body = await scrape(client, Authorization="Bearer s3cret-token")
    assert "s3cret-token" not in body
    monkeypatch.setenv("HUIYIN_METRICS", "false")
    runtime.settings.metrics = Settings().metrics
    assert (await client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})).status_code == 404


async def test_database_and_redis_errors_are_counted(client: httpx.AsyncClient, runtime: Runtime) -> None:
    with pytest.raises(Exception, match="no_such_table"):
        async with runtime.db.engine.connect() as conn:
            await conn.execute(text("SELECT * FROM no_such_table"))
    await runtime.store.redis.set("metrics-test", "not a number")
    with pytest.raises(Exception, match="not an integer"):
        await runtime.store.redis.incr("metrics-test")
    # A database nobody listens for: the connection attempt fails.
    dead = Database(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none")
    runtime.metrics.watch_database(dead)
    with pytest.raises(OSError):
        await dead.ping()
    await dead.dispose()
    body = await scrape(client)
    error = "OperationalError" if runtime.db.is_sqlite else "ProgrammingError"
    assert value(body, "huiyin_database_errors_total", operation="select", error=error) == 1
    assert (
        value(body, "huiyin_database_errors_total", operation="connect", error="ConnectionRefusedError") == 1
    )
    assert value(body, "huiyin_redis_errors_total", operation="incrby") == 1


class _Refusing:
    """A primary NLU that refuses every message (as Rasa does with an answer it cannot give)."""

    name = "refusing"

    async def parse(self, text: str) -> Understanding:
        raise BackendError("cannot parse this one")

    async def health(self) -> str | None:
        return None


async def test_nlu_fallback_is_counted_by_reason(
    client: httpx.AsyncClient, runtime: Runtime, shared_nlu: NLUBackend
) -> None:
    down = RasaNLU(f"http://127.0.0.1:{free_port()}", timeout_s=0.5)  # a real client, nothing listening
    unreachable = FallbackNLU(primary=down, fallback=shared_nlu, retry_after_s=60)
    refusing = FallbackNLU(primary=_Refusing(), fallback=shared_nlu)
    runtime.metrics.watch_nlu(unreachable)
    runtime.metrics.watch_nlu(refusing)
    try:
        for text_ in ("楼道灯坏了", "你好", "电梯坏了"):
            assert (await unreachable.parse(text_)).intent is not None
        await refusing.parse("你好")
    finally:
        await unreachable.aclose()
    body = await scrape(client)
    assert value(body, "huiyin_nlu_fallback_total", reason="outage") == 3
    assert value(body, "huiyin_nlu_fallback_total", reason="refused") == 1


async def test_failed_deliveries_are_counted_by_backend(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await say(client, "web-wang", "地下车库积水了")
    await say(client, "web-wang", "跳过")
    await say(client, "web-wang", "不留")
    await say(client, "web-wang", "/confirm")
    async with runtime.db.unit_of_work() as uow:  # staff send it to the city (派单 … 市平台)
        appeal = await uow.session.scalar(select(Appeal))
        assert appeal is not None
        queue_city_case(uow.session, appeal)
        await uow.commit()
    settings = runtime.settings.model_copy(
        update={
            "backend": "webhook",
            "backend_webhook_url": f"http://127.0.0.1:{free_port()}/webhook",  # nothing listens
            "backend_webhook_secret": SecretStr("s"),
            "backend_timeout_s": 2.0,
        }
    )
    forwarder = Forwarder(runtime.db, settings, outbound=runtime.outbound, metrics=runtime.metrics)
    try:
        stats = await forwarder.run_once()
    finally:
        await forwarder.backends.close()
    assert stats.failed == 1
    body = await scrape(client)
    assert value(body, "huiyin_deliveries_failed_total", backend="webhook") == 1
    assert value(body, "huiyin_outbox_undelivered", lane="backend") == 1, "retried later, never dropped"


async def test_every_dashboard_query_asks_for_a_served_metric(client: httpx.AsyncClient) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert any(i["type"] == "datasource" and i["pluginId"] == "prometheus" for i in dashboard["__inputs"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 12
    served = families(await scrape(client))
    used: set[str] = set()
    for expr in exprs:
        for name in re.findall(r"\bhuiyin_[a-z_]+", expr):
            family = name
            if name not in served:  # a histogram's series: <family>_bucket, _count, _sum
                family = re.sub(r"_(bucket|count|sum)$", "", name)
                assert served.get(family) == "histogram", f"{name} in {expr!r} is not served"
            elif name.endswith("_total"):
                assert served[name] == "counter", name
            else:
                assert served[name] == "gauge", name
            used.add(family)
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
    assert used == {f for f in served if f.startswith("huiyin_")}, "every served metric has a panel"
