"""The case desk in chat, with no city backend: staff accept and assign an appeal, the handler's people
report progress and finish it, the resident hears every step with the text staff wrote and rates it,
不满意 reopens it to the same handler — and nobody acts on an appeal that is not theirs."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bot.db.models import Appeal, AppealEvent, AppealStatus, AuditEntry, Chat, OutboxEntry
from bot.db.repository.cases import CaseRepository
from bot.message import ChatType
from integrations.backend.forwarder import Forwarder
from tests.staff.conftest import World

APPEAL_ID = re.compile(r"HY-\d{8}-\d{4}")
HANDLER_GROUP = {"chat_id": "prop-grp", "chat_type": ChatType.GROUP, "chat_title": "物业工单群"}


async def _file(world: World, text: str = "3栋2单元楼道灯坏了好几天了", who: str = "res-wang") -> str:
    replies: list[str] = []
    for step in (text, "跳过", "13812345678", "/confirm"):
        replies = await world.say(step, who=who)
    found = next((m for r in replies if (m := APPEAL_ID.search(r))), None)
    assert found, replies
    return found.group(0)


async def _staff_in_chat(world: World) -> None:
    code = await world.invite(world.demo, "staff", account=world.lina)
    assert any("工作人员" in r for r in await world.say(f"/join {code}", who="tg-lina", name="李娜"))


async def _property_clerk(world: World) -> int:
    """周师傅 of the property company acts for its handler; its chat is the group "prop-grp"."""
    await world.say("你好", who="clerk-zhou", name="周师傅")  # he is known to the bot from here on
    async with world.rt.db.unit_of_work() as uow:
        handlers = await world.rt.dispatcher.services.cases.handlers(uow.session, world.demo.id)
        prop = next(h for h in handlers if h.code == "property")
        person = await uow.repo.people.person_for("rest", "clerk-zhou", "周师傅")
        await CaseRepository(uow.session).add_member(prop.id, person.id)
        uow.session.add(
            Chat(
                platform="rest",
                external_id="prop-grp",
                chat_type="group",
                title="物业工单群",
                community_id=world.demo.id,
                purpose="handler",
                handler_id=prop.id,
            )
        )
        await uow.commit()
        return prop.id


async def _deliver(world: World) -> None:
    await Forwarder(world.rt.db, world.rt.settings, outbound=world.rt.outbound).drain(10)


async def _appeal(world: World, public_id: str) -> Appeal:
    async with world.rt.db.unit_of_work() as uow:
        found = await uow.session.scalar(select(Appeal).where(Appeal.public_id == public_id))
        assert found is not None
        return found


def _latest(world: World, who: str) -> str:
    sent = world.sender.to(who)
    assert sent, f"nothing sent to {who}"
    return sent[-1]


async def test_an_appeal_goes_from_submitted_to_resolved_by_chat_commands(world: World) -> None:
    public_id = await _file(world)
    prop_id = await _property_clerk(world)
    await _staff_in_chat(world)
    async with world.rt.db.unit_of_work() as uow:
        created = await uow.session.scalar(select(OutboxEntry).where(OutboxEntry.action == "create"))
    assert created is None, "no city backend: nothing is queued for one, the community handles it"

    said = await world.say(f"受理 {public_id}", who="tg-lina", name="李娜")
    assert any("已受理" in r for r in said), said
    await _deliver(world)
    assert "已受理" in _latest(world, "res-wang") and public_id in _latest(world, "res-wang")

    said = await world.say(f"派单 {public_id} 物业 请周师傅今天带梯子去", who="tg-lina", name="李娜")
    assert any("物业" in r and "已通知" in r for r in said), said
    await _deliver(world)
    [pushed] = world.sender.in_chat("prop-grp")
    assert public_id in pushed and "楼道灯" in pushed and "13812345678" in pushed, "the property may call"
    assert "请周师傅今天带梯子去" in pushed
    told = _latest(world, "res-wang")
    assert "已派单" in told and "幸福里物业服务中心" in told
    assert "梯子" not in told, "staff's words to the handler are not the resident's news"
    assert (await _appeal(world, public_id)).handler_id == prop_id

    said = await world.say(f"进展 {public_id} 师傅明天上午上门更换灯管", who="clerk-zhou", name="周师傅")
    assert any("已记录" in r for r in said), said
    await _deliver(world)
    news = _latest(world, "res-wang")
    assert "处理中" in news and "师傅明天上午上门更换灯管" in news, "the resident reads what staff wrote"

    said = await world.say(f"进展 {public_id} 灯管已到货", who="clerk-zhou", name="周师傅")
    await _deliver(world)
    assert "灯管已到货" in _latest(world, "res-wang"), "a second progress note reaches her too"

    said = await world.say(f"办结 {public_id} 已更换3栋2单元楼道灯管", who="clerk-zhou", name="周师傅")
    assert any("已办结" in r for r in said), said
    await _deliver(world)
    done = _latest(world, "res-wang")
    assert "已办结" in done and "已更换3栋2单元楼道灯管" in done and "评价" in done
    appeal = await _appeal(world, public_id)
    assert appeal.status == AppealStatus.RESOLVED.value and appeal.resolved_at is not None

    due_before = appeal.resolution_due_at
    assert due_before is not None
    rated = await world.say("不满意", who="res-wang")
    assert any("重新打开" in r for r in rated), rated
    await _deliver(world)
    assert any("重新办理" in m and public_id in m for m in world.sender.in_chat("prop-grp")), (
        "the handler who finished it hears that it is back"
    )
    appeal = await _appeal(world, public_id)
    assert appeal.status == AppealStatus.REOPENED.value and appeal.handler_id == prop_id
    assert appeal.resolution_due_at is not None and appeal.resolution_due_at > due_before, (
        "a reopened case gets its time to resolve again, and its reminders"
    )
    assert appeal.resolution_reminded_at is None and appeal.response_reminded_at is None

    async with world.rt.db.unit_of_work() as uow:
        events = list(
            await uow.session.scalars(
                select(AppealEvent).where(AppealEvent.appeal_id == appeal.id).order_by(AppealEvent.id)
            )
        )
        audits = list(
            await uow.session.scalars(select(AuditEntry.action).where(AuditEntry.target_id == public_id))
        )
    steps = [(e.status_to, e.actor) for e in events if e.kind == "status"]
    lina, zhou = f"staff:{world.lina.person_id}", steps[3][1]
    assert steps[1:] == [
        ("accepted", lina),
        ("assigned", lina),
        ("in_progress", zhou),
        ("in_progress", zhou),
        ("resolved", zhou),
        ("reopened", steps[-1][1]),
    ]
    assert zhou != lina and zhou.startswith("handler:") and steps[-1][1].startswith("resident:")
    # The assignment carried the resident's phone to the handler's chat: that is recorded too.
    assert audits == [
        "appeal.accept",
        "appeal.assign",
        "appeal.phone_sent",
        "appeal.progress",
        "appeal.progress",
        "appeal.done",
    ]


async def test_nobody_acts_on_an_appeal_that_is_not_theirs(world: World) -> None:
    public_id = await _file(world)
    await _property_clerk(world)
    await _staff_in_chat(world)
    code = await world.invite(world.other, "staff", account=world.zhao)
    await world.say(f"/join {code}", who="tg-zhao", name="赵强")

    # A resident, a staff member of another community, the property clerk before the assignment.
    for who, name in (("res-li", "李先生"), ("tg-zhao", "赵强"), ("clerk-zhou", "周师傅")):
        said = await world.say(f"办结 {public_id} 已处理", who=who, name=name)
        assert not any("已办结" in r for r in said), (who, said)
        assert not any("楼道灯" in r for r in said), "nothing about the appeal is revealed"
    unknown = await world.say(f"办结 {public_id} 已处理", who="tg-zhao", name="赵强")
    missing = await world.say("办结 HY-20990101-0001 已处理", who="tg-zhao", name="赵强")
    assert unknown == [r.replace("HY-20990101-0001", public_id) for r in missing], (
        "someone else's appeal reads like one that does not exist"
    )
    assert (await _appeal(world, public_id)).status == AppealStatus.SUBMITTED.value

    # The clerk cannot assign, even to himself.
    said = await world.say(f"派单 {public_id} 物业", who="clerk-zhou", name="周师傅")
    assert (await _appeal(world, public_id)).handler_id is None, said


async def test_a_handler_hands_an_appeal_back_and_staff_turn_one_down(world: World) -> None:
    public_id = await _file(world)
    await _property_clerk(world)
    await _staff_in_chat(world)
    await world.staff_chat("staff-grp", world.demo)
    await world.say(f"派单 {public_id} 物业", who="tg-lina", name="李娜")

    said = await world.say(f"退回 {public_id} 这是市政路灯，不归物业管", who="clerk-zhou", name="周师傅")
    assert any("退回社区" in r for r in said), said
    appeal = await _appeal(world, public_id)
    assert appeal.handler_id is None and appeal.flag_reason == "returned"
    assert appeal.status == AppealStatus.ASSIGNED.value, "still the community's case, not the resident's news"
    await _deliver(world)
    assert any("退回" in m and "市政路灯" in m for m in world.sender.in_chat("staff-grp"))

    said = await world.say(f"退回 {public_id} 属于市政设施，不在本社区办理范围", who="tg-lina", name="李娜")
    assert any("不予受理" in r for r in said), said
    await _deliver(world)
    told = _latest(world, "res-wang")
    assert "未被受理" in told or "未受理" in told
    assert "属于市政设施" in told and ("建议您联系" in told or "12345" in told), told
    assert "物业" not in told, "turned down by the community: never referred back to the estate's own"
    assert (await _appeal(world, public_id)).status == AppealStatus.REJECTED.value

    # Turned down by mistake: staff take it back; the clerk cannot.
    said = await world.say(f"受理 {public_id}", who="clerk-zhou", name="周师傅")
    assert (await _appeal(world, public_id)).status == AppealStatus.REJECTED.value, said
    said = await world.say(f"受理 {public_id} 经核实属于小区内路灯，由社区受理", who="tg-lina", name="李娜")
    assert any("已受理" in r for r in said), said
    assert (await _appeal(world, public_id)).status == AppealStatus.ACCEPTED.value


@pytest.mark.parametrize("text", ["派单是什么意思", "受理了吗", "我想办结一下手续", "退回去吧"])
async def test_ordinary_words_are_not_commands(world: World, text: str) -> None:
    commands = world.rt.dispatcher.handlers
    parse = next(h for h in commands if type(h).__name__ == "CaseCommandsHandler")._commands.parse
    assert parse(text) is None


async def test_help_lists_the_case_commands_for_staff_and_handlers_only(world: World) -> None:
    await _property_clerk(world)
    await _staff_in_chat(world)
    assert any("办结 编号 结果" in r for r in await world.say("/help", who="tg-lina", name="李娜"))
    assert any("办结 编号 结果" in r for r in await world.say("/help", who="clerk-zhou", name="周师傅"))
    resident = await world.say("/help", who="res-li", name="李先生")
    assert resident and not any("办结 编号" in r for r in resident), "a resident gets the bot's own help"


async def test_staff_hear_of_a_new_appeal_with_the_handler_the_kb_suggests(world: World) -> None:
    await _staff_in_chat(world)
    await world.staff_chat("staff-grp", world.demo)
    public_id = await _file(world, "3栋2单元502楼道灯坏了好几天了")
    await _deliver(world)
    [news] = world.sender.in_chat("staff-grp")
    assert public_id in news and "楼道灯" in news and f"派单 {public_id} property" in news, news
    assert "502" not in news and "13812345678" not in news, "no room or phone in a group"
    said = await world.say(f"派单 {public_id}", who="tg-lina", name="李娜")
    assert any("建议派给幸福里物业服务中心" in r for r in said), said
    assert (await _appeal(world, public_id)).handler_id is None, "a suggestion, not an assignment"


async def test_a_department_gets_the_assignment_without_the_residents_contact(world: World) -> None:
    await _staff_in_chat(world)
    public_id = await _file(world, "3栋2单元502门口有人占道摆摊，晚上很吵")
    async with world.rt.db.unit_of_work() as uow:
        handlers = await world.rt.dispatcher.services.cases.handlers(uow.session, world.demo.id)
        city_law = next(h for h in handlers if h.code == "urban_management")
        assert city_law.sees_contact is False
        uow.session.add(
            Chat(
                platform="rest",
                external_id="cg-grp",
                chat_type="group",
                title="城管中队",
                community_id=world.demo.id,
                purpose="handler",
                handler_id=city_law.id,
            )
        )
        await uow.commit()
    said = await world.say(f"派单 {public_id} 城管", who="tg-lina", name="李娜")
    assert any("城管" in r and "已通知" in r for r in said), said
    await _deliver(world)
    [pushed] = world.sender.in_chat("cg-grp")
    assert public_id in pushed and "摆摊" in pushed
    assert "13812345678" not in pushed and "502" not in pushed, (
        "a department calls back through the community"
    )


async def test_staff_chat_answers_a_secretary_would_understand(world: World) -> None:
    public_id = await _file(world)
    await _property_clerk(world)
    await _staff_in_chat(world)
    typo = public_id.rsplit("-", 1)[0] + "-1"  # HY-…-0001 typed as HY-…-1
    said = await world.say(f"派单 {typo} 物业", who="tg-lina", name="李娜")
    assert any("没有找到诉求" in r for r in said), "a mistyped id is the case desk's answer, not a resident's"
    said = await world.say(f"派单 {public_id} 网格", who="tg-lina", name="李娜")
    assert any("第一网格" in r and "第二网格" in r for r in said), said
    clerk_help = " ".join(await world.say("/help", who="clerk-zhou", name="周师傅"))
    assert "办结" in clerk_help and "派单 编号" not in clerk_help, "a handler's people cannot assign"


async def test_the_staff_group_hears_of_a_waiting_resident_without_their_phone_or_flat(world: World) -> None:
    await world.staff_chat("staff-grp", world.demo)
    await world.say("3棟2單元502漏水 我電話13700002222 我要找人工", who="res-chen", name="陈阿姨")
    await world.say("转人工", who="res-chen", name="陈阿姨")
    await world.flush_notices()
    lines = world.sender.in_chat("staff-grp")
    assert any("转人工" in line for line in lines), lines
    for line in lines:
        assert "13700002222" not in line and "502" not in line, line


async def test_a_rating_in_a_residents_own_words_counts_and_carries_the_comment(world: World) -> None:
    public_id = await _file(world)
    await _property_clerk(world)
    await _staff_in_chat(world)
    await world.say(f"派单 {public_id} 物业", who="tg-lina", name="李娜")
    await world.say(f"办结 {public_id} 已更换灯管", who="clerk-zhou", name="周师傅")
    rated = await world.say("不滿意！灯还是不亮😡😡", who="res-wang")
    assert any("重新打开" in r for r in rated) and any("意见" in r for r in rated), rated
    await _deliver(world)
    handler_chat = world.sender.in_chat("prop-grp")
    assert any("重新办理" in m for m in handler_chat)
    assert any("居民意见" in m and "灯还是不亮" in m for m in handler_chat), "her words reach the handler"
    appeal = await _appeal(world, public_id)
    assert appeal.status == AppealStatus.REOPENED.value and appeal.rating == "unsatisfied"

    # Resolved again; she rates, then asks about an appeal: a question, not a comment on the rating.
    await world.say(f"办结 {public_id} 已更换整套灯具", who="clerk-zhou", name="周师傅")
    await world.say("滿意👍 謝謝", who="res-wang")
    assert (await _appeal(world, public_id)).rating == "satisfied"
    asked = await world.say(f"查一下 {public_id} 进度", who="res-wang")
    assert not any("意见已转" in r for r in asked), asked
