"""The forwarder against a reference backend on loopback: at least once + idempotency key = exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.db.models import AppealEvent, OutboxEntry
from bot.message import Platform
from bot.runtime import Runtime
from integrations.backend.forwarder import Forwarder, backoff_s
from integrations.backend.reference import ReferenceBackend, free_port
from tests.backend.conftest import (
    SECRET,
    appeal,
    file_appeal,
    file_many,
    in_group,
    open311_settings,
    pending_rows,
    private,
    run_until,
    webhook_settings,
)

MakeRuntime = Callable[..., Awaitable[Runtime]]
MakeReference = Callable[..., ReferenceBackend]


def settings_of(kind: str, port: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    return (
        open311_settings(f"{base}/open311/v2") if kind == "open311" else webhook_settings(f"{base}/webhook")
    )


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    delays = [backoff_s(n, 2.0, 60.0) for n in range(1, 9)]
    assert 1.0 <= delays[0] <= 2.0 and 2.0 <= delays[1] <= 4.0 and 16.0 <= delays[4] <= 32.0
    assert all(30.0 <= d <= 60.0 for d in delays[5:]), "capped at the maximum"
    assert len({round(backoff_s(3, 2.0, 60.0), 6) for _ in range(20)}) > 1, "jittered"


@pytest.mark.parametrize("kind", ["open311", "webhook"])
async def test_backend_down_then_up_every_appeal_arrives_exactly_once(
    kind: str, make_runtime: MakeRuntime, reference: MakeReference
) -> None:
    port = free_port()
    rt = await make_runtime(**settings_of(kind, port))
    ids = await file_many(rt, 8)
    forwarder = Forwarder(rt.db, rt.settings, outbound=rt.outbound)

    # Down: nothing listens on the port. Every round fails, retries back off, nothing is lost.
    for _ in range(8):
        await forwarder.run_once()
        await asyncio.sleep(0.05)
    assert await pending_rows(rt) == 8
    async with rt.db.unit_of_work() as uow:
        rows = list((await uow.session.execute(select(OutboxEntry))).scalars())
        assert all(r.attempts >= 3 and r.last_error and r.delivered_at is None for r in rows)
    flagged = await appeal(rt, ids[0])
    assert flagged.flag_reason == "delivery_failed", "after N failures staff are told"

    # Up: everything arrives, once each.
    server = reference(port=port)
    await run_until(forwarder, lambda: _none_pending(rt))
    assert sorted(server.public_ids()) == sorted(ids)
    assert server.creates_sent() == len(ids), "nothing was sent twice while the backend was up"
    for public_id in ids:
        a = await appeal(rt, public_id)
        assert a.backend_id and a.backend == "default"
        assert a.flagged_at is None, "a delivery flag is cleared once delivered"


async def _none_pending(rt: Runtime) -> bool:
    return await pending_rows(rt) == 0


async def test_an_answer_lost_mid_call_is_resent_with_the_same_key(
    make_runtime: MakeRuntime, reference: MakeReference
) -> None:
    server = reference()
    rt = await make_runtime(**{**settings_of("webhook", server.port), "forwarder_lease_s": 0.5})
    ids = await file_many(rt, 6)
    server.hold_creates_after(2)  # the third case is stored, but its answer never comes back
    dying = Forwarder(rt.db, rt.settings, outbound=rt.outbound, worker_id="dying")
    task = asyncio.create_task(dying.deliver_due())
    assert await asyncio.to_thread(server.wait_held, 10)
    task.cancel()  # the worker dies with its rows claimed
    await asyncio.gather(task, return_exceptions=True)
    server.release()
    assert await pending_rows(rt) > 0

    survivor = Forwarder(rt.db, rt.settings, outbound=rt.outbound, worker_id="survivor")
    await run_until(survivor, lambda: _none_pending(rt))
    assert sorted(server.public_ids()) == sorted(ids), "each appeal is one case"
    assert server.replays >= 1, "the lost call was sent again, and the backend recognised its key"


async def test_two_workers_share_the_outbox_without_sending_anything_twice(
    make_runtime: MakeRuntime, reference: MakeReference
) -> None:
    server = reference(delay_s=0.01)
    rt = await make_runtime(**{**settings_of("webhook", server.port), "forwarder_batch": 3})
    ids = await file_many(rt, 18)
    a = Forwarder(rt.db, rt.settings, outbound=rt.outbound, worker_id="a")
    b = Forwarder(rt.db, rt.settings, outbound=rt.outbound, worker_id="b")
    sent_a, sent_b = await asyncio.gather(a.drain(20), b.drain(20))
    assert sent_a + sent_b == len(ids)
    assert sent_a > 0 and sent_b > 0, "both workers took part"
    assert sorted(server.public_ids()) == sorted(ids)
    assert server.creates_sent() == len(ids), "no row was claimed by both workers"


async def test_only_confirmed_appeals_go_out(make_runtime: MakeRuntime, reference: MakeReference) -> None:
    server = reference()
    rt = await make_runtime(**settings_of("webhook", server.port))
    h = rt.dispatcher.handle
    await h(in_group("今天天气不错，晚上一起跳广场舞"))  # group chatter
    await h(private("下水道堵了找谁", who="q"))  # a question for the knowledge base
    await h(private("3栋楼道灯坏了", who="c"))  # a draft …
    await h(private("算了", who="c"))  # … cancelled
    await h(private("5栋门口垃圾没人清", who="d"))  # a draft never confirmed
    filed = await file_appeal(rt, "2栋2单元电梯坏了", who="e")
    await Forwarder(rt.db, rt.settings, outbound=rt.outbound).drain(10)
    assert server.public_ids() == [filed]


async def test_updates_reach_the_backend_after_the_case(
    make_runtime: MakeRuntime, reference: MakeReference
) -> None:
    server = reference()
    rt = await make_runtime(**settings_of("webhook", server.port))
    first = await file_appeal(rt, "6栋地下车库积水很深", who="a1", name="张先生")
    h = rt.dispatcher.handle
    for text in ("6栋地下车库积水了", "跳过", "不留"):
        await h(private(text, who="a2", name="李女士"))
    offer = await h(private("/confirm", who="a2", name="李女士"))
    assert any(first in r.text for r in offer), "offered to join the open appeal"
    joined = await h(private(f"/support {first}", who="a2", name="李女士"))
    assert "2位居民" in joined[0].text
    await Forwarder(rt.db, rt.settings, outbound=rt.outbound).drain(10)
    assert server.public_ids() == [first], "joining filed no second case"
    [update] = server.updates
    assert update["event"] == "appeal.supporter" and update["update"]["supporters"] == 2
    assert "+1" in update["update"]["text"] and update["backend_id"] == (await appeal(rt, first)).backend_id
    create_at = next(c.at for c in server.calls if c.key == f"{rt.db.instance_id}:{first}:create")
    update_at = next(c.at for c in server.calls if c.key and ":support:" in c.key)
    assert create_at < update_at


async def test_a_refusal_is_flagged_at_once_and_retried(
    make_runtime: MakeRuntime, reference: MakeReference
) -> None:
    server = reference(api_key="the-right-key")
    rt = await make_runtime(**settings_of("open311", server.port))  # sends "key-1"
    public_id = await file_appeal(rt, "4栋1单元楼道灯坏了")
    await Forwarder(rt.db, rt.settings, outbound=rt.outbound).run_once()
    a = await appeal(rt, public_id)
    assert a.flag_reason == "backend_rejected" and a.backend_id is None
    async with rt.db.unit_of_work() as uow:
        row = (await uow.session.execute(select(OutboxEntry))).scalar_one()
        assert row.delivered_at is None and row.failed_at is None and "403" in (row.last_error or "")
    assert server.public_ids() == []


async def test_a_community_without_a_backend_keeps_its_appeals(
    make_runtime: MakeRuntime, reference: MakeReference
) -> None:
    """A community whose backend is ``none`` handles its appeals at its own case desk: nothing is queued
    for a backend, nothing is flagged as undeliverable, and the city's server hears nothing."""
    server = reference()
    rt = await make_runtime(
        **settings_of("webhook", server.port), backend_communities={"demo": {"kind": "none"}}
    )
    public_id = await file_appeal(rt, "4栋1单元楼道灯坏了")
    await Forwarder(rt.db, rt.settings, outbound=rt.outbound).run_once()
    assert server.calls == []
    a = await appeal(rt, public_id)
    assert a.destination == "community" and a.flag_reason is None
    async with rt.db.unit_of_work() as uow:
        flags = await uow.session.scalar(
            select(func.count()).select_from(AppealEvent).where(AppealEvent.kind == "flag")
        )
        assert flags == 0
    assert await pending_rows(rt) == 0


