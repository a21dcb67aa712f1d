"""Handoff through the dispatcher: queued when asked, after failed understandings and on emergencies;
taken over (the bot goes quiet), answered as the staff member, noted, released by hand or after a
quiet period — with the resident told when a person joins and leaves."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select, update

from bot.db.models import AuditEntry, Conversation, Handoff, HandoffNote, TranscriptMessage, utcnow
from bot.handoff import HandoffError
from bot.handoff.desk import HELD_COMPLETE
from bot.message import ChatType
from tests.staff.conftest import World


async def test_asking_for_a_person_queues_the_conversation(world: World) -> None:
    await world.staff_chat("staff-grp", world.demo)
    replies = await world.say("转人工")
    assert any("已为您转接社区工作人员" in r for r in replies), replies
    conv = await world.conversation_of("res-wang")
    handoff = await world.handoff(conv)
    assert handoff is not None and handoff.status == "waiting" and handoff.reason == "asked"
    # Asking again does not queue twice.
    again = await world.say("找工作人员")
    assert any("已经为您转接" in r for r in again), again
    async with world.rt.db.unit_of_work() as uow:
        assert await uow.session.scalar(select(func.count(Handoff.id))) == 1
    # The staff chat hears about it, with the summary and how to take it.
    await world.flush_notices()
    notices = world.sender.in_chat("staff-grp")
    assert len(notices) == 1 and f"/take {conv}" in notices[0] and "王阿姨" in notices[0]


async def test_without_staff_the_resident_gets_the_office(runtime_world_without_staff: World) -> None:
    world = runtime_world_without_staff
    replies = await world.say("转人工", who="res-x", chat_id="res-x")
    assert any("社区工作站" in r for r in replies), replies
    async with world.rt.db.unit_of_work() as uow:
        assert await uow.session.scalar(select(func.count(Handoff.id))) == 0


async def test_two_failed_understandings_in_a_row_queue_it(world: World) -> None:
    first = await world.say("啊啊啊呜呜呜")
    assert any("没太明白" in r for r in first), first
    conv = await world.conversation_of("res-wang")
    assert await world.handoff(conv) is None
    second = await world.say("嗯嗯哦哦哈")
    assert any("已请社区工作人员来帮您" in r for r in second), second
    handoff = await world.handoff(conv)
    assert handoff is not None and handoff.reason == "not_understood"


async def test_an_understood_message_breaks_the_streak(world: World) -> None:
    await world.say("啊啊啊呜呜呜")
    await world.say("下水道堵了找谁")
    third = await world.say("嗯嗯哦哦哈")
    assert not any("工作人员" in r for r in third), third
    assert await world.handoff(await world.conversation_of("res-wang")) is None


async def test_an_emergency_gets_the_safety_script_and_staff(world: World) -> None:
    replies = await world.say("楼道里有很大的煤气味，好像燃气泄漏了")
    text = "\n".join(replies)
    assert "燃气" in text and "已同时通知社区工作人员" in text, text
    handoff = await world.handoff(await world.conversation_of("res-wang"))
    assert handoff is not None and handoff.reason == "emergency" and handoff.urgent


async def test_take_over_reply_note_release(world: World) -> None:
    desk = world.rt.dispatcher.handoff
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")

    outcome = await world.take(conv)
    await desk.send(outcome.notices, world.rt.outbound)
    assert world.sender.to("res-wang") == ["您好，我是社区工作人员李娜，接下来由我为您服务。"]

    # The bot is silent now; the resident's message is kept for staff.
    assert await world.say("楼上漏水到我家厨房了") == []
    assert await world.say("下水道堵了找谁") == []
    async with world.rt.db.unit_of_work() as uow:
        texts = list(
            (
                await uow.session.execute(
                    select(TranscriptMessage.text).where(
                        TranscriptMessage.conversation_id == conv, TranscriptMessage.author == "resident"
                    )
                )
            ).scalars()
        )
    assert "楼上漏水到我家厨房了" in texts

    async with world.rt.db.unit_of_work() as uow:
        reply = await desk.reply(uow.session, conv, world.lina.person_id, "我们马上联系物业上门查看。")
        note = await desk.note(uow.session, conv, world.lina.person_id, "居民情绪激动，注意安抚")
        await uow.commit()
    assert note.notices == []
    await desk.send(reply.notices, world.rt.outbound)
    signed = world.sender.to("res-wang")[-1]
    assert signed.startswith("我们马上联系物业上门查看。") and "李娜" in signed and "幸福里社区" in signed

    async with world.rt.db.unit_of_work() as uow:
        notes = list((await uow.session.execute(select(HandoffNote.text))).scalars())
        transcript = " ".join((await uow.session.execute(select(TranscriptMessage.text))).scalars())
    assert notes == ["居民情绪激动，注意安抚"]
    # An internal note is never sent and never part of the transcript.
    assert "情绪激动" not in transcript
    assert not any("情绪激动" in r.text for r in world.sender.sent)

    async with world.rt.db.unit_of_work() as uow:
        released = await desk.release(uow.session, conv, world.lina.person_id)
        await uow.commit()
    await desk.send(released.notices, world.rt.outbound)
    assert "李娜已结束本次服务" in world.sender.to("res-wang")[-1]
    # The bot answers again.
    assert await world.say("下水道堵了找谁") != []
    async with world.rt.db.unit_of_work() as uow:
        actions = list(
            (await uow.session.execute(select(AuditEntry.action).order_by(AuditEntry.id))).scalars()
        )
    assert [a for a in actions if a.startswith("handoff.")] == [
        "handoff.take",
        "handoff.reply",
        "handoff.note",
        "handoff.release",
    ]


async def test_staff_can_take_a_conversation_nobody_queued(world: World) -> None:
    await world.say("你好")
    conv = await world.conversation_of("res-wang")
    outcome = await world.take(conv)
    assert outcome.handoff is not None and outcome.handoff.reason == "staff"
    assert await world.say("你好") == []


async def test_only_the_holder_replies_and_a_colleague_cannot_grab_it(world: World) -> None:
    desk = world.rt.dispatcher.handoff
    colleague = await world.add_colleague()
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    await world.take(conv)
    for attempt in ("take", "reply"):
        async with world.rt.db.unit_of_work() as uow:
            try:
                if attempt == "take":
                    await desk.take(uow.session, conv, colleague.person_id)
                else:
                    await desk.reply(uow.session, conv, colleague.person_id, "我来")
            except HandoffError as exc:
                assert exc.key == ("taken_by_other" if attempt == "take" else "not_held")
            else:
                raise AssertionError(f"{attempt} by a colleague should be refused")


async def test_two_staff_taking_at_once_one_wins(world: World) -> None:
    desk = world.rt.dispatcher.handoff
    colleague = await world.add_colleague()
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")

    async def take(person_id: int) -> str:
        async with world.rt.db.unit_of_work() as uow:
            try:
                await desk.take(uow.session, conv, person_id)
                await uow.commit()
            except HandoffError as exc:
                return exc.key
            return "ok"

    results = await asyncio.gather(take(world.lina.person_id), take(colleague.person_id))
    assert sorted(results) == ["ok", "taken_by_other"], results


async def test_auto_release_after_a_quiet_period(world: World) -> None:
    desk = world.rt.dispatcher.handoff
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    await world.take(conv)
    # Recently active: stays with staff.
    assert await desk.release_quiet(world.rt.db, world.rt.outbound) == 0
    quiet = utcnow() - timedelta(seconds=world.rt.settings.handoff_quiet_release_s + 5)
    async with world.rt.db.unit_of_work() as uow:
        await uow.session.execute(update(Handoff).values(last_activity_at=quiet))
        await uow.commit()
    assert await desk.release_quiet(world.rt.db, world.rt.outbound) == 1
    assert "一段时间没有新消息" in world.sender.to("res-wang")[-1]
    async with world.rt.db.unit_of_work() as uow:
        holder = await uow.session.scalar(
            select(Conversation.handoff_holder_id).where(Conversation.id == conv)
        )
        action = await uow.session.scalar(select(AuditEntry.action).order_by(AuditEntry.id.desc()).limit(1))
    assert holder is None and action == "handoff.auto_release"
    assert await world.say("下水道堵了找谁") != []


async def test_a_resident_message_keeps_the_handoff_alive(world: World) -> None:
    desk = world.rt.dispatcher.handoff
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    await world.take(conv)
    quiet = utcnow() - timedelta(seconds=world.rt.settings.handoff_quiet_release_s + 5)
    async with world.rt.db.unit_of_work() as uow:
        await uow.session.execute(update(Handoff).values(last_activity_at=quiet))
        await uow.commit()
    await world.say("还在吗？")
    assert await desk.release_quiet(world.rt.db, world.rt.outbound) == 0


async def test_in_a_group_the_held_resident_reaches_staff_without_addressing_the_bot(world: World) -> None:
    desk = world.rt.dispatcher.handoff
    group = {"chat_id": "grp-3", "chat_type": ChatType.GROUP, "chat_title": "幸福里3栋业主群"}
    assert await world.say("@回音 转人工", mentions_bot=True, **group)
    conv = await world.conversation_of("res-wang", "grp-3")
    outcome = await world.take(conv)
    await desk.send(outcome.notices, world.rt.outbound)
    # The group sees the staff member address the resident by name.
    assert world.sender.in_chat("grp-3")[-1].startswith("@王阿姨 ")
    assert await world.say("是厨房的水管", **group) == []
    # A neighbour's chatter is still ignored and not recorded.
    assert await world.say("今天天气不错", who="res-li", name="李先生", **group) == []
    async with world.rt.db.unit_of_work() as uow:
        texts = list((await uow.session.execute(select(TranscriptMessage.text))).scalars())
    assert "是厨房的水管" in texts and "今天天气不错" not in texts


async def test_a_staff_reply_into_a_group_is_masked_there_and_whole_in_private(world: World) -> None:
    desk = world.rt.dispatcher.handoff
    group = {"chat_id": "grp-3", "chat_type": ChatType.GROUP, "chat_title": "幸福里3栋业主群"}
    await world.say("你好")  # 王阿姨 has a private chat with the bot as well
    assert await world.say("@回音 转人工", mentions_bot=True, **group)
    conv = await world.conversation_of("res-wang", "grp-3")
    await world.take(conv)
    async with world.rt.db.unit_of_work() as uow:
        outcome = await desk.reply(
            uow.session, conv, world.lina.person_id, "维修师傅10分钟后到502，电话13900001111"
        )
        await uow.commit()
    await desk.send(outcome.notices, world.rt.outbound)
    in_group = world.sender.in_chat("grp-3")[-1]
    assert "维修师傅10分钟后到" in in_group and "502" not in in_group and "13900001111" not in in_group
    in_private = world.sender.in_chat("res-wang")[-1]
    assert "502" in in_private and "13900001111" in in_private, "the resident reads the whole reply"


async def test_an_emergency_while_held_still_gets_the_safety_script(world: World) -> None:
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    await world.take(conv)
    replies = await world.say("着火了！楼道里全是烟")
    assert any("119" in r for r in replies), replies


async def test_the_summary_says_who_where_what_and_party(world: World) -> None:
    desk = world.rt.dispatcher.handoff
    await world.say("3栋2单元楼道灯坏了好几天了")
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    async with world.rt.db.unit_of_work() as uow:
        items = await desk.queue(uow.session, [world.demo.id])
    assert len(items) == 1
    summary = items[0].summary
    assert summary.who == "王阿姨"
    assert summary.where.startswith("3栋2单元")
    assert "楼道灯" in summary.what
    assert summary.party and summary.party_name
    # Staff of another community see nothing of it.
    async with world.rt.db.unit_of_work() as uow:
        assert await desk.queue(uow.session, [world.other.id]) == []
    assert items[0].address.conversation_id == conv


async def test_asking_for_a_person_in_the_middle_of_a_form(world: World) -> None:
    await world.say("3栋2单元楼道灯坏了")
    replies = await world.say("转人工")
    assert "已为您转接社区工作人员" in replies[0], replies
    assert replies[-1].startswith("我们继续刚才的登记"), replies
    handoff = await world.handoff(await world.conversation_of("res-wang"))
    assert handoff is not None and handoff.status == "waiting"


async def test_when_redis_loses_the_held_markers_the_database_still_holds(world: World) -> None:
    """A turn trusts a missing marker only while HELD_COMPLETE says the markers are all there."""
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    await world.take(conv)
    # A Redis that keeps nothing restarts: every marker is gone, and so is HELD_COMPLETE.
    await world.rt.store.redis.flushdb()
    assert await world.say("楼上漏水到我家厨房了") == []
    # The next start-up puts them back.
    assert await world.rt.dispatcher.handoff.restore_markers(world.rt.db) == 1
    assert await world.rt.store.redis.exists(HELD_COMPLETE)
    assert await world.say("楼上漏水到我家厨房了") == []


async def test_a_release_that_is_not_committed_keeps_the_bot_quiet(world: World) -> None:
    """The marker goes only once the release is durable: a rolled-back release leaves it held."""
    desk = world.rt.dispatcher.handoff
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    await world.take(conv)
    async with world.rt.db.unit_of_work() as uow:
        await desk.release(uow.session, conv, world.lina.person_id)
        await uow.rollback()  # the database refused the commit, say
    assert await world.say("楼上漏水到我家厨房了") == []
    async with world.rt.db.unit_of_work() as uow:
        await desk.release(uow.session, conv, world.lina.person_id)
        await uow.commit()
    assert await world.say("下水道堵了找谁") != []
