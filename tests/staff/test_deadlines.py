"""Deadlines that act: a reminder before an appeal's first-response and resolution deadlines (to its
handler's chat, else the staff chats), an escalation to the staff chats when one passes, the resident told
where they reported (briefly in a group, with details privately), and a daily digest of the overdue
appeals — each once, however many workers run the check. The clock is the ``now`` the check is given."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.cases.config import CaseDeskConfig
from bot.cases.deadlines import DeadlineReport
from bot.cases.desk import CaseDesk
from bot.db.models import Appeal, AppealEvent, AppealStatus, Chat
from bot.db.repository.cases import CaseRepository
from bot.message import ChatType
from integrations.backend.forwarder import Forwarder
from tests.staff.conftest import World

APPEAL_ID = re.compile(r"HY-\d{8}-\d{4}")
PHONE = "13812345678"
STAFF_GROUP = "staff-grp"
HANDLER_GROUP = "prop-grp"
RESIDENTS_GROUP = {"chat_id": "grp-3", "chat_type": ChatType.GROUP, "chat_title": "幸福里3栋业主群"}


async def _file(world: World, text: str = "3栋2单元楼道灯坏了好几天了", who: str = "res-wang") -> str:
    replies: list[str] = []
    for step in (text, "跳过", PHONE, "/confirm"):
        replies = await world.say(step, who=who)
    found = next((m for r in replies if (m := APPEAL_ID.search(r))), None)
    assert found, replies
    return found.group(0)


async def _file_in_group(world: World) -> str:
    """王阿姨 reports in her building's group; her phone number is asked for privately."""
    await world.say("@回音 3栋2单元502厨房漏水了", mentions_bot=True, **RESIDENTS_GROUP)
    await world.say("没有照片", **RESIDENTS_GROUP)
    await world.say(PHONE)
    replies = await world.say("/confirm")
    found = next((m for r in replies if (m := APPEAL_ID.search(r))), None)
    assert found, replies
    return found.group(0)


async def _staff_in_chat(world: World) -> None:
    code = await world.invite(world.demo, "staff", account=world.lina)
    assert any("工作人员" in r for r in await world.say(f"/join {code}", who="tg-lina", name="李娜"))


async def _property_chat(world: World) -> None:
    """The property company's handler has the work group "prop-grp"."""
    async with world.rt.db.unit_of_work() as uow:
        handlers = await world.rt.dispatcher.services.cases.handlers(uow.session, world.demo.id)
        prop = next(h for h in handlers if h.code == "property")
        uow.session.add(
            Chat(
                platform="rest",
                external_id=HANDLER_GROUP,
                chat_type="group",
                title="物业工单群",
                community_id=world.demo.id,
                purpose="handler",
                handler_id=prop.id,
            )
        )
        await uow.commit()


async def _check(world: World, now: datetime, worker: str = "w") -> DeadlineReport:
    forwarder = Forwarder(world.rt.db, world.rt.settings, outbound=world.rt.outbound, worker_id=worker)
    return await forwarder.check_deadlines(now)


async def _deliver(world: World) -> None:
    await Forwarder(world.rt.db, world.rt.settings, outbound=world.rt.outbound).drain(10)


async def _appeal(world: World, public_id: str) -> Appeal:
    async with world.rt.db.unit_of_work() as uow:
        found = await uow.session.scalar(select(Appeal).where(Appeal.public_id == public_id))
        assert found is not None
        return found


def _with(texts: list[str], *words: str) -> list[str]:
    return [t for t in texts if all(w in t for w in words)]


def _at_local(moment: datetime, hour: int, minute: int = 0, days: int = 0) -> datetime:
    """``hour:minute`` local time on the day of ``moment`` (plus ``days``)."""
    tz = ZoneInfo("Asia/Shanghai")
    day = moment.astimezone(tz) + timedelta(days=days)
    return day.replace(hour=hour, minute=minute, second=0, microsecond=0)


def _outside_the_digest_hour(moment: datetime) -> datetime:
    """``moment``, or two hours later when it falls in the digest's hour (09:00–10:00 local)."""
    local = moment.astimezone(ZoneInfo("Asia/Shanghai"))
    return moment + timedelta(hours=2) if local.hour == 9 else moment


