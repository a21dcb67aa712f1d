"""Fixtures for the case-backend tests: a reference backend on loopback, runtimes configured for it, and
appeals filed the way residents file them (through the dispatcher)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.db.models import Appeal, OutboxEntry, utcnow
from bot.db.repository import ConversationRef, NewAppeal
from bot.message import IncomingMessage
from bot.nlu.base import NLUBackend
from bot.runtime import Runtime
from integrations.backend.forwarder import Forwarder
from integrations.backend.reference import ReferenceBackend
from integrations.rest.inbox import register_inbox
from tests.conftest import REAL, _reset_real_services, group_message, make_settings, private_message

SECRET = "s3cret-for-tests"
APPEAL_ID = re.compile(r"HY-\d{8}-\d{4}")

# Fast retries so that "down, then up" takes a second, not minutes.
FAST: dict[str, Any] = {
    "forwarder": False,  # tests drive the forwarder themselves
    "forwarder_backoff_s": 0.05,
    "forwarder_backoff_max_s": 0.2,
    "forwarder_idle_s": 0.05,
    "forwarder_max_attempts": 3,
    "forwarder_lease_s": 5.0,
    "forwarder_batch": 10,
    "backend_timeout_s": 3.0,
    "status_poll_s": 0.2,
}


def webhook_settings(url: str) -> dict[str, Any]:
    return {**FAST, "backend": "webhook", "backend_webhook_url": url, "backend_webhook_secret": SECRET}


def open311_settings(url: str, **extra: Any) -> dict[str, Any]:
    return {**FAST, "backend": "open311", "open311_url": url, "open311_api_key": "key-1", **extra}


@pytest.fixture
def reference() -> Iterator[Callable[..., ReferenceBackend]]:
    """``reference(start=True, **options)``: a reference backend, stopped after the test."""
    made: list[ReferenceBackend] = []

    def make(start: bool = True, **options: Any) -> ReferenceBackend:
        options.setdefault("secret", SECRET.encode())
        options.setdefault("api_key", "key-1")
        backend = ReferenceBackend(**options)
        made.append(backend)
        return backend.start() if start else backend

    yield make
    for backend in made:
        backend.stop()


@pytest.fixture
async def make_runtime(
    tmp_path: Path, shared_nlu: NLUBackend
) -> AsyncIterator[Callable[..., Awaitable[Runtime]]]:
    """``await make_runtime(**settings)``: a started runtime (clean real services in the real pass),
    with the REST mailboxes registered as its senders."""
    started: list[Runtime] = []

    async def make(**overrides: Any) -> Runtime:
        settings = make_settings(tmp_path, **overrides)
        if REAL and not started:
            await _reset_real_services(settings)
        rt = await Runtime.start(settings, nlu=shared_nlu)
        register_inbox(rt.outbound, rt.store.redis)
        started.append(rt)
        return rt

    yield make
    for rt in started:
        await rt.close()


private = private_message  # the backend tests' short name for it


def in_group(
    text: str, who: str = "wang", name: str = "王阿姨", group: str = "grp-3", **kw: Any
) -> IncomingMessage:
    """:func:`tests.conftest.group_message` in the group ``group``."""
    return group_message(text, who, name, chat_id=group, **kw)


async def file_appeal(rt: Runtime, text: str, who: str = "wang", name: str = "王阿姨") -> str:
    """File an appeal in a private chat the way a resident does; returns its public id."""
    replies = []
    for step in (text, "跳过", "不留", "/confirm"):
        replies = await rt.dispatcher.handle(private(step, who=who, name=name))
    found = next((m for r in replies if (m := APPEAL_ID.search(r.text))), None)
    assert found, [r.text for r in replies]
    return found.group(0)


async def file_many(rt: Runtime, count: int, prefix: str = "r") -> list[str]:
    """``count`` confirmed appeals by ``count`` residents, each about a different building.

    Written with the repository call the dispatcher makes on "确认提交" (appeal, status event and outbox
    row in one transaction), without the dialog turns before it: the forwarder tests need many appeals
    quickly; the dialog path to them is covered by :func:`file_appeal` and the tests that use it.
    """
    day = datetime.now(ZoneInfo(rt.settings.timezone)).strftime("%Y%m%d")
    ids = []
    for i in range(count):
        async with rt.db.unit_of_work() as uow:
            person = await uow.repo.people.person_for("rest", f"{prefix}{i}", f"居民{i}")
            community = await uow.repo.conversations.community(rt.settings.default_community)
            chat = await uow.repo.conversations.chat(
                "rest", f"{prefix}{i}", "private", "", community.id, False
            )
            conv = await uow.repo.conversations.conversation(
                f"rest:{prefix}{i}:{prefix}{i}", "rest", chat, person
            )
            ref = ConversationRef(conv.id, person.id, community.id, community.code, chat.id)
            new = NewAppeal(
                draft_key=uuid.uuid4().hex,
                description=f"{i + 1}栋{i % 4 + 1}单元电梯坏了，困了好几次",
                origin_platform="rest",
                origin_chat=f"{prefix}{i}",
                origin_chat_type="private",
                building=str(i + 1),
                unit=str(i % 4 + 1),
                category="repairs",
            )
            created, _ = await uow.repo.appeals.create_appeal(
                new,
                ref,
                public_id_prefix=rt.settings.appeal_id_prefix,
                day=day,
                first_response_due_at=utcnow() + timedelta(hours=rt.settings.first_response_hours),
                to_city=True,  # the forwarder's work: appeals on their way to the city's backend
            )
            await uow.commit()
            ids.append(created.public_id)
    return ids


async def pending_rows(rt: Runtime, *, backend_only: bool = True) -> int:
    async with rt.db.unit_of_work() as uow:
        stmt = select(func.count()).select_from(OutboxEntry).where(OutboxEntry.delivered_at.is_(None))
        if backend_only:
            stmt = stmt.where(OutboxEntry.platform.is_(None))
        return int(await uow.session.scalar(stmt) or 0)


async def appeal(rt: Runtime, public_id: str) -> Appeal:
    async with rt.db.unit_of_work() as uow:
        found = await uow.repo.appeals.appeal_by_public_id(public_id)
        assert found is not None
        return found


async def run_until(
    forwarder: Forwarder, done: Callable[[], Awaitable[bool]], timeout_s: float = 20.0
) -> None:
    """Run forwarder rounds until ``done()``; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await done():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the forwarder")
        stats = await forwarder.run_once()
        if stats.work == 0:
            await asyncio.sleep(0.02)
