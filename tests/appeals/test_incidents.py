"""Area-wide incidents: eight residents of six buildings reporting 停水 in four groups within minutes make
one incident — one case, one alert to the staff chat, one notice per group; the ninth resident is told
what is known and joins with a button, without the form; the case's progress and its resolution reach
every resident once, and each group once."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from bot.db.models import Appeal, AppealStatus, AppealSupporter, Incident, utcnow
from bot.message import Reply
from integrations.backend.forwarder import Forwarder
from tests.conftest import group_message, private_message
from tests.staff.conftest import World

APPEAL_ID = re.compile(r"HY-\d{8}-\d{4}")
STAFF_GROUP = "staff-grp"
GROUPS = ("g1", "g2", "g3", "g4")
# Eight residents, six buildings, four groups; the first names her flat (never quoted to staff as is).
RESIDENTS = [
    (f"r{i}", f"居民{i}", building, GROUPS[i % 4])
    for i, building in enumerate(("1", "2", "3", "4", "5", "6", "1", "2"), start=1)
]


async def _group(world: World, text: str, who: str, name: str, chat: str) -> list[Reply]:
    return await world.rt.dispatcher.handle(group_message(text, who, name, chat_id=chat, mentions_bot=True))


async def _private(world: World, text: str, who: str, name: str) -> list[Reply]:
    return await world.rt.dispatcher.handle(private_message(text, who, name))


async def _start_report(world: World, who: str, name: str, building: str, chat: str) -> None:
    """The form up to its summary: the report in the group, the contact question privately."""
    room = "2单元502" if who == "r1" else ""
    await _group(world, f"@回音 {building}栋{room}停水了，家里一点水都没有", who, name, chat)
    await _group(world, "@回音 跳过", who, name, chat)  # no photo: the form moves to the private chat
    said = await _private(world, "不留", who, name)
    assert any("确认提交" in r.text for r in said), [r.text for r in said]


async def _deliver(world: World) -> None:
    await Forwarder(world.rt.db, world.rt.settings, outbound=world.rt.outbound).drain(10)


async def _staff_in_chat(world: World) -> None:
    await world.staff_chat(STAFF_GROUP, world.demo)
    code = await world.invite(world.demo, "staff", account=world.lina)
    assert any("工作人员" in r for r in await world.say(f"/join {code}", who="tg-lina", name="李娜"))


def _sent_to_chat(world: World, chat: str, marker: str) -> list[str]:
    return [r.text for r in world.sender.sent if r.chat_id == chat and marker in r.text]


async def _report_eight(world: World) -> list[str]:
    """The eight reports: all forms started, then confirmed one after another; the confirmations' texts."""
    for who, name, building, chat in RESIDENTS:
        await _start_report(world, who, name, building, chat)
    confirmed = []
    for who, name, _building, _chat in RESIDENTS:
        said = await _private(world, "/confirm", who, name)
        confirmed.append("\n".join(r.text for r in said))
    return confirmed