async def test_a_reminder_before_the_first_response_deadline_then_an_escalation(world: World) -> None:
    await world.staff_chat(STAFF_GROUP, world.demo)
    public_id = await _file(world)
    due = (await _appeal(world, public_id)).first_response_due_at
    assert due is not None

    assert (await _check(world, due - timedelta(hours=3))).response_reminded == [], "not yet"
    report = await _check(world, due - timedelta(hours=1, minutes=30))
    assert report.response_reminded == [public_id] and report.response_overdue == []
    assert (await _check(world, due - timedelta(minutes=30))).response_reminded == [], "reminded once"
    await _deliver(world)
    [reminder] = _with(world.sender.in_chat(STAFF_GROUP), "即将超时")
    assert "即将超时" in reminder and public_id in reminder and "还有1小时" in reminder
    assert "楼道灯" in reminder and PHONE not in reminder
    assert not _with(world.sender.to("res-wang"), "督办"), "the resident hears nothing before the deadline"

    report = await _check(world, due + timedelta(minutes=1))
    assert report.response_overdue == [public_id]
    assert (await _check(world, due + timedelta(minutes=10))).response_overdue == [], "escalated once"
    await _deliver(world)
    [escalation] = _with(world.sender.in_chat(STAFF_GROUP), "【超时】")
    assert public_id in escalation and "24小时" in escalation and "未派单" in escalation
    [told] = _with(world.sender.to("res-wang"), "督办")
    assert public_id in told and "24小时" in told and "楼道灯坏了" in told, "privately: the details"
    appeal = await _appeal(world, public_id)
    assert appeal.overdue_at is not None and appeal.flag_reason == "overdue"
    assert appeal.response_reminded_at is not None
    assert len(_with(world.sender.in_chat(STAFF_GROUP), "即将超时")) == 1, "no second reminder"


async def test_the_group_hears_briefly_and_the_relaying_leader_privately(world: World) -> None:
    await world.staff_chat(STAFF_GROUP, world.demo)
    in_group = await _file_in_group(world)
    code = await world.invite(world.demo, "building_leader", buildings=["3"])
    await world.say(f"/join {code}", who="res-leader", name="楼长老周")
    await world.say("帮3栋601李大爷反映：楼顶水箱漏水，电话13900001111", who="res-leader", name="楼长老周")
    relayed = APPEAL_ID.search(" ".join(await world.say("/relay ok", who="res-leader", name="楼长老周")))
    assert relayed
    due = (await _appeal(world, in_group)).first_response_due_at
    assert due is not None

    report = await _check(world, due + timedelta(hours=1))
    assert sorted(report.response_overdue) == sorted([in_group, relayed.group(0)])
    await _deliver(world)
    [short] = _with(world.sender.in_chat("grp-3"), "督办")
    assert in_group in short and "@王阿姨" in short and "24小时" in short
    for personal in ("502", "1381", "厨房", "漏水"):
        assert personal not in short, f"no personal data in the group: {personal}"
    [leader] = _with(world.sender.to("res-leader"), "督办")
    assert "李大爷" in leader and relayed.group(0) in leader and "水箱" in leader
    assert len(_with(world.sender.in_chat(STAFF_GROUP), "【超时】")) == 2


async def test_the_resolution_deadline_reminds_the_handler_and_then_escalates(world: World) -> None:
    await world.staff_chat(STAFF_GROUP, world.demo)
    await _staff_in_chat(world)
    await _property_chat(world)
    public_id = await _file(world)
    await world.say(f"派单 {public_id} 物业", who="tg-lina", name="李娜")
    appeal = await _appeal(world, public_id)
    due = appeal.resolution_due_at
    assert due is not None and appeal.first_response_due_at is not None
    await _deliver(world)
    handler_before = len(world.sender.in_chat(HANDLER_GROUP))

    answered = await _check(world, appeal.first_response_due_at + timedelta(minutes=1))
    assert answered.response_reminded == [] and answered.response_overdue == [], "it was answered in time"
    report = await _check(world, due - timedelta(hours=1))
    assert report.resolution_reminded == [public_id]
    assert (await _check(world, due - timedelta(minutes=20))).resolution_reminded == []
    await _deliver(world)
    [reminder] = world.sender.in_chat(HANDLER_GROUP)[handler_before:]
    assert "即将到期" in reminder and public_id in reminder and f"办结 {public_id}" in reminder
    assert _with(world.sender.in_chat(STAFF_GROUP), "即将到期") == [], (
        "the handler has it: staff are not bothered yet"
    )

    report = await _check(world, due + timedelta(minutes=5))
    assert report.resolution_overdue == [public_id]
    assert (await _check(world, due + timedelta(hours=2))).resolution_overdue == [], "escalated once"
    await _deliver(world)
    [escalation] = _with(world.sender.in_chat(STAFF_GROUP), "【超期】")
    assert "【超期】" in escalation and public_id in escalation and "已派单" in escalation
    prop_name = world.rt.kb.community("demo").property
    assert prop_name is not None and prop_name.name in escalation, "who has it"
    [told] = _with(world.sender.to("res-wang"), "督办")
    assert "办理时间" in told and "目前状态：已派单" in told and "楼道灯" in told
    appeal = await _appeal(world, public_id)
    assert appeal.resolution_overdue_at is not None and appeal.flag_reason == "resolution_overdue"
    async with world.rt.db.unit_of_work() as uow:
        flags = list(
            await uow.session.scalars(
                select(AppealEvent.payload).where(
                    AppealEvent.appeal_id == appeal.id, AppealEvent.kind == "flag"
                )
            )
        )
    assert {"reason": "resolution_overdue"} in flags


