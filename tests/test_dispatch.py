"""The dispatcher end to end (real NLU, KB, database and state store), on both storage setups."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.db.models import Appeal, AppealEvent, OutboxEntry, TranscriptMessage
from bot.message import IncomingMessage, Platform, Reply, Target
from bot.nlu.base import NLUBackend
from bot.runtime import Runtime
from bot.settings import Settings
from bot.state import ConversationKey
from tests.conftest import GROUP

Msg = Callable[..., IncomingMessage]
APPEAL_ID = re.compile(r"HY-\d{8}-\d{4}")


async def count(rt: Runtime, model: Any, *where: Any) -> int:
    async with rt.db.unit_of_work() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def appeals(rt: Runtime) -> list[Appeal]:
    async with rt.db.unit_of_work() as uow:
        return list((await uow.session.execute(select(Appeal).order_by(Appeal.id))).scalars())


def texts(replies: list[Reply]) -> str:
    return "\n".join(r.text for r in replies)


async def test_group_chatter_is_ignored_and_not_recorded(runtime: Runtime, group_msg: Msg) -> None:
    for text in ["今天天气不错", "楼下的快递到了吗", "晚上一起跳广场舞"]:
        assert await runtime.dispatcher.handle(group_msg(text)) == []
    assert await count(runtime, TranscriptMessage) == 0


@pytest.mark.parametrize(
    "how",
    [
        {"text": "@回音 你好", "mention": True},
        {"text": "回音，你好"},
        {"text": "/help"},
        {"text": "你好", "reply_to_bot": True},
    ],
)
async def test_group_addressing(runtime: Runtime, group_msg: Msg, how: dict[str, Any]) -> None:
    text = how.pop("text")
    replies = await runtime.dispatcher.handle(group_msg(text, **how))
    assert replies and replies[0].target is Target.CHAT
    assert replies[0].text.startswith("@王阿姨 ")


async def test_full_appeal_from_a_group(runtime: Runtime, group_msg: Msg, private_msg: Msg) -> None:
    handle = runtime.dispatcher.handle
    replies = await handle(group_msg("@回音 3栋2单元502厨房漏水了", mention=True))
    assert "照片" in texts(replies)
    replies = await handle(group_msg("没有照片"))  # no mention needed: she is in a form here
    group_lines = [r for r in replies if r.target is Target.CHAT]
    private_lines = [r for r in replies if r.target is Target.PRIVATE]
    assert group_lines and "私聊" in group_lines[0].text
    assert private_lines and private_lines[0].chat_id == "wang" and "手机号" in private_lines[0].text
    replies = await handle(private_msg("13812345678"))
    assert "502室" in texts(replies) and "13812345678" in texts(replies)
    replies = await handle(private_msg("/confirm"))
    created = APPEAL_ID.search(texts(replies))
    assert created
    notice = [r for r in replies if r.chat_id == "group-3"]
    assert notice and created.group(0) in notice[0].text
    assert "1381" not in notice[0].text and "502" not in notice[0].text
    [appeal] = await appeals(runtime)
    assert appeal.public_id == created.group(0)
    assert (appeal.building, appeal.unit, appeal.room) == ("3", "2", "502")
    assert appeal.contact_phone == "13812345678"
    assert appeal.origin_chat == "group-3" and appeal.origin_chat_type == "group"
    assert appeal.responsible_party is not None
    assert appeal.destination == "community" and appeal.resolution_due_at is not None
    assert await count(runtime, OutboxEntry, OutboxEntry.appeal_id == appeal.id) == 0, (
        "no city backend: the community's case desk handles it, nothing waits for a backend"
    )
    assert await count(runtime, AppealEvent, AppealEvent.appeal_id == appeal.id) == 1


async def test_three_neighbours_interleaved(runtime: Runtime, group_msg: Msg, private_msg: Msg) -> None:
    """Wang cancels, Li corrects his building, Zhang asks something else mid-form and resumes."""
    h = runtime.dispatcher.handle
    wang = {"who": "wang", "name": "王阿姨"}
    li = {"who": "li", "name": "李先生"}
    zhang = {"who": "zhang", "name": "小张"}

    await h(group_msg("@回音 我要报修", mention=True, **wang))
    await h(group_msg("@回音 3栋2单元楼道灯坏了", mention=True, **li))
    r = await h(group_msg("@回音 我要反映问题", mention=True, **zhang))
    assert "什么问题" in texts(r)
    await h(group_msg("楼道堆满了杂物", **wang))
    r = await h(group_msg("不对，是4栋", **li))
    assert "4栋" in texts(r)
    r = await h(group_msg("有人天天半夜放很大声的音乐", **zhang))
    assert "哪里" in texts(r)
    r = await h(group_msg("算了不报了", **wang))
    assert "取消" in texts(r)
    r = await h(group_msg("物业电话多少？", **zhang))
    assert "我们继续" in texts(r)
    await h(group_msg("2栋", **zhang))
    await h(group_msg("跳过", **li))
    await h(group_msg("/skip", **zhang))
    await h(private_msg("不留电话", **li))
    await h(private_msg("13900001111", **zhang))
    r_li = await h(private_msg("/confirm", **li))
    r_zhang = await h(private_msg("确认", **zhang))
    assert APPEAL_ID.search(texts(r_li)) and APPEAL_ID.search(texts(r_zhang))
    # Wang's group message after cancelling is chatter again.
    assert await h(group_msg("谢谢大家", **wang)) == []

    by_desc = {a.description: a for a in await appeals(runtime)}
    assert set(by_desc) == {"3栋2单元楼道灯坏了", "有人天天半夜放很大声的音乐"}
    assert by_desc["3栋2单元楼道灯坏了"].building == "4" and by_desc["3栋2单元楼道灯坏了"].unit == "2"
    noise = by_desc["有人天天半夜放很大声的音乐"]
    assert noise.building == "2" and noise.contact_phone == "13900001111"
    ids = sorted(a.public_id for a in by_desc.values())
    assert [i[-4:] for i in ids] == ["0001", "0002"]


async def test_redelivered_message_has_one_effect(runtime: Runtime, private_msg: Msg) -> None:
    h = runtime.dispatcher.handle
    await h(private_msg("地下车库积水了", message_id="m1"))
    await h(private_msg("跳过", message_id="m2"))
    await h(private_msg("不留", message_id="m3"))
    first = await h(private_msg("/confirm", message_id="m4"))
    again = [await h(private_msg("/confirm", message_id="m4")) for _ in range(2)]
    assert again == [first, first]
    assert len(await appeals(runtime)) == 1
    assert await count(runtime, TranscriptMessage, TranscriptMessage.direction == "in") == 4


async def test_a_redelivery_after_redis_lost_its_data_replays_from_the_database(
    runtime: Runtime, private_msg: Msg, group_msg: Callable[..., IncomingMessage]
) -> None:
    """Redis forgot the dedup records (a restart of the embedded default is enough): the redelivered
    message is recognised from the transcript, answered with the first delivery's replies, buttons
    included, and has no second effect."""
    h = runtime.dispatcher.handle
    await h(private_msg("地下车库积水了", message_id="m1"))
    await h(private_msg("跳过", message_id="m2"))
    await h(private_msg("不留", message_id="m3"))
    first = await h(private_msg("/confirm", message_id="m4"))
    asked = await h(group_msg("@回音 5栋电梯坏了", who="li", name="李先生", mention=True, message_id="g1"))
    assert asked
    await runtime.store.redis.flushdb()
    assert await h(private_msg("/confirm", message_id="m4")) == first
    assert (
        await h(group_msg("@回音 5栋电梯坏了", who="li", name="李先生", mention=True, message_id="g1"))
        == asked
    )
    assert len(await appeals(runtime)) == 1
    assert await count(runtime, TranscriptMessage, TranscriptMessage.direction == "in") == 5
    # And the replay is remembered again: a third delivery is answered from Redis.
    assert await h(private_msg("/confirm", message_id="m4")) == first


async def test_half_finished_appeal_survives_a_restart(
    settings: Settings, shared_nlu: NLUBackend, runtime: Runtime, private_msg: Msg
) -> None:
    await runtime.dispatcher.handle(private_msg("我要报修"))
    await runtime.dispatcher.handle(private_msg("5栋外墙瓷砖掉下来了"))
    # A new process: with the in-process Redis every key is gone; with real Redis it is kept. Either way
    # the resident continues where she was.
    await runtime.store.redis.flushdb()
    second = await Runtime.start(settings, nlu=shared_nlu)
    try:
        r = await second.dispatcher.handle(private_msg("跳过"))
        assert "手机号" in texts(r)
        await second.dispatcher.handle(private_msg("不留"))
        r = await second.dispatcher.handle(private_msg("确认"))
        assert APPEAL_ID.search(texts(r))
        [appeal] = await appeals(second)
        assert appeal.description == "5栋外墙瓷砖掉下来了" and appeal.building == "5"
    finally:
        await second.close()


async def test_a_dialog_survives_redis_losing_its_data_while_running(
    runtime: Runtime, private_msg: Msg
) -> None:
    """Without a restart: the turn finds neither the state nor the "dialogs restored" key, and reads the
    durable copy from the database."""
    await runtime.dispatcher.handle(private_msg("我要报修"))
    await runtime.dispatcher.handle(private_msg("5栋外墙瓷砖掉下来了"))
    await runtime.store.redis.flushdb()
    r = await runtime.dispatcher.handle(private_msg("跳过"))
    assert "手机号" in texts(r)


async def test_a_dialog_turn_costs_one_database_round_trip(runtime: Runtime, private_msg: Msg) -> None:
    """The hot path, pinned: the transcript lines (in and out) and the conversation's UPDATE. On
    PostgreSQL that is one statement outside a transaction (no BEGIN, no COMMIT, no ping at checkout);
    on SQLite an INSERT and an UPDATE in one transaction. The dialog state, the dedup record, the lock
    and the held check come from Redis in two round trips."""
    from sqlalchemy import event

    await runtime.dispatcher.handoff.restore_markers(runtime.db)  # as `huiyin serve` does at start-up
    await runtime.dispatcher.handle(private_msg("地下车库积水了"))
    statements: list[str] = []

    def record(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        autocommit = conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
        statements.append(statement.split(None, 1)[0].upper() + (" (autocommit)" if autocommit else ""))

    redis = runtime.store.redis
    commands: list[str] = []
    execute = redis.execute_command

    async def count_command(*args: Any, **kwargs: Any) -> Any:
        commands.append(str(args[0]).upper())
        return await execute(*args, **kwargs)

    event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", record)
    redis.execute_command = count_command  # type: ignore[method-assign]
    try:
        r = await runtime.dispatcher.handle(private_msg("跳过"))
    finally:
        event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", record)
        del redis.execute_command
    assert "手机号" in texts(r)
    if runtime.db.is_sqlite:
        assert statements == ["INSERT", "UPDATE"], statements
    else:
        assert statements == ["WITH (autocommit)"], statements
    assert commands == ["EVALSHA", "EVALSHA"], commands


async def test_idle_dialog_expires_politely(runtime: Runtime, private_msg: Msg) -> None:
    await runtime.dispatcher.handle(private_msg("楼道灯坏了"))
    key = ConversationKey.of(private_msg("x"))
    state = await runtime.store.get_state(key)
    assert state is not None
    state["updated_at"] = time.time() - runtime.settings.dialog_idle_timeout_s - 5
    await runtime.store.put_state(key, state)
    r = await runtime.dispatcher.handle(private_msg("3栋"))
    assert "已自动取消" in texts(r) and "楼道灯坏了" in texts(r)
    assert await runtime.store.get_state(key) is None
    assert await appeals(runtime) == []


async def test_listen_mode_offers_once(runtime: Runtime, group_msg: Msg) -> None:
    h = runtime.dispatcher.handle
    assert await h(group_msg("楼道的灯坏了好几天了，黑漆漆的")) == []
    r = await h(group_msg("/listen on"))
    assert "旁听" in texts(r)
    offer = await h(group_msg("楼道的灯坏了好几天了，黑漆漆的", who="li", name="李先生"))
    assert len(offer) == 1 and "登记" in offer[0].text
    assert await h(group_msg("楼上一直漏水到我家", who="li", name="李先生")) == []  # cooldown
    assert await h(group_msg("今天天气不错", who="zhao", name="赵姐")) == []  # chatter stays ignored
    await h(group_msg("/listen off"))
    assert await h(group_msg("电梯又坏了", who="zhao", name="赵姐")) == []


async def test_ask_contact_answers_from_the_knowledge_base(runtime: Runtime, private_msg: Msg) -> None:
    r = await runtime.dispatcher.handle(private_msg("下水道堵了找谁"))
    assert r[0].buttons, "an ambiguous question is clarified with choices first"
    choice = r[0].buttons[-1].payload
    r = await runtime.dispatcher.handle(private_msg(choice))
    assert "物业" in texts(r)


async def test_status_lists_only_own_appeals(runtime: Runtime, private_msg: Msg, group_msg: Msg) -> None:
    h = runtime.dispatcher.handle
    for who in ("wang", "li"):
        await h(private_msg(f"{who}家门口路灯坏了", who=who))
        await h(private_msg("跳过", who=who))
        await h(private_msg("不留", who=who))
        await h(private_msg("确认", who=who))
    r = await h(private_msg("我的诉求进度", who="li"))
    assert "li家门口" in texts(r) and "wang家门口" not in texts(r)
    r = await h(group_msg("@回音 我的诉求进度", mention=True, who="li", name="李先生"))
    group = [x for x in r if x.target is Target.CHAT]
    private = [x for x in r if x.target is Target.PRIVATE]
    assert group and APPEAL_ID.search(group[0].text) is None
    assert private and APPEAL_ID.search(private[0].text)


@pytest.mark.parametrize(
    "text", ["", "   ", "😀😀😀", "\x00\x01garbage\xff", "a" * 5000, "漏水" * 1000, "Ｈｅｌｌｏ"]
)
async def test_odd_input_never_raises(runtime: Runtime, private_msg: Msg, text: str) -> None:
    replies = await runtime.dispatcher.handle(private_msg(text))
    assert replies


async def test_emergency_comes_first_even_mid_form(runtime: Runtime, private_msg: Msg) -> None:
    await runtime.dispatcher.handle(private_msg("我要报修"))
    r = await runtime.dispatcher.handle(private_msg("闻到很大的煤气味！"))
    assert "119" in texts(r) or "燃气" in texts(r)


async def test_a_failed_turn_leaves_no_stale_ids_behind(
    runtime: Runtime, private_msg: Msg, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn that fails before its commit rolls back the new resident's rows; the next turn must not
    reuse their ids (they would violate foreign keys)."""
    dispatcher = runtime.dispatcher

    async def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("failure in the middle of a turn")

    original = dispatcher._run_handlers
    monkeypatch.setattr(dispatcher, "_run_handlers", boom)
    with pytest.raises(RuntimeError):
        await dispatcher.handle(private_msg("楼道灯坏了", who="new-resident", message_id="f1"))
    monkeypatch.setattr(dispatcher, "_run_handlers", original)
    replies = await dispatcher.handle(private_msg("楼道灯坏了", who="new-resident", message_id="f2"))
    assert replies
    handled = (TranscriptMessage.platform_message_id == "f2") & (TranscriptMessage.direction == "in")
    assert await count(runtime, TranscriptMessage, handled) == 1


