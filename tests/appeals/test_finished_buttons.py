"""A finished step's button pressed again (a double click on 确认提交, an old message's button) is
answered kindly: it files nothing, answers no open question in the resident's place, and is not a failed
understanding on the way to calling staff."""

from __future__ import annotations

import re

from sqlalchemy import select

from bot.db.models import Appeal, Handoff
from bot.roles import create_staff_account, ensure_community
from bot.runtime import Runtime
from tests.conftest import private_message

APPEAL_ID = re.compile(r"HY-\d{8}-\d{4}")


async def test_a_double_clicked_confirm_is_not_a_failed_understanding(runtime: Runtime) -> None:
    async with runtime.db.unit_of_work() as uow:
        demo = await ensure_community(uow.session, "demo", "幸福里社区")
        await create_staff_account(uow.session, "lina", "a-long-password-1", "李娜", [demo])
        await uow.commit()
    await runtime.dispatcher.handoff.restore_markers(runtime.db)

    async def say(text: str) -> list[str]:
        return [r.text for r in await runtime.dispatcher.handle(private_message(text, "wang", "王阿姨"))]

    for step in ("8栋地下车库积水很深", "跳过", "不留"):
        await say(step)
    filed = await say("/confirm")
    public_id = APPEAL_ID.search(filed[0])
    assert public_id
    again = await say("/confirm")  # the same button, clicked twice
    assert again == [f"这条诉求已经提交过了，编号 {public_id.group(0)}。"]
    for stale in ("/skip", "/edit place"):  # other buttons of the finished form
        answer = await say(stale)
        assert len(answer) == 1 and "没太明白" not in answer[0], answer
    # One message not understood after them is one, not a streak that calls staff.
    puzzled = await say("啊啊啊呜呜呜")
    assert any("没太明白" in t for t in puzzled) and not any("工作人员" in t for t in puzzled), puzzled
    async with runtime.db.unit_of_work() as uow:
        assert (await uow.session.execute(select(Handoff))).first() is None
        assert len((await uow.session.execute(select(Appeal))).all()) == 1


async def test_a_double_clicked_confirm_does_not_answer_the_duplicate_offer(runtime: Runtime) -> None:
    h = runtime.dispatcher.handle
    for step in ("6栋地下车库积水很深，车都泡了", "跳过", "不留", "/confirm"):
        await h(private_message(step, "a", "张先生"))
    for step in ("6栋地下车库积水了", "跳过", "不留"):
        await h(private_message(step, "b", "李女士"))
    offer = await h(private_message("/confirm", "b", "李女士"))
    assert "加入支持" in offer[0].text
    again = await h(private_message("/confirm", "b", "李女士"))  # 确认提交, clicked twice
    assert [b.title for b in again[0].buttons] == [b.title for b in offer[0].buttons]
    assert not APPEAL_ID.search(again[0].text) and "没太明白" not in again[0].text
    async with runtime.db.unit_of_work() as uow:
        assert len((await uow.session.execute(select(Appeal))).all()) == 1, "her choice is still to come"
    new = next(b.payload for b in offer[0].buttons if b.title == "仍然单独提交")
    filed = await h(private_message(new, "b", "李女士"))
    assert "已提交" in filed[0].text
    stale = await h(private_message(new, "b", "李女士"))
    assert "已经提交过了" in stale[0].text
