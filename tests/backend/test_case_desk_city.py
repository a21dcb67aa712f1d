"""The city's case backend as one more place to send an appeal: with Open311 configured and a community
that decides each time (``to_city: none``), an appeal stays at the community's desk until staff send it
to the city (派单 … 市平台); from then on the city's statuses are the appeal's events, the resident hears
each with the city's text, rates the result, and 不满意 reopens the case at the city."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.cases.config import CaseDeskConfig
from bot.db.models import AppealStatus, OutboxEntry, Role
from bot.roles import create_staff_account, ensure_community, issue_invite
from bot.runtime import Runtime
from integrations.backend.forwarder import Forwarder
from integrations.backend.reference import ReferenceBackend
from tests.backend.conftest import appeal, file_appeal, open311_settings, private, run_until

MakeRuntime = Callable[..., Awaitable[Runtime]]


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    from argon2 import PasswordHasher

    monkeypatch.setattr("bot.roles._hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def _staff_decides(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The community's profile says ``case_desk: {to_city: none}``: staff choose per appeal."""
    cases = rt.dispatcher.services.cases
    real = cases.config

    def config(code: str) -> CaseDeskConfig:
        return dataclasses.replace(real(code), to_city="none")

    monkeypatch.setattr(cases, "config", config)


async def _lina_in_chat(rt: Runtime) -> None:
    async with rt.db.unit_of_work() as uow:
        demo = await ensure_community(uow.session, "demo", "幸福里社区")
        lina = await create_staff_account(uow.session, "lina", "a long password", "李娜", [demo])
        code = await issue_invite(uow.session, demo, Role.STAFF, ttl=timedelta(hours=1), account=lina)
        await uow.commit()
    replies = await rt.dispatcher.handle(private(f"/join {code}", who="tg-lina", name="李娜"))
    assert any("工作人员" in r.text for r in replies), [r.text for r in replies]


async def _told_resident(rt: Runtime, who: str = "zhou") -> list[str]:
    async with rt.db.unit_of_work() as uow:
        rows = await uow.session.scalars(
            select(OutboxEntry).where(OutboxEntry.action == "notify").order_by(OutboxEntry.id)
        )
        return [r.payload["reply"]["text"] for r in rows if r.payload["reply"].get("recipient_id") == who]


async def test_staff_send_an_appeal_to_the_city_and_its_statuses_come_back(
    make_runtime: MakeRuntime, reference: Callable[..., ReferenceBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = reference()
    rt = await make_runtime(**open311_settings(server.open311_url))
    _staff_decides(rt, monkeypatch)
    await _lina_in_chat(rt)
    public_id = await file_appeal(rt, "小区门口市政路灯坏了一排", who="zhou", name="周阿姨")
    forwarder = Forwarder(rt.db, rt.settings, outbound=rt.outbound)
    await forwarder.drain(5)
    assert server.public_ids() == [], "staff have not chosen yet: the city hears nothing"
    assert (await appeal(rt, public_id)).destination == "community"

    said = await rt.dispatcher.handle(private(f"派单 {public_id} 市平台", who="tg-lina", name="李娜"))
    assert any("市民生诉求平台" in r.text for r in said), [r.text for r in said]
    a = await appeal(rt, public_id)
    assert a.destination == "city" and a.status == AppealStatus.ASSIGNED.value

    async def filed() -> bool:
        return (await appeal(rt, public_id)).backend_id is not None

    await run_until(forwarder, filed)
    assert server.public_ids() == [public_id]
    again = await rt.dispatcher.handle(private(f"派单 {public_id} 市平台", who="tg-lina", name="李娜"))
    assert any("已在市平台" in r.text for r in again), "sent once"

    async def status_is(status: str) -> bool:
        return (await appeal(rt, public_id)).status == status

    server.set_status(public_id, "closed", "已安排路灯所更换灯具")
    await run_until(forwarder, lambda: status_is("resolved"))
    told = await _told_resident(rt)
    assert any("已办结" in t and "已安排路灯所更换灯具" in t and "评价" in t for t in told), told

    replies = await rt.dispatcher.handle(private("不满意", who="zhou", name="周阿姨"))
    assert "重新打开" in replies[0].text

    async def updated() -> bool:
        return bool(server.updates)

    await run_until(forwarder, updated)
    assert server.updates[0]["status"] == "OPEN", "the city hears the resident reopened it"