async def test_without_a_handler_the_reminder_goes_to_the_staff_chats(world: World) -> None:
    await world.staff_chat(STAFF_GROUP, world.demo)
    await _staff_in_chat(world)
    public_id = await _file(world)
    await world.say(f"受理 {public_id}", who="tg-lina", name="李娜")
    due = (await _appeal(world, public_id)).resolution_due_at
    assert due is not None
    assert (await _check(world, due - timedelta(hours=1))).resolution_reminded == [public_id]
    await _deliver(world)
    assert len(_with(world.sender.in_chat(STAFF_GROUP), "即将到期", public_id)) == 1


async def test_a_resolved_appeal_gets_nothing(world: World) -> None:
    await world.staff_chat(STAFF_GROUP, world.demo)
    await _staff_in_chat(world)
    public_id = await _file(world)
    await world.say(f"受理 {public_id}", who="tg-lina", name="李娜")
    await world.say(f"办结 {public_id} 已更换楼道灯", who="tg-lina", name="李娜")
    await _deliver(world)
    sent = len(world.sender.sent)
    appeal = await _appeal(world, public_id)
    assert appeal.status == AppealStatus.RESOLVED.value and appeal.resolution_due_at is not None
    for now in (
        appeal.resolution_due_at - timedelta(hours=1),
        appeal.resolution_due_at + timedelta(hours=1),
        _at_local(appeal.resolution_due_at, 9, 30, days=1),  # the digest's hour
    ):
        assert await _check(world, now) == DeadlineReport()
    await _deliver(world)
    assert len(world.sender.sent) == sent


async def test_a_daily_digest_of_the_overdue_appeals(world: World) -> None:
    await world.staff_chat(STAFF_GROUP, world.demo)
    await world.staff_chat("staff-grp-2", world.demo)
    await world.staff_chat("laoyuan-staff", world.other)
    late = await _file(world, f"3栋2单元502厨房漏水，楼上电话{PHONE}")
    also_late = await _file(world, "6栋地下车库积水很深", who="res-zhao")
    due = (await _appeal(world, also_late)).first_response_due_at
    assert due is not None

    morning = _at_local(due, 8, 30, days=1)
    early = await _check(world, morning)
    assert sorted(early.response_overdue) == sorted([late, also_late]) and early.digests == []
    await _deliver(world)
    staff_before = len(world.sender.in_chat(STAFF_GROUP))

    assert (await _check(world, _at_local(due, 9, 5, days=1))).digests == ["demo"]
    assert (await _check(world, _at_local(due, 9, 40, days=1))).digests == [], "once a day"
    assert (await _check(world, _at_local(due, 10, 0, days=1))).digests == [], "in its hour only"
    await _deliver(world)
    [digest] = world.sender.in_chat(STAFF_GROUP)[staff_before:]
    assert "每日督办" in digest and "2件" in digest and late in digest and also_late in digest
    assert "超时未答复" in digest and "未派单" in digest and "地下车库" in digest
    assert PHONE not in digest and "502" not in digest, "summaries are masked"
    assert len(_with(world.sender.in_chat("staff-grp-2"), "每日督办")) == 1, "to every staff chat"
    assert world.sender.in_chat("laoyuan-staff") == [], "nothing where nothing is overdue"

    assert (await _check(world, _at_local(due, 9, 1, days=2))).digests == ["demo"], "the next day"
    await _deliver(world)
    assert len(_with(world.sender.in_chat(STAFF_GROUP), "每日督办")) == 2