async def test_signed_outbound_calls_are_verified_by_the_backend(
    make_runtime: MakeRuntime, reference: MakeReference
) -> None:
    server = reference(secret=b"another-secret")
    rt = await make_runtime(**settings_of("webhook", server.port))
    await file_appeal(rt, "4栋1单元楼道灯坏了")
    await Forwarder(rt.db, rt.settings, outbound=rt.outbound).run_once()
    assert server.refused_signatures == 1 and server.public_ids() == []
    assert SECRET != "another-secret"


async def test_serve_runs_a_forwarder_in_process(make_runtime: MakeRuntime, reference: MakeReference) -> None:
    from fastapi import FastAPI

    from integrations import backend

    server = reference()
    rt = await make_runtime(**{**settings_of("webhook", server.port), "forwarder": True})
    await backend.setup(FastAPI(), rt)
    await backend.setup(FastAPI(), rt)  # a second app on the same runtime starts no second forwarder
    assert [t.get_name() for t in rt.tasks] == ["forwarder"]
    public_id = await file_appeal(rt, "2栋2单元电梯坏了")
    for _ in range(200):
        if server.public_ids():
            break
        await asyncio.sleep(0.05)
    assert server.public_ids() == [public_id]
    assert rt.outbound.sender(Platform.REST) is not None, "REST notifications go to the mailboxes"
