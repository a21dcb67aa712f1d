"""Staff in chat: invite codes, a staff group bound with /staffchat, and /queue, /take, /reply, /note,
/release typed on any platform — with every authorization rule checked."""

from __future__ import annotations

from sqlalchemy import select

from bot.db.models import CannedReply, Chat, HandoffNote, PlatformIdentity, Role, RoleGrant, TranscriptMessage
from bot.message import ChatType
from tests.staff.conftest import World

STAFF_GROUP = {"chat_id": "staff-grp", "chat_type": ChatType.GROUP, "chat_title": "幸福里工作人员群"}


async def _staff_in_chat(world: World) -> None:
    """李娜 links her Telegram-like identity "tg-lina" to her console login, and binds the staff group."""
    code = await world.invite(world.demo, "staff", account=world.lina)
    replies = await world.say(f"/join {code}", who="tg-lina", name="娜娜")
    assert any("工作人员" in r for r in replies), replies
    bound = await world.say("/staffchat", who="tg-lina", name="娜娜", **STAFF_GROUP)
    assert any("工作人员群" in r for r in bound), bound


async def test_invite_links_the_chat_identity_to_the_console_account(world: World) -> None:
    await _staff_in_chat(world)
    async with world.rt.db.unit_of_work() as uow:
        person = await uow.session.scalar(
            select(PlatformIdentity.person_id).where(PlatformIdentity.external_id == "tg-lina")
        )
        chat = (
            (await uow.session.execute(select(Chat).where(Chat.external_id == "staff-grp"))).scalars().one()
        )
    assert person == world.lina.person_id
    assert chat.purpose == "staff" and chat.community_id == world.demo.id


async def test_a_full_handoff_from_the_staff_group(world: World) -> None:
    await _staff_in_chat(world)
    async with world.rt.db.unit_of_work() as uow:
        uow.session.add(CannedReply(community_id=world.demo.id, title="上门", text="师傅今天下午上门查看。"))
        await uow.commit()

    await world.say("3栋2单元楼道灯坏了")
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    await world.flush_notices()
    assert any(f"/take {conv}" in t for t in world.sender.in_chat("staff-grp"))

    queue = await world.say("/queue", who="tg-lina", name="娜娜", **STAFF_GROUP)
    assert any(f"#{conv}" in r and "王阿姨" in r for r in queue), queue

    taken = await world.say(f"/take {conv}", who="tg-lina", name="娜娜", **STAFF_GROUP)
    assert any("已接入" in r for r in taken), taken
    await world.flush_notices()
    assert world.sender.to("res-wang")[-1] == "您好，我是社区工作人员李娜，接下来由我为您服务。"

    # The resident's message is forwarded to the group the holder took it from; the bot stays silent.
    assert await world.say("灯是昨晚坏的") == []
    await world.flush_notices()
    assert world.sender.in_chat("staff-grp")[-1] == f"💬 #{conv} 王阿姨：灯是昨晚坏的"

    await world.say(f"/reply {conv} 好的，已通知物业电工", who="tg-lina", name="娜娜", **STAFF_GROUP)
    await world.say(f"/reply {conv} #1", who="tg-lina", name="娜娜", **STAFF_GROUP)
    await world.say(f"/note {conv} 物业电话未接通", who="tg-lina", name="娜娜", **STAFF_GROUP)
    await world.flush_notices()
    to_resident = world.sender.to("res-wang")
    assert to_resident[-2].startswith("好的，已通知物业电工") and "李娜" in to_resident[-2]
    assert to_resident[-1].startswith("师傅今天下午上门查看。")
    assert not any("未接通" in t for t in to_resident)
    async with world.rt.db.unit_of_work() as uow:
        assert list((await uow.session.execute(select(HandoffNote.text))).scalars()) == ["物业电话未接通"]

    # Chinese words work too; in a group they need the bot addressed, like any message.
    assert await world.say(f"释放 {conv}", who="tg-lina", name="娜娜", **STAFF_GROUP) == []
    released = await world.say(
        f"@回音 释放 {conv}", who="tg-lina", name="娜娜", mentions_bot=True, **STAFF_GROUP
    )
    assert any("已结束" in r for r in released), released
    await world.flush_notices()
    # The resident's form (begun before 转人工) is offered back after the goodbye; a question lets it lapse.
    goodbye, offer = world.sender.to("res-wang")[-2:]
    assert "李娜已结束本次服务" in goodbye and "要继续登记刚才的问题吗" in offer
    assert await world.say("下水道堵了找谁") != []


async def test_staff_commands_from_a_private_chat_work_too(world: World) -> None:
    """A WeCom app is a private chat with the bot: the same commands, forwarding to that chat."""
    code = await world.invite(world.demo, "staff", account=world.lina)
    await world.say(f"邀请码 {code}", who="wecom-lina", name="李娜")
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    assert any("已接入" in r for r in await world.say(f"接入 {conv}", who="wecom-lina", name="李娜"))
    await world.say("在吗")
    await world.flush_notices()
    assert world.sender.in_chat("wecom-lina")[-1].endswith("王阿姨：在吗")


