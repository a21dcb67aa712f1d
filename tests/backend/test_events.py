"""``POST /backend/events``: signed status updates in; forged, stale or foreign ones out, changing nothing."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bot.app import create_app
from bot.db.models import AppealEvent, OutboxEntry
from bot.runtime import Runtime
from integrations.backend.forwarder import Forwarder
from integrations.backend.reference import ReferenceBackend
from integrations.backend.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature, signed_headers, verify
from tests.backend.conftest import SECRET, appeal, file_many, webhook_settings

URL = "/backend/events"
MakeRuntime = Callable[..., Awaitable[Runtime]]


def test_signature_covers_timestamp_and_body() -> None:
    secret = b"k"
    sig = signature(secret, "1700000000", b'{"a":1}')
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert verify(secret, "1700000000", sig, b'{"a":1}')
    assert not verify(secret, "1700000001", sig, b'{"a":1}'), "another timestamp"
    assert not verify(secret, "1700000000", sig, b'{"a":2}'), "another body"
    assert not verify(b"other", "1700000000", sig, b'{"a":1}'), "another secret"
    assert not verify(secret, "1700000000", "sha256=" + "0" * 64, b'{"a":1}')


@pytest.fixture
async def setup(
    make_runtime: MakeRuntime, reference: Callable[..., ReferenceBackend]
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient, ReferenceBackend, str]]:
    server = reference()
    rt = await make_runtime(
        **webhook_settings(server.webhook_url),
        backend_communities={"laoyuan": {"kind": "webhook", "secret": "laoyuan-secret"}},
    )
    [public_id] = await file_many(rt, 1)
    await Forwarder(rt.db, rt.settings, outbound=rt.outbound).drain(10)
    app = create_app(runtime=rt)
    app.state.runtime = rt  # ASGITransport does not run the lifespan
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://huiyin.test") as c:
        yield rt, c, server, public_id


async def snapshot(rt: Runtime, public_id: str) -> tuple[str, int, int]:
    a = await appeal(rt, public_id)
    async with rt.db.unit_of_work() as uow:
        events = await uow.session.scalar(select(func.count()).select_from(AppealEvent))
        outbox = await uow.session.scalar(select(func.count()).select_from(OutboxEntry))
    return a.status, int(events or 0), int(outbox or 0)


async def test_a_signed_event_changes_the_status_and_queues_the_news(
    setup: tuple[Runtime, httpx.AsyncClient, ReferenceBackend, str],
) -> None:
    rt, client, server, public_id = setup
    body, headers = server.signed_event(public_id, "in_progress", "维修师傅已出发", event_id="e1")
    r = await client.post(URL, content=body, headers=headers)
    assert r.status_code == 200 and r.json()["changed"] is True
    a = await appeal(rt, public_id)
    assert a.status == "in_progress" and a.first_responded_at is not None
    async with rt.db.unit_of_work() as uow:
        notes = list(
            (await uow.session.execute(select(OutboxEntry).where(OutboxEntry.action == "notify"))).scalars()
        )
    assert len(notes) == 1 and "处理说明：维修师傅已出发" in notes[0].payload["reply"]["text"]

    before = await snapshot(rt, public_id)
    again = await client.post(URL, content=body, headers=headers)  # the same event, delivered again
    assert again.status_code == 200 and again.json().get("duplicate") is True
    assert await snapshot(rt, public_id) == before


def _forge(body: bytes, **overrides: str) -> dict[str, str]:
    headers = signed_headers(SECRET.encode(), body)
    headers.update(overrides)
    return headers


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no_headers", 401),
        ("wrong_secret", 401),
        ("tampered_body", 401),
        ("garbage_signature", 401),
        ("stale", 403),
        ("from_the_future", 403),
        ("other_communitys_backend", 403),
    ],
)
async def test_forged_or_stale_events_are_refused_and_change_nothing(
    setup: tuple[Runtime, httpx.AsyncClient, ReferenceBackend, str], case: str, expected: int
) -> None:
    rt, client, server, public_id = setup
    body, good = server.signed_event(public_id, "resolved", "已修好", event_id=f"forged-{case}")
    headers: dict[str, Any]
    content = body
    if case == "no_headers":
        headers = {"Content-Type": "application/json"}
    elif case == "wrong_secret":
        headers = signed_headers(b"not-the-secret", body)
    elif case == "tampered_body":
        headers = good
        content = body.replace(b"resolved", b"rejected")
    elif case == "garbage_signature":
        headers = _forge(body, **{SIGNATURE_HEADER: "sha256=deadbeef"})
    elif case == "stale":
        headers = signed_headers(SECRET.encode(), body, now=time.time() - 3600)
    elif case == "from_the_future":
        headers = signed_headers(SECRET.encode(), body, now=time.time() + 3600)
    else:  # signed correctly, but by the backend of another community
        headers = signed_headers(b"laoyuan-secret", body)
    before = await snapshot(rt, public_id)
    r = await client.post(URL, content=content, headers=headers)
    assert r.status_code == expected, r.text
    assert await snapshot(rt, public_id) == before, "nothing changed"


async def test_bad_bodies_are_refused_with_a_clear_message(
    setup: tuple[Runtime, httpx.AsyncClient, ReferenceBackend, str],
) -> None:
    rt, client, _server, public_id = setup
    for payload, code in (
        (b"{not json", 400),
        (json.dumps({"event_id": "x", "status": "resolved"}).encode(), 422),
        (json.dumps({"event_id": "x", "public_id": public_id, "status": "teleported"}).encode(), 422),
        (json.dumps({"event_id": "x", "public_id": "HY-19990101-0001", "status": "resolved"}).encode(), 404),
    ):
        headers = signed_headers(SECRET.encode(), payload)
        r = await client.post(URL, content=payload, headers=headers)
        assert r.status_code == code, (payload, r.text)
        assert r.json()["detail"]
    assert (await appeal(rt, public_id)).status == "submitted"


async def test_out_of_order_news_is_recorded_but_does_not_move_the_case_back(
    setup: tuple[Runtime, httpx.AsyncClient, ReferenceBackend, str],
) -> None:
    rt, client, server, public_id = setup
    for event_id, status in (("o1", "in_progress"), ("o2", "accepted")):
        body, headers = server.signed_event(public_id, status, event_id=event_id)
        assert (await client.post(URL, content=body, headers=headers)).status_code == 200
    assert (await appeal(rt, public_id)).status == "in_progress"
    body, headers = server.signed_event(public_id, "resolved", "已更换灯泡", event_id="o3")
    r = await client.post(URL, content=body, headers=headers)
    assert r.json() == {"ok": True, "changed": True, "status": "resolved"}
    assert TIMESTAMP_HEADER in headers


async def test_an_event_by_reference_reaches_only_its_own_deployment(
    setup: tuple[Runtime, httpx.AsyncClient, ReferenceBackend, str],
) -> None:
    """The reference huiyin sent names the appeal across deployments: another deployment's reference
    (the same public id, another instance id) changes nothing here."""
    rt, client, _server, public_id = setup
    before = await snapshot(rt, public_id)
    foreign = json.dumps(
        {"event_id": "e-other", "reference": f"someone-else:{public_id}", "status": "resolved"}
    ).encode()
    r = await client.post(URL, content=foreign, headers=signed_headers(SECRET.encode(), foreign))
    assert r.status_code == 404
    assert await snapshot(rt, public_id) == before
    own = json.dumps(
        {"event_id": "e-own", "reference": f"{rt.db.instance_id}:{public_id}", "status": "in_progress"}
    ).encode()
    r = await client.post(URL, content=own, headers=signed_headers(SECRET.encode(), own))
    assert r.status_code == 200 and r.json()["changed"] is True
    assert (await appeal(rt, public_id)).status == "in_progress"
