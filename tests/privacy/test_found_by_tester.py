"""Failures found by exploratory testing of the residents' data rights (each test names its bug). They
fail on main as it stands and should pass once the bug is fixed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.models import OutboxEntry
from bot.dialog.slots import mask_personal
from bot.message import ChatType
from bot.privacy.masking import GroupMasker
from integrations.backend.forwarder import Forwarder
from integrations.backend.reference import ReferenceBackend
from kb import load_knowledge_base
from tests.backend.conftest import APPEAL_ID, appeal, run_until, webhook_settings
from tests.conftest import rest_message
from tests.privacy.test_rights import PHONE, MakeRuntime, file_with_phone, say, scan_database
from tests.staff.conftest import World


# BUG: GroupMasker hides the KB's published numbers (12345, 12315, 12369, …) behind placeholders before
# masking, so a phone, plate or ID-card number that merely contains one of them is no longer recognised
# and reaches the residents' group whole.
@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("车主电话13812345678", "13812345678"),
        ("车牌粤B12345挡住消防通道", "粤B12345"),
        ("我手机18912348888", "18912348888"),
        ("身份证440301199012345678", "440301199012345678"),
    ],
)
def test_group_masker_masks_numbers_containing_a_published_short_number(text: str, secret: str) -> None:
    masker = GroupMasker.from_kb(load_knowledge_base())
    assert secret not in masker(text), masker(text)


# BUG: a flat number written on its own before 的/家/天 or after 楼/找 is not masked (seen in a staff
# reply into the group "车主是1201的业主" and in a building leader's list "1201的老人…").
@pytest.mark.parametrize(
    "text", ["车主是1201的业主", "502的王阿姨", "502家漏水", "楼上1201天天半夜噪音", "住12楼1201", "找502"]
)
def test_a_lone_flat_number_is_masked(text: str) -> None:
    masked = mask_personal(text)
    assert "1201" not in masked and "502" not in masked, masked


# BUG: a staff command sent in a residents' group (/queue) answers there, listing every waiting
# conversation of the community — other residents' names and problems — in the group.
async def test_staff_queue_in_a_residents_group_is_not_listed_there(world: World) -> None:
    code = await world.invite(world.demo, "staff", account=world.lina)
    await world.say(code, who="lina-chat", name="李娜")
    await world.say("楼上天天半夜噪音，他电话13900007777", who="res-he", name="何女士")
    await world.say("取消", who="res-he", name="何女士")
    await world.say("转人工", who="res-he", name="何女士")
    group = {"chat_type": ChatType.GROUP, "chat_id": "grp-3", "mentions_bot": True}
    replies = await world.rt.dispatcher.handle(rest_message("/queue", "lina-chat", "李娜", **group))
    in_group = [r.text for r in replies if r.chat_id == "grp-3"]
    assert in_group and not any("何女士" in t or "噪音" in t for t in in_group), in_group
    in_private = [r.text for r in replies if r.chat_id == "lina-chat"]
    assert any("何女士" in t for t in in_private), "the queue goes to her private chat"


# BUG: erasing a resident withdraws their open appeals but then deletes the undelivered notices of that
# withdrawal, so the staff chat (and the handler) never hear that the appeal is withdrawn — unlike
# 撤回 HY-…, which tells them.
async def test_the_staff_chat_hears_of_a_withdrawal_by_erasure(world: World) -> None:
    await world.staff_chat("staff-grp", world.demo)
    for step in ("3栋2单元1201楼道灯坏了", "跳过", "不留"):
        await world.say(step)
    assert APPEAL_ID.search((await world.say("/confirm"))[0])
    await world.say("删除我的信息")
    await world.say("确认删除")
    async with world.rt.db.unit_of_work() as uow:
        rows = (await uow.session.scalars(select(OutboxEntry).where(OutboxEntry.action == "notify"))).all()
    replies = [r.payload.get("reply", {}) for r in rows]
    to_staff = [r.get("text", "") for r in replies if r.get("chat_id") == "staff-grp"]
    assert any("撤回" in t for t in to_staff), to_staff


# BUG: `huiyin admin erase-person` without REDIS_URL (the embedded default) cannot reach the server's
# in-process Redis, so a half-finished form survives the erasure with the phone in it; the resident's
# next 确认提交 files a new appeal with the erased number and stores it on the person again.
async def test_admin_erasure_leaves_no_draft_that_brings_the_phone_back(
    make_runtime: MakeRuntime, monkeypatch: Any
) -> None:
    from click.testing import CliRunner

    from bot.cli import main

    rt = await make_runtime()
    public_id = await file_with_phone(rt)
    for step in ("7栋门禁坏了", "跳过", "/use_saved"):
        await say(rt, step)
    # The command reads the server's configuration: same data dir and database (and Redis, if any).
    monkeypatch.setenv("HUIYIN_DATA_DIR", str(rt.settings.data_dir))
    if rt.settings.database_url:
        monkeypatch.setenv("DATABASE_URL", rt.settings.database_url)
    if rt.settings.redis_url:
        monkeypatch.setenv("REDIS_URL", rt.settings.redis_url)
    done = await asyncio.to_thread(
        CliRunner().invoke, main, ["admin", "erase-person", "--appeal", public_id, "--yes"]
    )
    assert done.exit_code == 0, done.output
    await say(rt, "/confirm")
    assert await scan_database(rt, PHONE) == []


# BUG (low): erasure blanks the payload of every queued non-create outbox row of the person's appeals,
# the "withdrawn" update for the city included, so the city gets event appeal.withdrawn with an empty
# text (and, for Open311, ``case_open`` back at its default, true) instead of "居民已撤回该诉求".
async def test_the_city_hears_why_an_erased_residents_appeal_is_withdrawn(
    make_runtime: MakeRuntime, reference: Callable[..., ReferenceBackend]
) -> None:
    server = reference()
    rt = await make_runtime(**webhook_settings(server.webhook_url))
    forwarder = Forwarder(rt.db, rt.settings, outbound=rt.outbound)
    public_id = await file_with_phone(rt)
    await run_until(forwarder, partial(_at_the_city, rt, public_id))
    await say(rt, "删除我的信息")
    await say(rt, "确认删除")

    async def told_city() -> bool:
        return bool(server.updates)

    await run_until(forwarder, told_city)
    told = json.dumps(server.updates, ensure_ascii=False)
    assert "撤回" in told, told


async def _at_the_city(rt: Any, public_id: str) -> bool:
    return (await appeal(rt, public_id)).backend_id is not None
