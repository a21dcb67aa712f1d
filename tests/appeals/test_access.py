"""Who reaches an appeal by its id: joining only the appeal offered (open, of the resident's community),
supporters reading only the public progress, and ``/rate`` and ``/status`` answering a stranger's guess
exactly like an id that does not exist. Ids are sequential, so any other answer tells what exists."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select

from bot.appeals.status import change_status, lock_appeal
from bot.db.models import AppealStatus, AppealSupporter, OutboxEntry
from bot.runtime import Runtime
from tests.backend.conftest import appeal, file_appeal, private

MakeRuntime = Callable[..., Awaitable[Runtime]]
MISSING = "HY-20200101-0001"  # the shape of an id, of a day long before any appeal here


async def count(rt: Runtime, model: type, *where: Any) -> int:
    async with rt.db.unit_of_work() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def say(rt: Runtime, text: str, who: str, name: str = "居民") -> list[str]:
    return [r.text for r in await rt.dispatcher.handle(private(text, who=who, name=name))]


async def until_offer(rt: Runtime, text: str, who: str, name: str = "居民") -> list[str]:
    for step in (text, "跳过", "不留"):
        await say(rt, step, who, name)
    return await say(rt, "/confirm", who, name)


async def in_other_community(rt: Runtime, who: str) -> None:
    """``who``'s private chat belongs to the community 老园 (as ``huiyin admin bind-chat`` makes it)."""
    async with rt.db.unit_of_work() as uow:
        other = await uow.repo.conversations.community("laoyuan", "老园社区")
        await uow.repo.conversations.chat("rest", who, "private", "", other.id, False)
        await uow.commit()


async def set_status(rt: Runtime, public_id: str, status: AppealStatus, note: str = "") -> None:
    async with rt.db.unit_of_work() as uow:
        found = await uow.repo.appeals.appeal_by_public_id(public_id)
        assert found is not None
        locked = await lock_appeal(uow.session, found.id)
        assert locked is not None
        await change_status(
            uow.session, locked, status, note=note, actor="backend", words=rt.dispatcher.words
        )
        await uow.commit()


async def person_id(rt: Runtime, who: str) -> int:
    async with rt.db.unit_of_work() as uow:
        return (await uow.repo.people.person_for("rest", who, "")).id


async def test_only_the_offered_open_appeal_of_the_community_can_be_joined(make_runtime: MakeRuntime) -> None:
    rt = await make_runtime(forwarder=False)
    offered = await file_appeal(rt, "6栋地下车库积水很深，车都泡了", who="a", name="张先生")
    unrelated = await file_appeal(rt, "9栋1单元电梯坏了，困了好几次", who="c", name="陈先生")
    await in_other_community(rt, "x")
    elsewhere = await file_appeal(rt, "6栋地下车库积水很深", who="x", name="许女士")
    assert (await appeal(rt, elsewhere)).community_id != (await appeal(rt, offered)).community_id
    offer = await until_offer(rt, "6栋地下车库积水了", who="b", name="李女士")
    assert offered in offer[0] and elsewhere not in offer[0]

    # The offer's button names its appeal; the same command typed with any other id joins nothing.
    refusals = [await say(rt, f"/support {pid}", "b", "李女士") for pid in (unrelated, elsewhere, MISSING)]
    await set_status(rt, offered, AppealStatus.CLOSED)  # closed while she decides
    refusals.append(await say(rt, "加入支持", "b", "李女士"))
    assert all(r == refusals[0] for r in refusals), refusals
    assert len(refusals[0]) == 1 and "无法加入" in refusals[0][0]
    assert await count(rt, AppealSupporter) == 0
    assert [(await appeal(rt, p)).supporters for p in (offered, unrelated, elsewhere)] == [1, 1, 1]
    assert await count(rt, OutboxEntry, OutboxEntry.action == "update") == 0, "no '+1' to any backend"

    # Refused, she still files her own appeal from the summary.
    filed = await say(rt, "/confirm", "b", "李女士")
    assert "已提交" in filed[0]

    # Outside a dialog, a join of someone else's appeal is refused in the same words.
    await say(rt, "你好", "d", "丁先生")  # not his first message: no privacy notice
    assert await say(rt, f"/support {unrelated}", "d", "丁先生") == refusals[0]


