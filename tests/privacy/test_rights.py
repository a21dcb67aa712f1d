"""A resident's rights over their data, exercised in chat and by staff with ``huiyin admin``: the notice
at first private contact (with a page the server serves), consent before a phone is kept, withdrawing an
appeal, seeing what is held, and erasing it — after which the database holds neither their phone nor
their words, and the console and its CSV show nothing personal of their old appeals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import select

from bot.db.models import Appeal, AppealStatus, AuditEntry, Base, OutboxEntry, Person
from bot.message import ChatType
from bot.runtime import Runtime
from integrations.backend.forwarder import Forwarder
from integrations.backend.reference import ReferenceBackend
from tests.backend.conftest import APPEAL_ID, appeal, in_group, private, run_until, webhook_settings
from tests.staff.conftest import World, login

MakeRuntime = Callable[..., Awaitable[Runtime]]
PHONE = "13912345678"
WORDS = "厨房水管爆了水漫金山快来人"


async def say(rt: Runtime, text: str, who: str = "wang", name: str = "王阿姨") -> list[str]:
    return [r.text for r in await rt.dispatcher.handle(private(text, who=who, name=name))]


async def file_with_phone(
    rt: Runtime, who: str = "wang", name: str = "王阿姨", phone: str = PHONE, building: str = "3"
) -> str:
    """An appeal at <building>栋2单元1201 with the resident's phone, filed through the form."""
    for step in (f"{building}栋2单元1201{WORDS}", "跳过", phone):
        await say(rt, step, who, name)
    replies = await say(rt, "/confirm", who, name)
    found = next((m for r in replies if (m := APPEAL_ID.search(r))), None)
    assert found, replies
    return found.group(0)


async def person_of(rt: Runtime, public_id: str) -> Person:
    a = await appeal(rt, public_id)
    async with rt.db.unit_of_work() as uow:
        person = await uow.session.get(Person, a.reporter_id)
        assert person is not None
        return person


async def scan_database(rt: Runtime, *needles: str) -> list[str]:
    """Every (table, column) of the whole database where one of ``needles`` appears."""
    found: list[str] = []
    async with rt.db.unit_of_work() as uow:
        for table in Base.metadata.sorted_tables:
            for row in (await uow.session.execute(select(table))).mappings():
                for column, value in row.items():
                    if value is None or isinstance(value, (int, float, bool)):
                        continue
                    text = (
                        value
                        if isinstance(value, str)
                        else json.dumps(value, ensure_ascii=False, default=str)
                    )
                    found.extend(f"{table.name}.{column}: {n}" for n in needles if n in text)
    return found


# --- notice and consent -----------------------------------------------------------------------------
async def test_the_first_private_contact_brings_the_notice_once_with_a_page_the_server_serves(
    world: World, console: httpx.AsyncClient
) -> None:
    first = await world.say("你好")
    assert len(first) == 1 and "隐私说明" in first[-1] and "/privacy" in first[-1], first
    assert first[0].startswith(world.rt.dispatcher.words.get("greet", bot_name="回音")), "the answer first"
    assert "删除我的信息" in first[-1] and "180天" in first[-1]
    again = await world.say("你好")
    assert not any("隐私说明" in t for t in again), "once"
    in_group = await world.say(
        "@回音 楼道灯坏了找谁", chat_type=ChatType.GROUP, chat_id="grp-1", who="res-li", name="李"
    )
    assert not any("隐私说明" in t for t in in_group), "never in a group"

    page = await console.get("/privacy")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for fact in ("保存什么", "谁能看到", "180 天", "我的信息", "删除我的信息", "撤回"):
        assert fact in page.text, fact


async def test_a_form_moving_from_a_group_into_a_first_private_chat_brings_the_notice_there(
    make_runtime: MakeRuntime,
) -> None:
    rt = await make_runtime()
    out = [r for step in ("@回音 3栋楼道灯坏了", "跳过") for r in await rt.dispatcher.handle(in_group(step))]
    private_texts = [r.text for r in out if r.chat_id == "wang"]
    assert any("隐私说明" in t for t in private_texts), [r.text for r in out]
    assert not any("隐私说明" in r.text for r in out if r.chat_id != "wang"), "not in the group"