async def test_eight_reports_in_four_groups_make_one_incident_and_one_case(world: World) -> None:
    await _staff_in_chat(world)
    confirmed = await _report_eight(world)
    case_id = APPEAL_ID.search(confirmed[0])
    assert case_id is not None
    case = case_id.group(0)
    for text in confirmed[5:]:
        assert "合并为一件" in text and case in text, "after the incident opened: no case of their own"

    async with world.rt.db.unit_of_work() as uow:
        incidents = list(await uow.session.scalars(select(Incident)))
        statuses = Counter((await uow.session.execute(select(Appeal.status))).scalars())
        supporters = await uow.session.scalar(select(func.count()).select_from(AppealSupporter))
    [incident] = incidents
    assert incident.status == "open" and incident.kind == "water" and incident.reports == 8
    assert sorted(incident.buildings) == ["1", "2", "3", "4", "5", "6"]
    assert statuses == {AppealStatus.SUBMITTED.value: 1, AppealStatus.CLOSED.value: 7}, "one case"
    assert supporters == 7, "every other report is a supporter of the case"

    await _deliver(world)
    alerts = _sent_to_chat(world, STAFF_GROUP, "片区预警")
    assert len(alerts) == 1, alerts
    [alert] = alerts
    assert "5位居民反映停水" in alert and "5个楼栋" in alert and case in alert, alert
    assert "502" not in alert, "the first messages are quoted masked"
    for chat in GROUPS:
        assert len(_sent_to_chat(world, chat, "停水通知")) == 1, f"one notice in {chat}"

    # The ninth resident asks: what is known at once, and a button to join — no form.
    said = await _group(world, "@回音 怎么又停水了", "r9", "居民9", "g1")
    [reply] = said
    assert "已知悉" in reply.text and case in reply.text, reply.text
    assert [b.payload for b in reply.buttons] == [f"/incident {case}"]
    said = await _group(world, f"/incident {case}", "r9", "居民9", "g1")
    assert any("已加入" in r.text for r in said), [r.text for r in said]
    said = await _group(world, "@回音 几点来水", "r9", "居民9", "g1")
    assert any("已经在里面" in r.text for r in said), [r.text for r in said]

    # Staff say when it comes back: the next resident who asks reads it.
    said_staff = await world.say(f"进展 {case} 物业正在抢修，预计14:00恢复", who="tg-lina", name="李娜")
    assert any("已记录" in r for r in said_staff), said_staff
    said = await _private(world, "请问几点来水", "r10", "居民10")
    assert any("预计14:00恢复" in r.text and "已知悉" in r.text for r in said), [r.text for r in said]
    said_staff = await world.say(f"进展 {case} 物业正在抢修，预计15:00恢复。", who="tg-lina", name="李娜")
    [known] = await _private(world, "请问几点来水", "r10", "居民10")
    assert "预计15:00恢复。编号" in known.text, known.text

    world.sender.sent.clear()
    await _deliver(world)
    for chat in GROUPS:
        assert len(_sent_to_chat(world, chat, case)) == 2, f"each progress note once in {chat}"

    world.sender.sent.clear()
    said_staff = await world.say(f"办结 {case} 已恢复供水", who="tg-lina", name="李娜")
    assert any("已办结" in r for r in said_staff), said_staff
    await _deliver(world)
    for chat in GROUPS:
        told = _sent_to_chat(world, chat, case)
        assert len(told) == 1 and "已办结" in told[0], f"the resolution once in {chat}: {told}"
    for who, *_ in RESIDENTS:
        private = [r.text for r in world.sender.sent if r.chat_id == who]
        assert len(private) == 1 and "已办结" in private[0], f"{who} hears it once: {private}"
    async with world.rt.db.unit_of_work() as uow:
        closed = await uow.session.scalar(select(Incident))
    assert closed is not None and closed.status == "resolved" and closed.open_key is None

    # Resolved: a question about the water is no longer answered from the incident.
    said = await _group(world, "@回音 怎么又停水了", "r11", "居民11", "g2")
    assert not any("已知悉" in r.text for r in said)


async def test_fewer_reports_or_buildings_than_the_threshold_open_no_incident(world: World) -> None:
    await _staff_in_chat(world)
    # Five reports, but from two buildings only: a building's own trouble, not an area-wide one.
    for i, building in enumerate(("1", "1", "1", "2", "2"), start=1):
        await _start_report(world, f"s{i}", f"邻居{i}", building, "g1")
        await _private(world, "/confirm", f"s{i}", f"邻居{i}")
    async with world.rt.db.unit_of_work() as uow:
        assert await uow.session.scalar(select(func.count()).select_from(Incident)) == 0
    await _deliver(world)
    assert not _sent_to_chat(world, STAFF_GROUP, "片区预警")
    said = await _group(world, "@回音 怎么又停水了", "s9", "邻居9", "g1")
    assert not any("已知悉" in r.text for r in said), "no incident: the usual answer"


