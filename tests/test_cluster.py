"""The suite's Redis paths on a real three-node Redis Cluster, started here on free loopback ports.

Every script of a turn must keep to one hash slot (see ``bot.state.Keys``): a key of another slot makes
the cluster answer CROSSSLOT. The dialogs below (an appeal filed end to end through REST, with its move
into the private chat, a redelivery, contended locks, group chatter, staff holding a conversation) are
the suite's own tests, imported and run again with ``REDIS_URL=redis+cluster://…``.

Real services only (PostgreSQL as in the real run); skipped without ``redis-server``/``redis-cli``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, ResponseError

import bot.state.keys
from bot.message import Platform
from bot.runtime import Runtime
from bot.settings import Settings
from bot.state import DIALOGS_COMPLETE, HELD_COMPLETE, ConversationKey, Keys, StateStore
from integrations.backend.reference import free_port
from tests.conftest import make_settings
from tests.outages import stop_processes
from tests.staff.conftest import cheap_password_hashing, world  # noqa: F401  (fixtures)
from tests.staff.test_handoff import (  # noqa: F401
    test_in_a_group_the_held_resident_reaches_staff_without_addressing_the_bot,
    test_take_over_reply_note_release,
)
from tests.test_concurrency import (  # noqa: F401
    test_a_dead_holders_lock_is_free_within_its_expiry,
    test_a_finishing_turn_hands_a_state_to_another_conversation,
    test_a_live_turn_slower_than_the_lock_expiry_keeps_its_lock,
    test_a_state_handed_to_another_conversation_waits_for_its_lock,
    test_dedup_and_offer_slots,
    test_fifty_concurrent_confirmations_make_one_appeal,
    test_lock_serializes_holders,
)
from tests.test_dispatch import (  # noqa: F401
    test_full_appeal_from_a_group,
    test_group_chatter_is_ignored_and_not_recorded,
    test_listen_mode_offers_once,
    test_redelivered_message_has_one_effect,
    test_three_neighbours_interleaved,
)
from tests.test_rest_channel import (  # noqa: F401
    client,
    test_a_message_id_reused_by_another_sender_is_not_a_redelivery,
    test_files_an_appeal_with_buttons_as_payloads,
    test_ignored_group_chatter_answers_an_empty_list,
)

pytestmark = [
    pytest.mark.real_services,
    pytest.mark.skipif(
        not (shutil.which("redis-server") and shutil.which("redis-cli")), reason="needs redis-server"
    ),
]


def _start_cluster(base: Path) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    ports = [free_port() for _ in range(3)]
    procs = []
    for port in ports:
        node = base / str(port)
        node.mkdir()
        procs.append(
            subprocess.Popen(
                [
                    "redis-server",
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes",
                    # Its own bus port: the default (port + 10000) may be taken or out of range.
                    "--cluster-port", str(free_port()),
                    "--cluster-config-file", str(node / "nodes.conf"),
                    "--dir", str(node),
                    "--save", "",
                    "--appendonly", "no",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
    for port in ports:
        _wait(lambda port=port: _cli(port, "ping") == "PONG")
    create = ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports)]
    subprocess.run([*create, "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True)
    for port in ports:
        _wait(lambda port=port: "cluster_state:ok" in _cli(port, "cluster", "info"))
    return procs, ports


def _cli(port: int, *args: str) -> str:
    done = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True)
    return done.stdout.strip()


def _wait(ready: object, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("the test cluster did not come up")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    procs, ports = _start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        stop_processes(procs)


@pytest.fixture
def settings(tmp_path: Path, cluster_url: str) -> Settings:
    """The suite's settings (the real database) with Redis on the test cluster: every imported test
    above runs on it through the ``runtime`` fixture."""
    return make_settings(tmp_path, redis_url=cluster_url)


async def test_the_store_is_on_a_cluster_and_the_markers_are_in_every_slot(runtime: Runtime) -> None:
    store = runtime.store
    assert store.cluster
    await runtime.dispatcher.handoff.restore_markers(runtime.db)  # as `huiyin serve` starts its staff jobs
    key = ConversationKey(Platform.REST, "group-3", "wang")
    names = [Keys.lock(key), Keys.seen(key, "m"), Keys.state(key), Keys.held(key)]
    assert len({key_slot(n.encode()) for n in names}) == 1, "one conversation, one slot"
    slot = key_slot(Keys.lock(key).encode())
    for marker in (DIALOGS_COMPLETE, HELD_COMPLETE):
        copy = Keys.slot_copy(marker, slot)
        assert key_slot(copy.encode()) == slot
        assert await store.redis.exists(copy), "start-up marked its restore complete in this slot"
    # A turn learns that, beside its conversation's keys, from the copy in its slot.
    flags = (Keys.held(key), HELD_COMPLETE, DIALOGS_COMPLETE)
    async with store.turn(key, "m-flags", flags) as turn:
        assert turn.flags == (False, True, True)
        await turn.finish(None, [], dedup_ttl_s=60)


async def test_a_node_that_lost_its_data_loses_only_its_own_markers(runtime: Runtime) -> None:
    """The 'complete' markers vouch for the keys of their slot: when the node holding a conversation is
    emptied, that conversation's turns ask the database again, the others' don't."""
    store = runtime.store
    await runtime.dispatcher.handoff.restore_markers(runtime.db)
    key = ConversationKey(Platform.REST, "lost", "lost")
    node = store.redis.get_node_from_key(Keys.lock(key))  # type: ignore[attr-defined]
    await store.redis.flushdb(target_nodes=node)  # type: ignore[call-arg]
    async with store.turn(key, "m-lost", (HELD_COMPLETE, DIALOGS_COMPLETE)) as turn:
        assert turn.flags == (False, False)
        await turn.finish(None, [], dedup_ttl_s=60)
    others = [
        k
        for k in (ConversationKey(Platform.REST, "kept", str(i)) for i in range(50))
        if store.redis.get_node_from_key(Keys.lock(k)) != node  # type: ignore[attr-defined]
    ]
    async with store.turn(others[0], "m-kept", (HELD_COMPLETE, DIALOGS_COMPLETE)) as turn:
        assert turn.flags == (True, True)
        await turn.finish(None, [], dedup_ttl_s=60)


async def test_keys_without_the_hash_tag_would_cross_slots(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the tags prevent (and what every test above meets without them): a turn's script on keys of
    different slots is refused."""
    monkeypatch.setattr(bot.state.keys, "_tagged", lambda tag, rest: f"hy:{rest}:{tag}")
    store = StateStore(runtime.store.redis, lock_timeout_s=5, lock_wait_s=1)
    # redis-py refuses it before sending (the server would answer CROSSSLOT).
    with pytest.raises((RedisClusterException, ResponseError), match=r"same key slot|CROSSSLOT"):
        async with store.turn(ConversationKey(Platform.REST, "group-3", "wang"), "m-untagged"):
            pass


async def test_group_chatter_on_a_cluster_reads_the_chat_settings_after_the_script(
    runtime: Runtime,
) -> None:
    store = runtime.store
    await store.set_chat_settings(Platform.REST, "g", {"listen": "1", "community": "demo"})
    held = Keys.held(ConversationKey(Platform.REST, "g", "u"))
    async with store.turn(
        ConversationKey(Platform.REST, "g", "u"),
        "c1",
        (held,),
        engaged_by=1,
        idle_hash=store.chat_settings_name(Platform.REST, "g"),
    ) as turn:
        assert turn.idle and turn.idle_hash == {"listen": "1", "community": "demo"}