async def test_a_rebound_group_chat_is_answered_for_its_new_community(
    runtime: Runtime, group_msg: Callable[..., IncomingMessage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`huiyin admin bind-chat` moves a chat in the database; a running server must follow once its caches
    (the conversation's ids, the chat's settings) have aged out, without a restart."""
    from sqlalchemy import update

    import bot.turn.refs
    from bot.db.models import Chat

    ask = "@回音 楼道灯坏了找谁"
    first = await runtime.dispatcher.handle(group_msg(ask, mention=True, message_id="rebind-1"))
    assert "物业服务中心" in first[0].text  # demo has a property company
    async with runtime.db.unit_of_work() as uow:
        laoyuan = await uow.repo.conversations.community("laoyuan")
        await uow.session.execute(
            update(Chat).where(Chat.external_id == GROUP).values(community_id=laoyuan.id)
        )
        await uow.commit()
    again = await runtime.dispatcher.handle(group_msg(ask, mention=True, message_id="rebind-2"))
    assert again[0].text == first[0].text, "within the cache time the old binding still answers"

    # Both caches age out (60 s each in production).
    monkeypatch.setattr(bot.turn.refs, "REF_CACHE_TTL_S", 0.0)
    await runtime.store.redis.delete(runtime.store.chat_settings_name(Platform.REST, GROUP))
    moved = await runtime.dispatcher.handle(group_msg(ask, mention=True, message_id="rebind-3"))
    assert "老园社区" in moved[0].text and "物业服务中心" not in moved[0].text