async def test_the_alert_is_updated_when_more_reports_arrive_later(world: World) -> None:
    await _staff_in_chat(world)
    for who, name, building, chat in RESIDENTS[:5]:
        await _start_report(world, who, name, building, chat)
        await _private(world, "/confirm", who, name)
    await _deliver(world)
    assert len(_sent_to_chat(world, STAFF_GROUP, "片区预警")) == 1
    # Half an hour later, one more report: an update (not one per report while reports pour in).
    async with world.rt.db.unit_of_work() as uow:
        incident = await uow.session.scalar(select(Incident))
        assert incident is not None
        incident.alerted_at = utcnow() - timedelta(minutes=30)
        await uow.commit()
    for who, name, _building, chat in RESIDENTS[5:7]:
        [known] = await _group(world, "@回音 我家也停水了", who, name, chat)
        assert known.buttons, known.text
        await _group(world, known.buttons[0].payload, who, name, chat)
    await _deliver(world)
    updates = _sent_to_chat(world, STAFF_GROUP, "片区预警更新")
    assert len(updates) == 1 and "6位居民" in updates[0], updates


def test_a_community_sets_its_thresholds_and_may_switch_a_kind_off(world: World) -> None:
    from bot.appeals.incidents import IncidentDesk
    from kb.model import IncidentRuleProfile

    services = world.rt.dispatcher.services
    profile = services.kb.community("demo")
    incidents = {
        "water": IncidentRuleProfile(reports=0),
        "power": IncidentRuleProfile(reports=10, buildings=4, window_minutes=60),
        "heating": IncidentRuleProfile(label="暖气不热", matters=["heating_not_warm"], words=["暖气"]),
    }
    changed = profile.model_copy(
        update={"case_desk": profile.case_desk.model_copy(update={"incidents": incidents})}
    )

    class OneCommunity:
        def community(self, code: str) -> object:
            return changed

    desk = IncidentDesk(services.settings, OneCommunity(), services.words)  # type: ignore[arg-type]
    assert desk.rule_for("demo", "utilities", "water_outage") is None, "switched off"
    power = desk.rule_for("demo", "utilities", "power_outage_building")
    assert power is not None and (power.reports, power.buildings) == (10, 4)
    assert power.window == timedelta(minutes=60) and "停电" in power.words
    heating = desk.rule_for("demo", "utilities", "heating_not_warm")
    assert heating is not None and heating.label == "暖气不热" and heating.reports == 5
    assert [r.kind for r in desk.mentioned("demo", "怎么暖气又不热了")] == ["heating"]


async def test_reports_confirmed_at_the_same_time_open_one_incident(world: World) -> None:
    """Eight confirmations at once (eight conversations, so eight transactions racing: on PostgreSQL on
    separate connections) open one incident, with one case and seven supporters."""
    import asyncio

    await _staff_in_chat(world)
    for who, name, building, chat in RESIDENTS:
        await _start_report(world, who, name, building, chat)
    await asyncio.gather(*(_private(world, "/confirm", who, name) for who, name, *_ in RESIDENTS))
    async with world.rt.db.unit_of_work() as uow:
        incidents = list(await uow.session.scalars(select(Incident)))
        statuses = Counter((await uow.session.execute(select(Appeal.status))).scalars())
        supporters = await uow.session.scalar(select(func.count()).select_from(AppealSupporter))
    [incident] = incidents
    assert incident.reports == 8 and len(incident.buildings) == 6
    assert statuses == {AppealStatus.SUBMITTED.value: 1, AppealStatus.CLOSED.value: 7}
    assert supporters == 7
    await _deliver(world)
    assert len(_sent_to_chat(world, STAFF_GROUP, "片区预警")) == 1


