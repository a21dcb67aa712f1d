"""Concurrent messages of one conversation: serialized by the conversation lock, exactly one appeal."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from bot.db.models import Appeal, TranscriptMessage
from bot.message import IncomingMessage, Platform
from bot.runtime import Runtime
from bot.state import ConversationKey, Keys, LockTimeout, StateStore
from integrations.backend.reference import free_port
from tests.conftest import REAL_DATABASE_URL, REAL_REDIS_URL, _reset_real_services, make_settings
from tests.outages import stop_processes

Msg = Callable[..., IncomingMessage]


async def _count(rt: Runtime, model: type) -> int:
    async with rt.db.unit_of_work() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model)) or 0)


async def test_lock_serializes_holders(runtime: Runtime) -> None:
    key = ConversationKey(Platform.REST, "c", "u")
    inside = 0
    peak = 0

    async def hold(i: int) -> None:
        nonlocal inside, peak
        async with runtime.store.turn(key, f"m{i}") as turn:
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.002)
            inside -= 1
            await turn.finish(None, [], dedup_ttl_s=60)

    await asyncio.gather(*(hold(i) for i in range(20)))
    assert peak == 1


async def test_fifty_concurrent_confirmations_make_one_appeal(runtime: Runtime, private_msg: Msg) -> None:
    h = runtime.dispatcher.handle
    await h(private_msg("地下车库积水了"))
    await h(private_msg("跳过"))
    await h(private_msg("不留"))
    results = await asyncio.gather(*(h(private_msg("/confirm", message_id=f"c{i}")) for i in range(50)))
    assert all(results), "every message is answered"
    assert await _count(runtime, Appeal) == 1
    created = [r for rs in results for r in rs if re.search(r"已提交，诉求编号 HY-\d{8}-\d{4}", r.text)]
    assert len(created) == 1, "exactly one message saw the appeal being created"
    # The other 49 are a double-clicked confirm: told the appeal is already filed, with its id.
    already = [r for rs in results for r in rs if "已经提交过了" in r.text]
    assert len(already) == 49
    assert await runtime.store.get_state(ConversationKey.of(private_msg("x"))) is None


async def test_fifty_concurrent_messages_keep_a_consistent_transcript(
    runtime: Runtime, private_msg: Msg
) -> None:
    h = runtime.dispatcher.handle
    await asyncio.gather(*(h(private_msg(f"第{i}条：楼道灯坏了", message_id=f"t{i}")) for i in range(50)))
    async with runtime.db.unit_of_work() as uow:
        rows = (
            await uow.session.execute(
                select(TranscriptMessage.platform_message_id).where(TranscriptMessage.direction == "in")
            )
        ).scalars()
        assert sorted(rows) == sorted(f"t{i}" for i in range(50))


async def test_dedup_and_offer_slots(runtime: Runtime) -> None:
    store: StateStore = runtime.store
    key = ConversationKey(Platform.REST, "c", "u")
    assert await store.seen(key, "m1") is None
    async with store.turn(key, "m1") as turn:
        await turn.finish(None, [{"text": "x"}], dedup_ttl_s=60)
    assert await store.seen(key, "m1") == [{"text": "x"}]
    # Per conversation: the same id from another sender, or in another chat, is a new message.
    assert await store.seen(ConversationKey(Platform.REST, "c", "someone else"), "m1") is None
    assert await store.seen(ConversationKey(Platform.REST, "other chat", "u"), "m1") is None
    assert await store.take_offer_slot(Platform.REST, "g", "u", 60)
    assert not await store.take_offer_slot(Platform.REST, "g", "u", 60)


async def test_a_turn_locks_reads_and_saves_in_one_piece(runtime: Runtime) -> None:
    store: StateStore = runtime.store
    key = ConversationKey(Platform.REST, "c", "u")
    await store.redis.set("flag-a", "1")
    async with store.turn(key, "m1", flags=("flag-a", "flag-b")) as turn:
        assert turn.replayed is None and turn.state is None and turn.flags == (True, False)
        assert await store.redis.exists(Keys.lock(key))
        await turn.finish({"dialog": "appeal"}, [{"text": "好的"}], dedup_ttl_s=60)
    assert not await store.redis.exists(Keys.lock(key))
    assert await store.get_state(key) == {"dialog": "appeal"}
    # The same message again: its replies, without taking the lock or touching the state.
    async with store.turn(key, "m1") as again:
        assert again.replayed == [{"text": "好的"}]
        assert not await store.redis.exists(Keys.lock(key))
    # A new message reads the state; finishing with None clears it.
    async with store.turn(key, "m2") as turn:
        assert turn.state == {"dialog": "appeal"}
        await turn.finish(None, [], dedup_ttl_s=60)
    assert await store.get_state(key) is None


async def test_a_failed_turn_releases_the_lock_and_records_nothing(runtime: Runtime) -> None:
    store: StateStore = runtime.store
    key = ConversationKey(Platform.REST, "c", "u")
    with pytest.raises(RuntimeError):
        async with store.turn(key, "m1"):
            raise RuntimeError("the database went away")
    assert not await store.redis.exists(Keys.lock(key))
    assert await store.seen(key, "m1") is None


async def test_a_turn_waits_for_the_lock_and_gives_up_in_time(runtime: Runtime) -> None:
    store = StateStore(runtime.store.redis, lock_timeout_s=30, lock_wait_s=0.3)
    key = ConversationKey(Platform.REST, "c", "u")
    async with store.turn(key, "m0") as holder:
        started = time.monotonic()
        with pytest.raises(LockTimeout):
            async with store.turn(key, "m1"):
                pass
        assert 0.3 <= time.monotonic() - started < 2
        await holder.finish(None, [], dedup_ttl_s=60)
    # A lock that someone else took over (ours expired) is not released by us.
    async with store.turn(key, "m2") as turn:
        await store.redis.set(Keys.lock(key), "another holder")
        await turn.finish(None, [], dedup_ttl_s=60)
    assert await store.redis.get(Keys.lock(key)) == "another holder"


async def test_a_state_handed_to_another_conversation_waits_for_its_lock(runtime: Runtime) -> None:
    store: StateStore = runtime.store
    key = ConversationKey(Platform.REST, "u", "u")
    async with store.turn(key, "m1") as holder:
        put = asyncio.create_task(store.put_state(key, {"dialog": "appeal"}))
        await asyncio.sleep(0.05)
        assert not put.done() and await store.get_state(key) is None
        await holder.finish(None, [], dedup_ttl_s=60)
    await asyncio.wait_for(put, 2)
    assert await store.get_state(key) == {"dialog": "appeal"}


async def test_a_finishing_turn_hands_a_state_to_another_conversation(runtime: Runtime) -> None:
    """The dialog moving into the private chat: saved there by the group turn's closing script, or, when
    a message of the private chat holds its lock, once that lock is free."""
    store: StateStore = runtime.store
    group, private = ConversationKey(Platform.REST, "g", "u"), ConversationKey(Platform.REST, "u", "u")
    async with store.turn(group, "m1") as turn:
        await turn.finish(None, [], dedup_ttl_s=60, also=(private, {"dialog": "appeal", "n": 1}))
    assert await store.get_state(private) == {"dialog": "appeal", "n": 1}
    assert not await store.redis.exists(Keys.lock(group))
    async with store.turn(private, "p1") as holder:
        async with store.turn(group, "m2") as turn:
            finish = asyncio.create_task(
                turn.finish(None, [], dedup_ttl_s=60, also=(private, {"dialog": "appeal", "n": 2}))
            )
            await asyncio.sleep(0.05)
            # The group turn is over (its lock released, its message recorded); the hand-over waits.
            assert not finish.done() and not await store.redis.exists(Keys.lock(group))
            assert await store.seen(group, "m2") == []
            assert await store.get_state(private) == {"dialog": "appeal", "n": 1}
        await holder.finish(holder.state, [], dedup_ttl_s=60)
    await asyncio.wait_for(finish, 2)
    assert await store.get_state(private) == {"dialog": "appeal", "n": 2}


async def test_a_turn_only_for_an_engaged_conversation(runtime: Runtime) -> None:
    """Group chatter: with ``engaged_by`` the turn is taken only when the resident has a dialog state or
    one of the first flag keys exists (staff hold the conversation); else nothing is held or recorded."""
    store: StateStore = runtime.store
    key = ConversationKey(Platform.REST, "g", "u")
    async with store.turn(key, "c1", flags=("held", "other"), engaged_by=1) as turn:
        assert turn.idle and turn.state is None and turn.idle_hash == {}
        assert not await store.redis.exists(Keys.lock(key))
    assert await store.seen(key, "c1") is None
    # What the caller needs for an idle conversation comes with the answer: the group's settings.
    settings = store.chat_settings_name(Platform.REST, "g")
    await store.set_chat_settings(Platform.REST, "g", {"listen": "1", "community": "demo"})
    async with store.turn(key, "c1", flags=("held", "other"), engaged_by=1, idle_hash=settings) as turn:
        assert turn.idle and turn.idle_hash == {"listen": "1", "community": "demo"}
    await store.redis.set("other", "1")  # not one of the flags that engage
    async with store.turn(key, "c2", flags=("held", "other"), engaged_by=1) as turn:
        assert turn.idle
    await store.redis.set("held", "1")
    async with store.turn(key, "c3", flags=("held", "other"), engaged_by=1, idle_hash=settings) as turn:
        assert not turn.idle and turn.flags == (True, True)  # the hash is not a flag
        await turn.finish({"dialog": "appeal"}, [], dedup_ttl_s=60)
    await store.redis.delete("held")
    async with store.turn(key, "c4", flags=("held", "other"), engaged_by=1) as turn:
        assert not turn.idle and turn.state == {"dialog": "appeal"}
        await turn.finish(turn.state, [], dedup_ttl_s=60)
    with pytest.raises(ValueError):
        async with store.turn(key, "c5", flags=("held",), engaged_by=2):
            pass


async def test_a_dead_holders_lock_is_free_within_its_expiry(runtime: Runtime, private_msg: Msg) -> None:
    """A holder that stops renewing (its process was killed mid-turn: played here by stopping its
    watchdog and never finishing) blocks the conversation for the lock's few seconds, not longer."""
    expiry = runtime.settings.lock_timeout_s
    assert expiry <= 5
    async with runtime.store.turn(ConversationKey.of(private_msg("x")), "dead-1") as dead:
        dead.stop_renewing()
        started = time.monotonic()
        replies = await runtime.dispatcher.handle(private_msg("你好", message_id="after-1"))
        waited = time.monotonic() - started
    assert replies and waited < expiry + 1.5, waited


