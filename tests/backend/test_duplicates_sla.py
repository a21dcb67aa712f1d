"""Duplicates (join an open appeal at the same place instead of filing another) and the first-response SLA."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.appeals.duplicates import same_place, similarity
from bot.appeals.status import may_change, staff_attention
from bot.db.models import Appeal, AppealEvent, AppealStatus, AppealSupporter, OutboxEntry, utcnow
from bot.runtime import Runtime
from integrations.backend.forwarder import Forwarder
from tests.backend.conftest import APPEAL_ID, appeal, file_appeal, private

MakeRuntime = Callable[..., Awaitable[Runtime]]


async def count(rt: Runtime, model: type, *where: Any) -> int:
    async with rt.db.unit_of_work() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def until_confirm(rt: Runtime, text: str, who: str, name: str = "居民") -> list[str]:
    for step in (text, "跳过", "不留"):
        await rt.dispatcher.handle(private(step, who=who, name=name))
    return [r.text for r in await rt.dispatcher.handle(private("/confirm", who=who, name=name))]


def test_similarity_ignores_addresses_and_filler() -> None:
    assert similarity("3栋楼道灯坏了好几天了", "三栋的楼道灯坏了") > 0.5
    assert similarity("3栋楼道灯坏了", "3栋楼道漏水") < 0.5
    assert similarity("", "楼道灯坏了") == 0.0


def test_same_place_rules() -> None:
    existing = Appeal(building="3", unit="2", room=None, place=None, location={}, description="楼道灯坏了")
    assert same_place({"building": "3"}, existing)
    assert same_place({"building": "3", "unit": "2"}, existing)
    assert not same_place({"building": "3", "unit": "1"}, existing)
    assert not same_place({"building": "4"}, existing)
    flat = Appeal(building="3", unit="2", room="502", place=None, location={}, description="卫生间漏水")
    assert not same_place({"building": "3", "unit": "2", "room": "602"}, flat), "two different flats"
    garage = Appeal(building=None, unit=None, room=None, place="地下车库", location={}, description="积水")
    assert same_place({"place": "地下车库"}, garage)
    lift = Appeal(building=None, unit=None, room=None, place="电梯", location={}, description="电梯坏了")
    assert not same_place({"place": "电梯"}, lift), "whose lift? a building is needed"
    door = Appeal(
        building=None, unit=None, room=None, place="门口", location={}, description="wang家门口路灯坏了"
    )
    assert not same_place({"place": "门口"}, door, "li家门口路灯坏了"), "a resident's own home"
    near = Appeal(
        building=None,
        unit=None,
        room=None,
        place=None,
        location={"latitude": 22.5431, "longitude": 114.0579},
        description="x",
    )
    assert same_place({"location": {"latitude": 22.5432, "longitude": 114.0580}}, near)
    assert not same_place({"location": {"latitude": 22.5531, "longitude": 114.0579}}, near)


@pytest.mark.parametrize("to_city", [True, False], ids=["city backend", "community only"])
async def test_joining_an_open_appeal_instead_of_filing_a_duplicate(
    make_runtime: MakeRuntime, to_city: bool
) -> None:
    city: dict[str, Any] = (
        {"backend": "webhook", "backend_webhook_url": "http://127.0.0.1:9/x", "backend_webhook_secret": "s"}
        if to_city
        else {}
    )
    rt = await make_runtime(forwarder=False, **city)
    first = await file_appeal(rt, "6栋地下车库积水很深，车都泡了", who="a", name="张先生")
    offer = await until_confirm(rt, "6栋地下车库积水了", who="b", name="李女士")
    assert first in offer[0] and "1位居民" in offer[0] and "加入" in offer[0]
    assert await count(rt, Appeal) == 1, "nothing filed while the resident decides"
    joined = await rt.dispatcher.handle(private("加入支持", who="b", name="李女士"))
    assert "2位居民" in joined[0].text
    again = await rt.dispatcher.handle(private(f"/support {first}", who="b", name="李女士"))
    assert "2位居民" not in again[0].text, "the dialog is over; a stale button does not join twice"
    a = await appeal(rt, first)
    assert a.supporters == 2 and await count(rt, AppealSupporter) == 1 and await count(rt, Appeal) == 1
    updates = [e.payload for e in await _outbox(rt) if e.action == "update"]
    if not to_city:
        assert updates == [], "an appeal the community handles has no backend to tell"
        return
    assert updates == [{"kind": "supporter", "supporters": 2, "text": "+1，现共有2位居民反映"}]


async def _outbox(rt: Runtime) -> list[OutboxEntry]:
    async with rt.db.unit_of_work() as uow:
        return list((await uow.session.execute(select(OutboxEntry).order_by(OutboxEntry.id))).scalars())


async def test_declining_the_offer_files_a_new_appeal(make_runtime: MakeRuntime) -> None:
    rt = await make_runtime(forwarder=False)
    first = await file_appeal(rt, "6栋地下车库积水很深", who="a")
    offer = await until_confirm(rt, "6栋地下车库积水了", who="b")
    assert first in offer[0]
    replies = await rt.dispatcher.handle(private("/confirm new", who="b"))  # 仍然单独提交
    second = APPEAL_ID.search(replies[0].text)
    assert second and second.group(0) != first and await count(rt, Appeal) == 2


async def test_no_offer_for_another_building_or_another_problem(make_runtime: MakeRuntime) -> None:
    rt = await make_runtime(forwarder=False)
    await file_appeal(rt, "6栋地下车库积水很深", who="a")
    assert APPEAL_ID.search((await until_confirm(rt, "7栋地下车库积水了", who="b"))[0])
    assert APPEAL_ID.search((await until_confirm(rt, "6栋1单元电梯坏了", who="c"))[0])


async def test_the_same_resident_is_reminded_of_their_own_appeal(make_runtime: MakeRuntime) -> None:
    rt = await make_runtime(forwarder=False)
    first = await file_appeal(rt, "6栋地下车库积水很深", who="a")
    offer = await until_confirm(rt, "6栋地下车库又积水了", who="a")
    assert "您在" in offer[0] and first in offer[0]
    cancelled = await rt.dispatcher.handle(private("/cancel", who="a"))
    assert "取消" in cancelled[0].text and await count(rt, Appeal) == 1


def test_status_moves_forward_and_finished_cases_may_reopen() -> None:
    s = AppealStatus
    assert may_change(s.SUBMITTED, s.ACCEPTED) and may_change(s.ACCEPTED, s.RESOLVED)
    assert not may_change(s.IN_PROGRESS, s.ACCEPTED), "older news"
    assert not may_change(s.ACCEPTED, s.ACCEPTED) and not may_change(s.RESOLVED, s.SUBMITTED)
    assert may_change(s.RESOLVED, s.REOPENED) and may_change(s.REOPENED, s.ACCEPTED)
    assert may_change(s.RESOLVED, s.IN_PROGRESS), "the backend reopened it itself"


@pytest.mark.parametrize("answered", [False, True])
async def test_overdue_first_responses_are_flagged_once(make_runtime: MakeRuntime, answered: bool) -> None:
    rt = await make_runtime(forwarder=False, first_response_hours=24)
    late = await file_appeal(rt, "6栋地下车库积水很深", who="a")
    fresh = await file_appeal(rt, "8栋1单元电梯坏了", who="b")
    if answered:
        async with rt.db.unit_of_work() as uow:
            a = await uow.repo.appeals.appeal_by_public_id(late)
            assert a is not None
            a.first_responded_at = utcnow()
            a.status = AppealStatus.ACCEPTED.value
            await uow.commit()
    forwarder = Forwarder(rt.db, rt.settings, outbound=rt.outbound)
    assert await forwarder.check_sla() == [], "not yet due"
    tomorrow = utcnow() + timedelta(hours=25)
    flagged = await forwarder.check_sla(tomorrow)
    expected = [fresh] if answered else sorted([late, fresh])
    assert sorted(flagged) == expected
    assert await forwarder.check_sla(tomorrow + timedelta(minutes=5)) == [], "flagged once"
    assert await count(rt, AppealEvent, AppealEvent.kind == "overdue") == len(expected)
    async with rt.db.unit_of_work() as uow:
        staff = [a.public_id for a in await staff_attention(uow.session)]
    assert sorted(staff) == expected
    for public_id in expected:
        assert (await appeal(rt, public_id)).flag_reason == "overdue"