async def test_residents_cannot_use_staff_commands(world: World) -> None:
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    await world.say("你好", who="res-li", name="李先生")  # not his first message: no privacy notice
    for command in ("/queue", f"/take {conv}", f"/reply {conv} 骗你的", f"/release {conv}", "/take 99999"):
        replies = await world.say(command, who="res-li", name="李先生")
        # The same line whether the conversation exists or not: nothing to learn from guessing numbers.
        assert replies == ["抱歉，这个指令只有本社区的工作人员可以使用。"], (command, replies)
    assert (await world.handoff(conv)).status == "waiting"  # type: ignore[union-attr]
    assert world.sender.to("res-wang") == []


async def test_staff_of_another_community_cannot_touch_the_conversation(world: World) -> None:
    code = await world.invite(world.other, "staff", account=world.zhao)
    await world.say(f"/join {code}", who="tg-zhao", name="赵强")
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    for command in (f"/take {conv}", f"/reply {conv} 你好", f"/note {conv} x", f"/release {conv}"):
        replies = await world.say(command, who="tg-zhao", name="赵强")
        assert replies == [f"没有找到对话 #{conv}，或它不属于您负责的社区。"], (command, replies)
    assert "王阿姨" not in " ".join(await world.say("/queue", who="tg-zhao", name="赵强"))
    assert (await world.handoff(conv)).status == "waiting"  # type: ignore[union-attr]


async def test_building_a_staff_chat_needs_staff(world: World) -> None:
    replies = await world.say("/staffchat", who="res-li", name="李先生", **STAFF_GROUP)
    assert replies == ["@李先生 抱歉，这个指令只有本社区的工作人员可以使用。"]
    async with world.rt.db.unit_of_work() as uow:
        purpose = await uow.session.scalar(select(Chat.purpose).where(Chat.external_id == "staff-grp"))
    assert purpose == "residents"


async def test_invite_codes_are_single_use_private_and_rate_limited(world: World) -> None:
    code = await world.invite(world.demo, "building_leader", buildings=["3"])
    # Posted in a group: refused and burned.
    burned = await world.say(
        f"/join {code}", who="res-li", name="李先生", chat_id="grp-3", chat_type=ChatType.GROUP
    )
    assert any("已作废" in r for r in burned), burned
    assert any("无效" in r for r in await world.say(f"/join {code}", who="res-li", name="李先生"))

    code = await world.invite(world.demo, "building_leader", buildings=["3"])
    assert any("楼长" in r for r in await world.say(f"/join {code}", who="res-li", name="李先生"))
    assert any("无效" in r for r in await world.say(f"/join {code}", who="res-zhang", name="张阿姨"))
    async with world.rt.db.unit_of_work() as uow:
        roles = list((await uow.session.execute(select(RoleGrant.role, RoleGrant.buildings))).all())
    assert ("building_leader", ["3"]) in [(r, b) for r, b in roles]

    # Guessing codes: after a few failures, even a right code is refused for a while.
    for guess in ("AAAA-AAAA", "BBBB-BBBB", "CCCC-CCCC", "DDDD-DDDD", "EEEE-EEEE"):
        await world.say(f"/join {guess}", who="res-guess", name="猜")
    good = await world.invite(world.demo, "staff")
    assert any("次数过多" in r for r in await world.say(f"/join {good}", who="res-guess", name="猜"))


async def test_a_staff_invite_without_an_account_makes_chat_only_staff(world: World) -> None:
    code = await world.invite(world.demo, "staff")
    await world.say(f"/join {code}", who="tg-helper", name="小张")
    async with world.rt.db.unit_of_work() as uow:
        person = await uow.session.scalar(
            select(PlatformIdentity.person_id).where(PlatformIdentity.external_id == "tg-helper")
        )
        role = await uow.session.scalar(select(RoleGrant.role).where(RoleGrant.person_id == person))
    assert role == Role.STAFF.value
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    await world.say(f"/take {conv}", who="tg-helper", name="小张")
    await world.say(f"/reply {conv} 您好", who="tg-helper", name="小张")
    await world.flush_notices()
    assert "小张" in world.sender.to("res-wang")[-1]


async def test_staff_replies_are_recorded_in_the_residents_transcript(world: World) -> None:
    await _staff_in_chat(world)
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    await world.say(f"/take {conv}", who="tg-lina", name="娜娜", **STAFF_GROUP)
    await world.say(f"/reply {conv} 收到", who="tg-lina", name="娜娜", **STAFF_GROUP)
    async with world.rt.db.unit_of_work() as uow:
        rows = (
            await uow.session.execute(
                select(TranscriptMessage.author, TranscriptMessage.author_person_id).where(
                    TranscriptMessage.conversation_id == conv, TranscriptMessage.author == "staff"
                )
            )
        ).all()
    assert rows == [("staff", world.lina.person_id)]