async def test_a_live_turn_slower_than_the_lock_expiry_keeps_its_lock(runtime: Runtime) -> None:
    """The watchdog extends the lock while its holder works: nobody else gets in, however long it takes,
    and the lock is released when the turn ends."""
    store = StateStore(runtime.store.redis, lock_timeout_s=0.6, lock_wait_s=0.25)
    key = ConversationKey(Platform.REST, "c", "slow")
    async with store.turn(key, "slow-1") as holder:
        until = time.monotonic() + 2.0  # over three expiries
        while time.monotonic() < until:
            with pytest.raises(LockTimeout):
                async with store.turn(key, f"other-{until - time.monotonic():.2f}"):
                    pass
            assert await store.redis.get(Keys.lock(key)) == holder.token
        await holder.finish({"dialog": "appeal"}, [], dedup_ttl_s=60)
    assert not await store.redis.exists(Keys.lock(key))
    await asyncio.sleep(0.5)  # no renewal after the end brings it back
    assert not await store.redis.exists(Keys.lock(key))


_HOLD_AND_WAIT = """
import asyncio, sys
from bot.message import Platform
from bot.state import ConversationKey, StateStore

async def main() -> None:
    store = StateStore.from_url(sys.argv[1], lock_timeout_s=float(sys.argv[2]))
    async with store.turn(ConversationKey(Platform.REST, "killed", "killed"), "k-1"):
        print("held", flush=True)
        await asyncio.sleep(120)

asyncio.run(main())
"""


