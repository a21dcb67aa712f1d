"""Fixtures for the staff, handoff and relay tests: two communities with their staff, a recording sender
standing in for the platforms, and the console app with the test's runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.db.models import Chat, Community, Handoff, StaffAccount
from bot.handoff.desk import Outcome
from bot.handoff.notices import deliver_pending
from bot.message import ChatType, Platform, Reply
from bot.roles import create_staff_account, ensure_community, issue_invite
from bot.runtime import Runtime
from tests.conftest import rest_message

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2id, with the smallest cost: production parameters take ~0.5 s a hash on this machine,
    which only slows the suite. Verification and the hash format are unchanged."""
    from argon2 import PasswordHasher

    monkeypatch.setattr("bot.roles._hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@dataclass
class RecordingSender:
    """Stands in for a platform's sender: remembers what would have been sent."""

    platform: Platform
    sent: list[Reply] = field(default_factory=list)

    async def send(self, reply: Reply) -> None:
        self.sent.append(reply)

    def to(self, recipient: str) -> list[str]:
        return [r.text for r in self.sent if r.recipient_id == recipient]

    def in_chat(self, chat_id: str) -> list[str]:
        return [r.text for r in self.sent if r.chat_id == chat_id]


@dataclass
class World:
    """Two communities, each with a staff member; a way to send messages and read what went out."""

    rt: Runtime
    sender: RecordingSender
    demo: Community
    other: Community
    lina: StaffAccount  # staff of demo
    zhao: StaffAccount  # staff of the other community

    async def say(self, text: str, who: str = "res-wang", name: str = "王阿姨", **kw: Any) -> list[str]:
        chat_type = kw.pop("chat_type", ChatType.PRIVATE)
        chat_id = kw.pop("chat_id", who)
        message = rest_message(text, who, name, chat_type=chat_type, chat_id=chat_id, **kw)
        return [r.text for r in await self.rt.dispatcher.handle(message)]

    async def flush_notices(self) -> None:
        """What the notice job would deliver now."""
        await deliver_pending(self.rt.store.redis, self.rt.outbound)

    async def conversation_of(self, who: str, chat_id: str | None = None) -> int:
        from bot.db.models import Conversation

        key = f"rest:{chat_id or who}:{who}"
        async with self.rt.db.unit_of_work() as uow:
            conv_id = await uow.session.scalar(select(Conversation.id).where(Conversation.key == key))
        assert conv_id is not None, f"no conversation {key}"
        return int(conv_id)

    async def handoff(self, conversation_id: int) -> Handoff | None:
        async with self.rt.db.unit_of_work() as uow:
            return await self.rt.dispatcher.handoff.open_handoff(uow.session, conversation_id)

    async def take(self, conversation_id: int, staff: StaffAccount | None = None) -> Outcome:
        """``staff`` (default: lina) takes the conversation over, committed; the desk's outcome (its
        notices are not sent)."""
        async with self.rt.db.unit_of_work() as uow:
            outcome = await self.rt.dispatcher.handoff.take(
                uow.session, conversation_id, (staff or self.lina).person_id
            )
            await uow.commit()
        return outcome

    async def add_colleague(self) -> StaffAccount:
        """A second staff member of demo: 陈明 (login ``chen``)."""
        async with self.rt.db.unit_of_work() as uow:
            colleague = await create_staff_account(
                uow.session, "chen", "another password", "陈明", [self.demo]
            )
            await uow.commit()
        return colleague

    async def invite(self, community: Community, role: str, **kw: Any) -> str:
        from bot.db.models import Role

        async with self.rt.db.unit_of_work() as uow:
            code = await issue_invite(uow.session, community, Role(role), ttl=timedelta(hours=1), **kw)
            await uow.commit()
        return code

    async def staff_chat(self, chat_id: str, community: Community) -> None:
        """Bind a group as the community's staff chat (what /staffchat does)."""
        async with self.rt.db.unit_of_work() as uow:
            uow.session.add(
                Chat(
                    platform="rest",
                    external_id=chat_id,
                    chat_type="group",
                    title="工作人员群",
                    community_id=community.id,
                    purpose="staff",
                )
            )
            await uow.commit()


@pytest.fixture
async def world(runtime: Runtime) -> World:
    sender = RecordingSender(Platform.REST)
    runtime.outbound.register(sender)
    async with runtime.db.unit_of_work() as uow:
        demo = await ensure_community(uow.session, "demo", "幸福里社区")
        other = await ensure_community(uow.session, "laoyuan", "老园社区")
        lina = await create_staff_account(uow.session, "lina", PASSWORD, "李娜", [demo])
        zhao = await create_staff_account(uow.session, "zhao", PASSWORD, "赵强", [other])
        await uow.commit()
    # As `huiyin serve` starts its staff jobs: the held markers are complete, so turns take the fast path.
    await runtime.dispatcher.handoff.restore_markers(runtime.db)
    return World(runtime, sender, demo, other, lina, zhao)


@pytest.fixture
async def runtime_world_without_staff(runtime: Runtime) -> World:
    """A community nobody serves yet (a fresh installation)."""
    sender = RecordingSender(Platform.REST)
    runtime.outbound.register(sender)
    async with runtime.db.unit_of_work() as uow:
        demo = await ensure_community(uow.session, "demo", "幸福里社区")
        await uow.commit()
    return World(runtime, sender, demo, demo, None, None)  # type: ignore[arg-type]


@pytest.fixture
async def console(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP app (console mounted at /staff) on the test's runtime, without starting it again."""
    from bot.app import create_app

    app = create_app(runtime=world.rt)
    app.state.runtime = world.rt  # what the lifespan would set; the runtime is already running
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    """Log in through the form, as a browser does (login CSRF cookie + token)."""
    page = await client.get("/staff/login")
    token = _hidden(page.text, "csrf")
    return await client.post(
        "/staff/login", data={"username": username, "password": password, "csrf": token, "next": ""}
    )


def csrf_of(html: str) -> str:
    return _hidden(html, "csrf")


def _hidden(html: str, name: str) -> str:
    import re

    match = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert match, f"no hidden {name} field in the page"
    return match.group(1)


Say = Callable[..., Any]
