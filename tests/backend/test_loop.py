"""Closing the loop: every status change reaches the resident where they reported (short in the group,
details in private) and the building leader who relayed it; resolved asks for a rating; 不满意 reopens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.app import create_app
from bot.db.models import Appeal, AppealEvent, AppealStatus, OutboxEntry
from bot.message import Target
from bot.runtime import Runtime
from integrations.backend.forwarder import Forwarder
from integrations.backend.reference import ReferenceBackend
from tests.backend.conftest import APPEAL_ID, appeal, file_appeal, in_group, private, webhook_settings

MakeRuntime = Callable[..., Awaitable[Runtime]]
Loop = tuple[Runtime, httpx.AsyncClient, ReferenceBackend, Forwarder]


@pytest.fixture
async def loop(make_runtime: MakeRuntime, reference: Callable[..., ReferenceBackend]) -> AsyncIterator[Loop]:
    server = reference()
    rt = await make_runtime(**webhook_settings(server.webhook_url))
    app = create_app(runtime=rt)
    app.state.runtime = rt  # ASGITransport does not run the lifespan
    forwarder = Forwarder(rt.db, rt.settings, outbound=rt.outbound)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://huiyin.test") as c:
        yield rt, c, server, forwarder


async def backend_says(loop: Loop, public_id: str, status: str, note: str = "") -> None:
    _rt, client, server, forwarder = loop
    body, headers = server.signed_event(public_id, status, note)
    r = await client.post("/backend/events", content=body, headers=headers)
    assert r.status_code == 200, r.text
    await forwarder.drain(10)  # delivers the notifications into the mailboxes


async def inbox(client: httpx.AsyncClient, *senders: str) -> list[dict[str, Any]]:
    r = await client.get("/webhooks/rest/inbox", params=[("sender", s) for s in senders])
    assert r.status_code == 200, r.text
    return list(r.json())


async def file_in_group(rt: Runtime) -> str:
    """王阿姨 reports in the building group; the phone number is asked for privately."""
    h = rt.dispatcher.handle
    await h(in_group("@回音 3栋2单元502厨房漏水了", mentions_bot=True))
    await h(in_group("没有照片"))
    await h(private("13812345678"))
    replies = await h(private("/confirm"))
    found = next(m for r in replies if (m := APPEAL_ID.search(r.text)))
    return found.group(0)


async def test_resolved_reaches_the_group_briefly_and_unsatisfied_reopens(loop: Loop) -> None:
    rt, client, server, forwarder = loop
    public_id = await file_in_group(rt)
    await forwarder.drain(10)
    assert server.public_ids() == [public_id]

    await backend_says(loop, public_id, "accepted", "已派维修人员，联系电话13900001111")
    [news, details] = await inbox(client, "wang")
    assert news["chat_id"] == "grp-3" and news["target"] == "chat", "told where she reported"
    assert public_id in news["text"] and "已受理" in news["text"] and "私信" in news["text"]
    for private_detail in ("502", "1381", "1390", "厨房", "已派维修人员"):
        assert private_detail not in news["text"], "no personal data in the group"
    assert details["chat_id"] == "wang", "the details go to her private chat with the bot"
    assert "已派维修人员，联系电话13900001111" in details["text"]
    assert await inbox(client, "wang") == [], "a mailbox is emptied when read"

    await backend_says(loop, public_id, "resolved", "已更换水管")
    [done_line, done] = await inbox(client, "wang")
    assert done_line["chat_id"] == "grp-3" and "已办结" in done_line["text"] and not done_line["buttons"]
    assert done["chat_id"] == "wang" and "已办结" in done["text"] and "已更换水管" in done["text"]
    assert "评价" in done["text"]
    assert [b["title"] for b in done["buttons"]] == ["满意", "基本满意", "不满意"]

    # A neighbour cannot rate her appeal, nor learn that it exists: he is answered as for an id that does
    # not exist. She can, with the button's payload, even in the group.
    unsatisfied = done["buttons"][2]["payload"]
    other = await rt.dispatcher.handle(in_group(unsatisfied, who="li", name="李先生", reply_to_bot=True))
    missing = unsatisfied.replace(public_id, "HY-20200101-0001")
    nothing = await rt.dispatcher.handle(in_group(missing, who="li", name="李先生", reply_to_bot=True))
    assert [r.text for r in other] == [r.text for r in nothing] and "没有找到" in other[0].text
    replies = await rt.dispatcher.handle(in_group(unsatisfied, reply_to_bot=True))
    assert "重新打开" in replies[0].text and replies[0].target is Target.CHAT
    a = await appeal(rt, public_id)
    assert a.status == AppealStatus.REOPENED.value and a.rating == "unsatisfied"
    assert a.first_responded_at is None and a.flag_reason == "unsatisfied"

    # The optional comment (addressed to the bot, in the group) goes to the backend too.
    thanks = await rt.dispatcher.handle(in_group("@回音 水管还是在滴水", mentions_bot=True))
    assert "意见" in thanks[0].text
    await forwarder.drain(10)
    kinds = [(u["event"], u["update"].get("rating"), u["update"].get("reopen")) for u in server.updates]
    assert ("appeal.rating", "unsatisfied", True) in kinds
    comment = next(u for u in server.updates if u["event"] == "appeal.comment")
    assert "水管还是在滴水" in comment["update"]["comment"]

    # A second rating of the same resolution is not taken.
    again = await rt.dispatcher.handle(in_group(unsatisfied, reply_to_bot=True))
    assert "评价过" in again[0].text or "还没有办结" in again[0].text


async def test_private_reporter_gets_details_and_rates_in_words(loop: Loop) -> None:
    rt, client, _server, forwarder = loop
    public_id = await file_appeal(rt, "8栋地下车库积水很深", who="zhao", name="赵大爷")
    await forwarder.drain(10)
    await backend_says(loop, public_id, "in_progress", "已安排抽水")
    [news] = await inbox(client, "zhao")
    assert news["chat_id"] == "zhao" and "处理中" in news["text"] and "已安排抽水" in news["text"]
    await backend_says(loop, public_id, "resolved", "积水已清理")
    [done] = await inbox(client, "zhao")
    assert "积水已清理" in done["text"] and done["buttons"]
    replies = await rt.dispatcher.handle(private("满意", who="zhao", name="赵大爷"))
    assert "感谢" in replies[0].text
    skipped = await rt.dispatcher.handle(private("不用了", who="zhao", name="赵大爷"))
    assert "谢谢" in skipped[0].text
    a = await appeal(rt, public_id)
    assert a.status == "resolved" and a.rating == "satisfied"
    progress = await rt.dispatcher.handle(private("我的诉求进度", who="zhao", name="赵大爷"))
    assert "积水已清理" in progress[0].text, "the progress list shows the latest status note"


async def test_the_relaying_building_leader_and_supporters_hear_too(loop: Loop) -> None:
    rt, client, _server, forwarder = loop
    await rt.dispatcher.handle(private("你好", who="leader", name="周楼长"))  # the leader is known
    public_id = await file_appeal(rt, "9栋1单元电梯坏了，困了好几次", who="qian", name="钱阿姨")
    async with rt.db.unit_of_work() as uow:
        leader = await uow.repo.people.person_for("rest", "leader", "周楼长")
        found = (await uow.session.execute(select(Appeal).where(Appeal.public_id == public_id))).scalar_one()
        found.relayed_by_id = leader.id
        await uow.commit()
    h = rt.dispatcher.handle
    await h(in_group("@回音 9栋1单元电梯坏了", who="sun", name="孙先生", mentions_bot=True))
    await h(in_group("没有照片", who="sun", name="孙先生"))  # the dialog moves to his private chat
    await h(private("不留", who="sun", name="孙先生"))
    offer = await h(private("/confirm", who="sun", name="孙先生"))
    assert any(public_id in r.text for r in offer)
    await h(private(f"/support {public_id}", who="sun", name="孙先生"))
    await forwarder.drain(10)
    await backend_says(loop, public_id, "assigned", "已派给电梯维保单位")
    mail = {m["recipient_id"]: m for m in await inbox(client, "qian", "leader", "sun")}
    assert set(mail) == {"qian", "leader", "sun"}
    assert mail["leader"]["target"] == "private" and "钱阿姨" in mail["leader"]["text"]
    assert "已派给电梯维保单位" in mail["leader"]["text"]
    assert "支持的" in mail["sun"]["text"]
    assert not mail["leader"]["buttons"] and not mail["sun"]["buttons"]


async def test_notifications_are_kept_until_a_process_can_send_them(
    make_runtime: MakeRuntime, reference: Callable[..., ReferenceBackend]
) -> None:
    server = reference()
    rt = await make_runtime(**webhook_settings(server.webhook_url))
    public_id = await file_appeal(rt, "8栋地下车库积水很深")
    rest_only_forwarder = Forwarder(rt.db, rt.settings)  # no senders: backend rows only
    await rest_only_forwarder.drain(10)
    async with rt.db.unit_of_work() as uow:
        a = await uow.repo.appeals.appeal_by_public_id(public_id)
        assert a is not None
        from bot.appeals.status import change_status, lock_appeal
        from bot.dialog.spec import load_bundle

        locked = await lock_appeal(uow.session, a.id)
        assert locked is not None
        await change_status(
            uow.session,
            locked,
            AppealStatus.ACCEPTED,
            note="",
            actor="backend",
            words=load_bundle().responses,
        )
        await uow.commit()
    await rest_only_forwarder.drain(5)
    async with rt.db.unit_of_work() as uow:
        row = (
            await uow.session.execute(select(OutboxEntry).where(OutboxEntry.action == "notify"))
        ).scalar_one()
        assert row.delivered_at is None and row.attempts == 0, "left for a process with a REST sender"
    await Forwarder(rt.db, rt.settings, outbound=rt.outbound).drain(5)
    async with rt.db.unit_of_work() as uow:
        row = (
            await uow.session.execute(select(OutboxEntry).where(OutboxEntry.action == "notify"))
        ).scalar_one()
        assert row.delivered_at is not None
        statuses = (
            await uow.session.execute(select(AppealEvent.status_to).where(AppealEvent.kind == "status"))
        ).scalars()
        assert list(statuses) == ["submitted", "accepted"]
