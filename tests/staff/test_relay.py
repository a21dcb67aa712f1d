"""Building leaders relay for neighbours: the appeal records the neighbour and the leader, leaders act
only for their buildings, and see their buildings' appeals."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.models import Appeal, AppealEvent, Person
from bot.handoff.relay import parse_relay
from bot.message import ChatType, IncomingMessage, Platform
from tests.staff.conftest import World

APPEAL_ID = re.compile(r"HY-\d{8}-\d{4}")


@pytest.mark.parametrize(
    ("text", "resident", "building", "room", "what"),
    [
        ("帮3栋502王阿姨反映：厨房漏水", "王阿姨", "3", "502", "厨房漏水"),
        ("@回音 替5号楼2单元301李大爷报修 楼道灯坏了", "李大爷", "5", "301", "楼道灯坏了"),
        ("帮王阿姨反映一下，3栋502厨房漏水", "王阿姨", "3", "502", "3栋502厨房漏水"),
        (
            "「张奶奶：三号楼电梯又坏了，困了人」\n- - - - - - - - - -\n帮她反映一下",
            "张奶奶",
            "3",
            None,
            "三号楼电梯又坏了，困了人",
        ),
        ("[转发] 刘叔：地下车库的灯全灭了", "刘叔", None, None, "地下车库的灯全灭了"),
        ("@回音 幫3棟601劉奶奶反映：衛生間堵了", "刘奶奶", "3", "601", "卫生间堵了"),  # traditional
    ],
)
def test_parse_relay(text: str, resident: str, building: str | None, room: str | None, what: str) -> None:
    request = parse_relay(text)
    assert request is not None
    assert (request.resident, request.building, request.room, request.description) == (
        resident,
        building,
        room,
        what,
    )


@pytest.mark.parametrize(
    "text", ["帮我反映一下楼道灯坏了", "帮忙看看这个", "3栋502厨房漏水", "「王阿姨：你好」\n- - - -\n哈哈"]
)
def test_not_a_relay(text: str) -> None:
    assert parse_relay(text) is None


async def _leader(
    world: World, who: str = "res-leader", name: str = "楼长老周", buildings: list[str] | None = None
) -> None:
    code = await world.invite(world.demo, "building_leader", buildings=buildings or ["3", "5"])
    replies = await world.say(f"/join {code}", who=who, name=name)
    assert any("楼长" in r for r in replies), replies


async def test_a_leader_relays_for_a_neighbour(world: World) -> None:
    await _leader(world)
    draft = await world.say("帮3栋502王阿姨反映：厨房漏水，水滴到楼下了", who="res-leader", name="楼长老周")
    text = "\n".join(draft)
    assert "王阿姨" in text and "3栋502" in text and "确认提交" in text, text
    created = await world.say("/relay ok", who="res-leader", name="楼长老周")
    found = APPEAL_ID.search(" ".join(created))
    assert found, created
    async with world.rt.db.unit_of_work() as uow:
        appeal = (await uow.session.execute(select(Appeal))).scalars().one()
        reporter = await uow.session.get(Person, appeal.reporter_id)
        leader = await uow.session.get(Person, appeal.relayed_by_id)
        event = (await uow.session.execute(select(AppealEvent))).scalars().first()
    assert appeal.public_id == found.group()
    assert reporter is not None and reporter.display_name == "王阿姨"
    assert leader is not None and leader.display_name == "楼长老周"
    assert (appeal.building, appeal.room, appeal.community_id) == ("3", "502", world.demo.id)
    assert event is not None and "楼长" in event.note and event.actor == f"leader:{leader.id}"
    # Confirming twice creates nothing more; "我的诉求进度" of the leader lists the relayed appeal.
    assert any("过期" in r for r in await world.say("/relay ok", who="res-leader", name="楼长老周"))
    status = " ".join(await world.say("我的诉求进度", who="res-leader", name="楼长老周"))
    assert appeal.public_id in status


async def test_a_relay_in_the_group_is_confirmed_privately(world: World) -> None:
    await _leader(world)
    group = {"chat_id": "grp-3", "chat_type": ChatType.GROUP, "chat_title": "幸福里3栋业主群"}
    replies = await world.rt.dispatcher.handle(_group_message("@回音 帮3栋502王阿姨反映：厨房漏水", **group))
    in_group = [r.text for r in replies if r.target.value == "chat"]
    private = [r.text for r in replies if r.target.value == "private"]
    assert in_group and all("502" not in t for t in in_group), in_group
    assert private and "502" in private[0]
    created = await world.say("/relay ok", who="res-leader", name="楼长老周")
    assert APPEAL_ID.search(" ".join(created)), created


def _group_message(text: str, **group: Any) -> IncomingMessage:
    return IncomingMessage(
        platform=Platform.REST,
        sender_id="res-leader",
        sender_name="楼长老周",
        text=text,
        mentions_bot=True,
        **group,
    )


async def test_a_leader_relays_only_for_their_buildings(world: World) -> None:
    await _leader(world, buildings=["3"])
    replies = await world.say("帮7栋101李阿姨反映：门禁坏了", who="res-leader", name="楼长老周")
    assert any("7栋不在其中" in r for r in replies), replies
    assert await world.say("/relay ok", who="res-leader", name="楼长老周") == [
        "这条代反映已过期，请重新发送。"
    ]
    async with world.rt.db.unit_of_work() as uow:
        assert (await uow.session.execute(select(Appeal))).first() is None


async def test_a_leader_of_one_building_need_not_name_it(world: World) -> None:
    await _leader(world, buildings=["3"])
    draft = " ".join(await world.say("帮王阿姨反映：楼道里堆满了杂物", who="res-leader", name="楼长老周"))
    assert "3栋" in draft, draft


async def test_cancelling_a_relay(world: World) -> None:
    await _leader(world)
    await world.say("帮3栋502王阿姨反映：厨房漏水", who="res-leader", name="楼长老周")
    assert any("已取消" in r for r in await world.say("/relay cancel", who="res-leader", name="楼长老周"))
    async with world.rt.db.unit_of_work() as uow:
        assert (await uow.session.execute(select(Appeal))).first() is None


async def test_a_resident_who_is_no_leader_files_their_own_way(world: World) -> None:
    replies = " ".join(await world.say("帮3栋502王阿姨反映：厨房漏水", who="res-li", name="李先生"))
    assert "代反映" not in replies  # the ordinary dialog handles it
    assert any("楼长" in r for r in await world.say("本楼诉求", who="res-li", name="李先生"))


async def test_leaders_see_their_buildings_appeals_only(world: World) -> None:
    await _leader(world, who="res-leader", name="楼长老周", buildings=["3"])
    await world.say("帮3栋502王阿姨反映：厨房漏水", who="res-leader", name="楼长老周")
    await world.say("/relay ok", who="res-leader", name="楼长老周")
    await _leader(world, who="res-leader5", name="楼长小吴", buildings=["5"])
    await world.say("帮5栋201赵大爷反映：楼道灯坏了", who="res-leader5", name="楼长小吴")
    await world.say("/relay ok", who="res-leader5", name="楼长小吴")
    async with world.rt.db.unit_of_work() as uow:
        by_building = {a.building: a.public_id for a in (await uow.session.execute(select(Appeal))).scalars()}
    await world.say("3棟2單元1201衛生間漏水了，电话13900002222", who="res-zhang", name="张先生")
    for step in ("跳过", "不留", "/confirm"):
        await world.say(step, who="res-zhang", name="张先生")
    mine = " ".join(await world.say("本楼诉求", who="res-leader", name="楼长老周"))
    assert by_building["3"] in mine and by_building["5"] not in mine
    for personal in ("502", "1201", "13900002222"):
        assert personal not in mine, "the list is per building, not per flat: no neighbour's flat or phone"
    theirs = " ".join(await world.say("/appeals", who="res-leader5", name="楼长小吴"))
    assert by_building["5"] in theirs and by_building["3"] not in theirs