@pytest.mark.real_services
async def test_a_conversation_locked_by_a_killed_process_is_free_within_seconds(
    runtime: Runtime, private_msg: Msg
) -> None:
    """SIGKILL during a turn (a confirmation, say): the next message of that conversation gets through
    within the lock's expiry, as the dead process renews nothing."""
    expiry = runtime.settings.lock_timeout_s
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLD_AND_WAIT, REAL_REDIS_URL, str(expiry), stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"held"
        # Alive, it keeps the lock past its expiry.
        await asyncio.sleep(expiry * 1.5)
        assert await runtime.store.redis.exists(Keys.lock(ConversationKey(Platform.REST, "killed", "killed")))
        proc.kill()
        await proc.wait()
        started = time.monotonic()
        replies = await runtime.dispatcher.handle(private_msg("你好", who="killed", message_id="k-2"))
        waited = time.monotonic() - started
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert replies and waited < expiry + 1.5, waited


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[list[str]]:
    settings = make_settings(tmp_path)
    asyncio.run(_reset_real_services(settings))
    env = {
        **os.environ,
        "DATABASE_URL": REAL_DATABASE_URL,
        "REDIS_URL": REAL_REDIS_URL,
        "HUIYIN_DATA_DIR": str(tmp_path / "data"),
        "HUIYIN_LOG_LEVEL": "warning",
    }
    procs, urls, logs = [], [], []
    for n in range(2):
        port = free_port()
        cmd = [sys.executable, "-m", "bot", "serve", "--port", str(port)]
        # A file, not a pipe nobody reads: a server whose warnings filled the pipe would block on its
        # next write and never exit, and go on consuming the shared Redis' queues after the test.
        log = (tmp_path / f"server-{n}.log").open("wb")
        logs.append(log)
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        deadline = time.time() + 90
        for url, proc in zip(urls, procs, strict=True):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError((tmp_path / f"server-{procs.index(proc)}.log").read_text())
                try:
                    if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.time() > deadline:
                    raise TimeoutError(url)
                time.sleep(0.2)
        yield urls
    finally:
        stop_processes(procs, timeout_s=20)
        for log in logs:
            log.close()