async def test_a_supporter_hears_only_the_public_progress(make_runtime: MakeRuntime) -> None:
    rt = await make_runtime(forwarder=False)
    public_id = await file_appeal(rt, "9栋电梯坏了，我住502室，电话13812345678", who="qian", name="钱阿姨")
    offer = await until_offer(rt, "9栋电梯坏了", who="sun", name="孙先生")
    assert public_id in offer[0]
    assert "13812345678" not in offer[0] and "502" not in offer[0], "the offer masks her phone and flat"
    joined = await say(rt, "加入支持", "sun", "孙先生")
    assert "2位居民" in joined[0]

    await set_status(rt, public_id, AppealStatus.ASSIGNED, "已联系502室钱阿姨，电话13812345678")
    sun, qian = await person_id(rt, "sun"), await person_id(rt, "qian")
    async with rt.db.unit_of_work() as uow:
        rows = (
            await uow.session.execute(select(OutboxEntry).where(OutboxEntry.action == "notify"))
        ).scalars()
        texts = {row.payload["person_id"]: row.payload["reply"]["text"] for row in rows}
    assert set(texts) == {sun, qian}
    assert "已联系502室钱阿姨" in texts[qian], "the reporter reads the handling note"
    to_sun = texts[sun]
    assert public_id in to_sun and AppealStatus.ASSIGNED.label in to_sun and "支持的" in to_sun
    for private_detail in ("502", "12345678", "钱阿姨", "已联系"):
        assert private_detail not in to_sun, to_sun


async def test_ids_of_others_appeals_are_answered_like_missing_ones(make_runtime: MakeRuntime) -> None:
    rt = await make_runtime(forwarder=False)
    public_id = await file_appeal(rt, "8栋地下车库积水很深", who="zhao", name="赵大爷")
    await set_status(rt, public_id, AppealStatus.RESOLVED, "积水已清理")
    await say(rt, "你好", "li", "李先生")  # not his first message: no privacy notice
    for command in ("/rate {} satisfied", "/rate {} unsatisfied", "/status {}", "{}的进度怎么样了"):
        stranger = await say(rt, command.format(public_id), "li", "李先生")
        missing = await say(rt, command.format(MISSING), "li", "李先生")
        assert stranger == missing, (command, stranger, missing)
        assert public_id not in "".join(stranger)
    a = await appeal(rt, public_id)
    assert a.rating is None and a.status == AppealStatus.RESOLVED.value


async def test_an_appeals_own_people_look_it_up_by_id(make_runtime: MakeRuntime) -> None:
    rt = await make_runtime(forwarder=False)
    public_id = await file_appeal(rt, "9栋电梯坏了，我住502室，电话13812345678", who="qian", name="钱阿姨")
    await until_offer(rt, "9栋电梯坏了", who="sun", name="孙先生")
    await say(rt, "加入支持", "sun", "孙先生")
    await set_status(rt, public_id, AppealStatus.ASSIGNED, "已联系502室钱阿姨")

    own = "\n".join(await say(rt, f"/status {public_id}", "qian", "钱阿姨"))
    assert public_id in own and AppealStatus.ASSIGNED.label in own and "已联系502室钱阿姨" in own
    supported = "\n".join(await say(rt, f"/status {public_id}", "sun", "孙先生"))
    assert public_id in supported and AppealStatus.ASSIGNED.label in supported
    for private_detail in ("502", "13812345678", "钱阿姨"):
        assert private_detail not in supported, supported
    # A supporter may not rate it: told so, as someone who knows the appeal anyway.
    await set_status(rt, public_id, AppealStatus.RESOLVED)
    rated = await say(rt, f"/rate {public_id} satisfied", "sun", "孙先生")
    assert "只有反映" in rated[0] and (await appeal(rt, public_id)).rating is None