async def test_the_city_backend_gets_the_case_not_every_merged_report(make_runtime: Any) -> None:
    from bot.db.models import OutboxEntry
    from tests.backend.conftest import file_appeal

    city = {
        "backend": "webhook",
        "backend_webhook_url": "http://127.0.0.1:9/x",
        "backend_webhook_secret": "s",
    }
    rt = await make_runtime(forwarder=False, **city)
    ids = [
        await file_appeal(rt, f"{b}栋停水了，家里一点水都没有", who=f"c{b}", name=f"居民{b}")
        for b in ("1", "2", "3", "4", "5")
    ]
    async with rt.db.unit_of_work() as uow:
        rows = list(await uow.session.scalars(select(OutboxEntry).where(OutboxEntry.action == "create")))
        public = {i: p for i, p in (await uow.session.execute(select(Appeal.id, Appeal.public_id))).all()}
    pending = [public[r.appeal_id] for r in rows if r.delivered_at is None]
    assert pending == [ids[0]], "only the incident's case goes to the city"
    settled = [r for r in rows if r.delivered_at is not None]
    assert len(settled) == 4 and all(ids[0] in (r.last_error or "") for r in settled)


async def test_the_dashboard_shows_the_open_incident(world: World, console: Any) -> None:
    from tests.staff.conftest import login

    for who, name, building, chat in RESIDENTS[:5]:
        await _start_report(world, who, name, building, chat)
        await _private(world, "/confirm", who, name)
    await login(console, "lina")
    board = await console.get("/staff/dashboard")
    assert board.status_code == 200
    section = board.text.split('data-testid="incidents"', 1)[1].split("</section>", 1)[0]
    assert "停水" in section and "5 人" in section and "1栋、2栋、3栋、4栋、5栋" in section
    assert "HY-" in section and "尚未填写进展" in section


async def test_the_case_reporter_cannot_withdraw_the_case_the_neighbours_share(world: World) -> None:
    await _staff_in_chat(world)
    for who, name, building, chat in RESIDENTS[:5]:
        await _start_report(world, who, name, building, chat)
        await _private(world, "/confirm", who, name)
    async with world.rt.db.unit_of_work() as uow:
        case = await uow.session.scalar(select(Appeal).where(Appeal.status == "submitted"))
    assert case is not None
    said = await _private(world, f"撤回 {case.public_id}", "r1", "居民1")
    assert any("邻居一起反映" in r.text and "不能撤回" in r.text for r in said), [r.text for r in said]
    async with world.rt.db.unit_of_work() as uow:
        incident = await uow.session.scalar(select(Incident))
        still = await uow.session.get(Appeal, case.id)
    assert incident is not None and incident.status == "open"
    assert still is not None and still.status == "submitted", "the neighbours' problem stays open"
    said = await _group(world, "@回音 怎么又停水了", "r9", "居民9", "g1")
    assert any("已知悉" in r.text for r in said), [r.text for r in said]


async def test_an_incident_whose_case_closed_otherwise_gives_way_to_the_next_report(world: World) -> None:
    from sqlalchemy import update

    for who, name, building, chat in RESIDENTS[:5]:
        await _start_report(world, who, name, building, chat)
        await _private(world, "/confirm", who, name)
    async with world.rt.db.unit_of_work() as uow:  # closed without a status change (e.g. by hand)
        await uow.session.execute(update(Appeal).values(status="closed"))
        await uow.commit()
    who, name, building, chat = RESIDENTS[5]
    await _start_report(world, who, name, building, chat)
    said = await _private(world, "/confirm", who, name)
    assert any("已提交" in r.text for r in said), "no stale incident swallows the report"
    async with world.rt.db.unit_of_work() as uow:
        incident = await uow.session.scalar(select(Incident))
        standing = await uow.session.scalar(select(func.count()).where(Appeal.status == "submitted"))
    assert incident is not None and incident.status == "resolved" and incident.open_key is None
    assert standing == 1