async def test_a_phone_is_kept_only_when_given_in_answer_to_the_contact_question(
    make_runtime: MakeRuntime,
) -> None:
    rt = await make_runtime()
    asked = []
    for step in ("3栋2单元楼道灯坏了", "跳过"):
        asked = await say(rt, step)
    assert "只用于办理您的诉求" in asked[0] and "办结180天后删除" in asked[0], asked
    await say(rt, PHONE)
    filed = await say(rt, "/confirm")
    found = APPEAL_ID.search(filed[0])
    assert found, filed
    person = await person_of(rt, found.group(0))
    assert person.phone == PHONE and person.consent_at is not None
    assert (await appeal(rt, found.group(0))).contact_phone == PHONE


async def test_refusing_the_phone_still_files_the_appeal_and_keeps_no_number(
    make_runtime: MakeRuntime,
) -> None:
    rt = await make_runtime()
    for step in ("3栋2单元楼道灯坏了", "跳过", "不留电话"):
        await say(rt, step, who="zhou", name="周阿姨")
    filed = await say(rt, "/confirm", who="zhou", name="周阿姨")
    found = APPEAL_ID.search(filed[0])
    assert found, filed
    person = await person_of(rt, found.group(0))
    assert person.phone is None and person.consent_at is None
    assert (await appeal(rt, found.group(0))).contact_phone is None
    # The next report asks again, offering no saved number.
    await say(rt, "5栋电梯坏了", who="zhou", name="周阿姨")
    asked = await say(rt, "跳过", who="zhou", name="周阿姨")
    assert "上次留的号码" not in asked[0] and "只用于办理您的诉求" in asked[0], asked


# --- withdraw -----------------------------------------------------------------------------------------
async def test_the_reporter_withdraws_an_appeal_and_its_handlers_and_the_city_are_told(
    make_runtime: MakeRuntime, reference: Callable[..., ReferenceBackend]
) -> None:
    server = reference()
    rt = await make_runtime(**webhook_settings(server.webhook_url))
    public_id = await file_with_phone(rt)
    forwarder = Forwarder(rt.db, rt.settings, outbound=rt.outbound)

    async def filed() -> bool:
        return (await appeal(rt, public_id)).backend_id is not None

    await run_until(forwarder, filed)

    stranger = await say(rt, f"撤回 {public_id}", who="li", name="李先生")
    assert "只有提交人或代报的楼长可以撤回" in stranger[0]
    assert (await appeal(rt, public_id)).status == AppealStatus.SUBMITTED.value

    done = await say(rt, f"撤回 {public_id}")
    assert "已撤回" in done[0], done
    a = await appeal(rt, public_id)
    assert a.status == AppealStatus.WITHDRAWN.value and a.withdrawn_at is not None

    async def told_city() -> bool:
        return any("撤回" in json.dumps(u, ensure_ascii=False) for u in server.updates)

    await run_until(forwarder, told_city)
    again = await say(rt, f"撤回 {public_id}")
    assert "已撤回" in again[0] and "不需要撤回" in again[0], again
    # A later status from the city does not bring a withdrawn appeal back.
    from bot.appeals.status import may_change

    assert not may_change(AppealStatus.WITHDRAWN, AppealStatus.ACCEPTED)


async def test_withdraw_without_an_id_lists_the_open_appeals_and_in_a_form_the_form_waits(
    make_runtime: MakeRuntime,
) -> None:
    rt = await make_runtime()
    assert "没有正在办理" in (await say(rt, "撤回诉求"))[0]
    public_id = await file_with_phone(rt)
    listed = await rt.dispatcher.handle(private("撤回诉求"))
    assert public_id in listed[0].text and any(public_id in b.payload for b in listed[0].buttons)
    await say(rt, "5栋电梯坏了")  # a new form, at its photo question
    during = await say(rt, f"撤回 {public_id}")
    assert "已撤回" in during[0] and len(during) == 2, during
    cancelled = await say(rt, "撤回")
    assert "取消" in cancelled[0], "a bare 撤回 inside a form still cancels the form"


