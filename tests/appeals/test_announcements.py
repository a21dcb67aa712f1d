"""Notices staff post to residents' groups: /announce from the staff chat reaches every residents' group
(or the one named), a resident's question about its topic is answered from it while it is valid, and not
after; only staff post."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from bot.cases.announcements import topics_of, valid_until
from bot.db.models import Announcement
from bot.message import ChatType, Reply
from tests.conftest import rest_message
from tests.staff.conftest import World

TZ = ZoneInfo("Asia/Shanghai")
GROUPS = {"ga": "幸福里1栋业主群", "gb": "幸福里2栋业主群", "gc": "幸福里3栋业主群"}


async def _in_group(world: World, text: str, who: str, chat: str) -> list[Reply]:
    message = rest_message(
        text, who, f"居民{who}", chat_type=ChatType.GROUP, chat_id=chat, chat_title=GROUPS[chat],
        mentions_bot=True,
    )  # fmt: skip
    return await world.rt.dispatcher.handle(message)


async def _staff(world: World, text: str, who: str = "tg-lina", name: str = "李娜", **kw: bool) -> list[str]:
    return await world.say(text, who=who, name=name, chat_type=ChatType.GROUP, chat_id="staff-grp", **kw)


async def _setup(world: World) -> None:
    for chat in GROUPS:
        await _in_group(world, "@回音 你好", f"n-{chat}", chat)
    await world.staff_chat("staff-grp", world.demo)
    code = await world.invite(world.demo, "staff", account=world.lina)
    assert any("工作人员" in r for r in await world.say(f"/join {code}", who="tg-lina", name="李娜"))


async def test_a_notice_reaches_every_group_and_answers_questions_until_it_expires(world: World) -> None:
    await _setup(world)
    said = await _staff(world, "/announce 明天9:00-12:00停水检修，请提前储水")
    assert any("3个居民群" in r and "12:00" in r for r in said), said
    await world.flush_notices()
    for chat in GROUPS:
        assert world.sender.in_chat(chat) == ["【社区公告】明天9:00-12:00停水检修，请提前储水"], chat

    [answer] = await _in_group(world, "@回音 明天几点停水啊", "res-1", "gb")
    assert "社区公告" in answer.text and "9:00-12:00" in answer.text, answer.text
    assert [b.payload for b in answer.buttons] == ["/report"], "something else can still be reported"
    # The brief answer in the group, the rest in private.
    other = await _in_group(world, "@回音 物业电话多少", "res-1", "gb")
    assert other and not any("社区公告" in r.text for r in other), "only questions about its topic"

    async with world.rt.db.unit_of_work() as uow:
        await uow.session.execute(
            update(Announcement).values(valid_until=datetime.now(UTC) - timedelta(minutes=1))
        )
        await uow.commit()
    said_after = await _in_group(world, "@回音 明天几点停水啊", "res-1", "gb")
    assert not any("社区公告" in r.text for r in said_after), "an expired notice answers nothing"


async def test_a_notice_for_one_group_answers_only_there(world: World) -> None:
    await _setup(world)
    said = await _staff(world, "@回音 公告 2栋 今天下午3点电梯维保，请走楼梯", mentions_bot=True)
    assert any("1个居民群" in r for r in said), said
    await world.flush_notices()
    assert world.sender.in_chat("gb") == ["【社区公告】今天下午3点电梯维保，请走楼梯"]
    assert not world.sender.in_chat("ga") and not world.sender.in_chat("gc")
    [there] = await _in_group(world, "@回音 电梯什么时候能用", "res-2", "gb")
    assert "社区公告" in there.text
    elsewhere = await _in_group(world, "@回音 电梯什么时候能用", "res-3", "ga")
    assert not any("社区公告" in r.text for r in elsewhere)


async def test_only_staff_post_notices(world: World) -> None:
    await _setup(world)
    said = await _staff(world, "/announce 明天停水", who="someone", name="路人")
    assert any("只有本社区的工作人员" in r for r in said), said
    async with world.rt.db.unit_of_work() as uow:
        assert (await uow.session.scalars(select(Announcement))).first() is None
    assert any("用法" in r for r in await _staff(world, "/announce"))


def test_a_notice_is_valid_until_the_time_it_names() -> None:
    now = datetime(2026, 12, 7, 8, 0, tzinfo=TZ)  # a Monday morning
    day = timedelta(hours=24)
    assert valid_until("明天9:00-12:00停水", now, TZ, day) == datetime(2026, 12, 8, 12, 0, tzinfo=TZ)
    assert valid_until("今天下午3点电梯维保", now, TZ, day) == datetime(2026, 12, 7, 15, 0, tzinfo=TZ)
    assert valid_until("7点半停电", now, TZ, day) == datetime(2026, 12, 8, 7, 30, tzinfo=TZ), "next 7:30"
    assert valid_until("后天停水", now, TZ, day) == datetime(2026, 12, 10, 0, 0, tzinfo=TZ), "all that day"
    assert valid_until("请按时缴纳物业费", now, TZ, day) == now + day
    assert topics_of("明天停水，电梯也停") == ["water", "lift"]