async def test_two_workers_at_once_send_each_message_once(world: World) -> None:
    await world.staff_chat(STAFF_GROUP, world.demo)
    public_id = await _file(world)
    due = (await _appeal(world, public_id)).first_response_due_at
    assert due is not None

    async def both(now: datetime) -> list[DeadlineReport]:
        return list(await asyncio.gather(_check(world, now, "a"), _check(world, now, "b")))

    reminded = await both(due - timedelta(hours=1))
    assert sorted(len(r.response_reminded) for r in reminded) == [0, 1]
    escalated = await both(_outside_the_digest_hour(due + timedelta(minutes=1)))
    assert sorted(len(r.response_overdue) for r in escalated) == [0, 1]
    digested = await both(_at_local(due, 9, 30, days=1))
    assert sorted(len(r.digests) for r in digested) == [0, 1]
    await _deliver(world)
    staff = world.sender.in_chat(STAFF_GROUP)
    assert [len(_with(staff, w)) for w in ("即将超时", "【超时】", "每日督办")] == [1, 1, 1], staff
    assert len(_with(world.sender.to("res-wang"), "督办")) == 1


async def test_a_handler_without_a_chat_leaves_the_reminder_to_staff(world: World) -> None:
    await world.staff_chat(STAFF_GROUP, world.demo)
    await _staff_in_chat(world)
    public_id = await _file(world)
    await world.say(f"派单 {public_id} 物业", who="tg-lina", name="李娜")
    async with world.rt.db.unit_of_work() as uow:
        appeal = await CaseRepository(uow.session).appeal_by_public_id(public_id)
        assert appeal is not None and appeal.handler_id is not None
        assert await CaseRepository(uow.session).handler_chats(appeal.handler_id) == []
        due = appeal.resolution_due_at
    assert due is not None
    assert (await _check(world, due - timedelta(hours=1))).resolution_reminded == [public_id]
    await _deliver(world)
    assert len(_with(world.sender.in_chat(STAFF_GROUP), "即将到期", public_id)) == 1


async def test_a_communitys_own_lead_time_and_digest_hour(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The profile's ``remind_before_hours`` and ``digest_hour`` are the ones used; 0 means no reminders."""
    own = {"demo": CaseDeskConfig((), 24, 72, remind_before=timedelta(hours=6), digest_hour=20)}
    silent = CaseDeskConfig((), 24, 72, remind_before=timedelta(0))
    monkeypatch.setattr(CaseDesk, "config", lambda self, code: own.get(code, silent))
    await world.staff_chat(STAFF_GROUP, world.demo)
    await world.staff_chat("laoyuan-staff", world.other)
    public_id = await _file(world)
    due = (await _appeal(world, public_id)).first_response_due_at
    assert due is not None
    async with world.rt.db.unit_of_work() as uow:  # the same appeal, filed in the other community
        uow.session.add(_copy(await _appeal(world, public_id), world.other.id))
        await uow.commit()

    assert (await _check(world, due - timedelta(hours=7))).response_reminded == []
    assert (await _check(world, due - timedelta(hours=5))).response_reminded == [public_id], (
        "six hours ahead, in demo; never in the community with no lead"
    )
    assert (await _check(world, due - timedelta(minutes=1))).response_reminded == []
    await _check(world, due + timedelta(minutes=1))
    assert (await _check(world, _at_local(due, 9, 30, days=1))).digests == ["laoyuan"], "its default: 9"
    assert (await _check(world, _at_local(due, 20, 10, days=1))).digests == ["demo"]
    await _deliver(world)
    assert len(_with(world.sender.in_chat(STAFF_GROUP), "即将超时")) == 1
    assert _with(world.sender.in_chat("laoyuan-staff"), "即将超时") == []


def _copy(appeal: Appeal, community_id: int) -> Appeal:
    return Appeal(
        public_id=f"{appeal.public_id[:-4]}9{appeal.public_id[-3:]}",
        draft_key=f"{appeal.draft_key}-copy",
        community_id=community_id,
        reporter_id=appeal.reporter_id,
        origin_platform=appeal.origin_platform,
        origin_chat=appeal.origin_chat,
        origin_chat_type=appeal.origin_chat_type,
        description=appeal.description,
        status=appeal.status,
        created_at=appeal.created_at,
        first_response_due_at=appeal.first_response_due_at,
        resolution_due_at=appeal.resolution_due_at,
    )