async def test_the_staff_chat_hears_of_a_withdrawal(world: World) -> None:
    await world.staff_chat("staff-grp", world.demo)
    for step in ("3栋2单元1201楼道灯坏了", "跳过", "不留"):
        await world.say(step)
    public_id = APPEAL_ID.search((await world.say("/confirm"))[0])
    assert public_id
    await world.say(f"撤回 {public_id.group(0)}")
    async with world.rt.db.unit_of_work() as uow:
        rows = (await uow.session.scalars(select(OutboxEntry).where(OutboxEntry.action == "notify"))).all()
    to_staff = [r.payload["reply"]["text"] for r in rows if r.payload["reply"]["chat_id"] == "staff-grp"]
    assert any("已由居民撤回" in t for t in to_staff), to_staff


# --- see what is held -------------------------------------------------------------------------------
async def test_my_data_shows_what_is_held_in_private_only(make_runtime: MakeRuntime) -> None:
    rt = await make_runtime()
    public_id = await file_with_phone(rt)
    shown = await say(rt, "我的信息")
    assert PHONE in shown[0] and public_id in shown[0] and "王阿姨" in shown[0] and "聊天记录" in shown[0]
    answered = await rt.dispatcher.handle(in_group("@回音 我的信息"))
    group_texts = [r.text for r in answered if r.chat_id == "grp-3"]
    assert group_texts and not any(PHONE in t or public_id in t for t in group_texts), group_texts
    assert any(PHONE in r.text for r in answered if r.chat_id == "wang")


# --- erase --------------------------------------------------------------------------------------------
async def test_erase_needs_a_fresh_confirmation(make_runtime: MakeRuntime) -> None:
    rt = await make_runtime()
    public_id = await file_with_phone(rt)
    assert "请先发送" in (await say(rt, "确认删除"))[0], "nothing was asked"
    asked = await rt.dispatcher.handle(private("删除我的信息"))
    assert "确定要删除" in asked[0].text and "/erase confirm" in [b.payload for b in asked[0].buttons]
    assert "没有删除" in (await say(rt, "/erase cancel"))[0]
    assert (await person_of(rt, public_id)).phone == PHONE
    assert "群里" not in (await say(rt, "删除我的信息"))[0]
    in_group_reply = await rt.dispatcher.handle(in_group("@回音 删除我的信息"))
    assert "私聊" in in_group_reply[0].text


async def test_after_erasure_the_phone_and_the_words_are_in_no_table_and_the_console_shows_nothing(
    world: World, console: httpx.AsyncClient
) -> None:
    rt = world.rt
    public_id = await file_with_phone(rt, who="res-wang")
    closed = await file_with_phone(rt, who="res-wang", building="8")
    await world.say("@回音 楼道灯坏了找谁，我家1201水漫金山", chat_type=ChatType.GROUP, chat_id="grp-1")
    async with rt.db.unit_of_work() as uow:
        from bot.appeals.status import change_status, lock_appeal

        a = await lock_appeal(uow.session, (await appeal(rt, closed)).id)
        assert a is not None
        await change_status(
            uow.session,
            a,
            AppealStatus.RESOLVED,
            note=f"师傅已上门，电话{PHONE}",
            actor="staff:1",
            words=rt.dispatcher.words,
        )
        await uow.commit()
    await login(console, "lina")
    page = await console.get(f"/staff/appeals/{public_id}")
    assert PHONE in page.text, "staff see the phone before"
    async with rt.db.unit_of_work() as uow:
        views = (
            await uow.session.scalars(select(AuditEntry).where(AuditEntry.action == "appeal.phone_view"))
        ).all()
    assert [v.target_id for v in views] == [public_id], "each view of a phone is audited"
    assert await scan_database(rt, PHONE, WORDS)

    await world.say("删除我的信息")
    erased = await world.say("确认删除")
    assert "已删除您的个人信息" in erased[0], erased

    assert await scan_database(rt, PHONE, WORDS, "王阿姨", "水漫金山") == []
    for pid in (public_id, closed):
        a = await appeal(rt, pid)
        assert a.room is None and a.contact_phone is None and a.personal_data_removed_at is not None
        assert a.category is not None or a.kb_matter_id is not None or a.responsible_party is not None
    assert (await appeal(rt, public_id)).status == AppealStatus.WITHDRAWN.value, "open ones are withdrawn"
    assert (await appeal(rt, closed)).status == AppealStatus.RESOLVED.value, "statistics kept"

    page = await console.get(f"/staff/appeals/{public_id}")
    assert page.status_code == 200 and PHONE not in page.text and "水漫金山" not in page.text
    assert "王阿姨" not in page.text
    exported = await console.get("/staff/appeals.csv")
    assert exported.status_code == 200 and public_id in exported.text
    assert PHONE not in exported.text and "水漫金山" not in exported.text and "1201" not in exported.text

    # She may come back: a fresh start, without errors.
    back = await world.say("你好")
    assert back and "隐私说明" in back[-1]
    assert "没有保存" in (await world.say("我的信息"))[0] or PHONE not in (await world.say("我的信息"))[0]