@pytest.mark.real_services
async def test_two_processes_fifty_concurrent_messages_one_appeal(
    two_servers: list[str], tmp_path: Path
) -> None:
    a, b = two_servers
    url = "/webhooks/rest/webhook"
    async with httpx.AsyncClient(timeout=60) as client:
        for text, server in (("地下车库积水了", a), ("跳过", b), ("不留", a)):
            r = await client.post(server + url, json={"sender": "two-proc", "message": text})
            assert r.status_code == 200, r.text
        posts = [
            client.post(
                (a if i % 2 else b) + url,
                json={"sender": "two-proc", "message": "/confirm", "metadata": {"message_id": f"tp{i}"}},
            )
            for i in range(50)
        ]
        responses = await asyncio.gather(*posts)
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    created = [
        x for r in responses for x in r.json() if re.search(r"已提交，诉求编号 HY-\d{8}-\d{4}", x["text"])
    ]
    assert len(created) == 1
    rt = await Runtime.start(make_settings(tmp_path))
    try:
        assert await _count(rt, Appeal) == 1
        state = await rt.store.get_state(ConversationKey(Platform.REST, "two-proc", "two-proc"))
        assert state is None
    finally:
        await rt.close()


async def test_a_burst_larger_than_the_redis_pool_waits_for_a_connection(tmp_path: Path) -> None:
    """Past the client's connection limit a command waits for a free connection instead of failing (a
    burst of messages answered 503 for no outage at all)."""
    from bot.state import connect
    from tests.outages import disposable_redis

    with disposable_redis(tmp_path) as (url, _server):
        client = connect(url)
        try:
            # Each command holds its connection for 50 ms: 300 at once need three rounds of the pool.
            answers = await asyncio.gather(
                *(client.blpop([f"nothing-{i}"], timeout=0.05) for i in range(300))
            )
        finally:
            await client.aclose()
    assert answers == [None] * 300