async def test_staff_and_building_leaders_cannot_erase_themselves_in_chat(world: World) -> None:
    code = await world.invite(world.demo, "building_leader", buildings=["3"])
    await world.say(code, who="leader-zhang", name="张楼长")
    asked = await world.say("删除我的信息", who="leader-zhang", name="张楼长")
    assert "联系社区" in asked[0], asked


async def test_admin_erases_a_resident_who_asked_by_telephone(
    make_runtime: MakeRuntime, monkeypatch: Any
) -> None:
    from click.testing import CliRunner

    from bot.cli import main

    rt = await make_runtime()
    public_id = await file_with_phone(rt)
    for name, value in {
        "HUIYIN_DATA_DIR": str(rt.settings.data_dir),
        "DATABASE_URL": rt.settings.database_url or "",
        "REDIS_URL": rt.settings.redis_url or "",
    }.items():
        if value:
            monkeypatch.setenv(name, value)
    runner = CliRunner()

    async def admin(*args: str) -> Any:  # the command runs its own event loop
        return await asyncio.to_thread(runner.invoke, main, ["admin", *args])

    shown = await admin("resident-data", "--phone", PHONE)
    assert shown.exit_code == 0 and public_id in shown.output, shown.output
    done = await admin("erase-person", "--appeal", public_id, "--yes")
    assert done.exit_code == 0, done.output
    assert await scan_database(rt, PHONE, WORDS) == []
    async with rt.db.unit_of_work() as uow:
        entry = await uow.session.scalar(select(AuditEntry).where(AuditEntry.action == "person.erase"))
        assert entry is not None and entry.detail.get("via") == "cli"
    unknown = await admin("erase-person", "--phone", "13800000000", "--yes")
    assert unknown.exit_code != 0 and "nobody" in unknown.output
    _ = Appeal


async def test_the_phrasings_residents_used_reach_their_rights_not_a_list_or_a_person(
    make_runtime: MakeRuntime,
) -> None:
    """ "撤回诉求 HY-…" used to list the appeals and "删除我的个人信息" to queue the conversation for staff."""
    rt = await make_runtime()
    public_id = await file_with_phone(rt)
    done = await say(rt, f"撤回诉求 {public_id}")
    assert "已撤回" in done[0], done
    assert (await appeal(rt, public_id)).status == AppealStatus.WITHDRAWN.value
    asked = await rt.dispatcher.handle(private("删除我的个人信息"))
    assert "确定要删除" in asked[0].text and "/erase confirm" in [b.payload for b in asked[0].buttons]
    async with rt.db.unit_of_work() as uow:
        from bot.db.models import Handoff

        assert (await uow.session.scalars(select(Handoff))).first() is None, "not queued for a person"
