"""The state store: one Redis connection pool (real or fake) and a conversation's turns over it."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS

from bot.message import Platform
from bot.state.keys import ConversationKey, Keys
from bot.state.scripts import STATE_RETENTION_S, TurnScripts
from bot.state.turn import Turn

R = TypeVar("R")
CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
"""A ``REDIS_URL`` with one of these schemes names a node of a Redis Cluster (the rest of the cluster is
discovered from it): ``redis+cluster://10.0.0.5:7000``."""
CHAT_SETTINGS_TTL_S = 60
"""How long a group's cached settings (listen mode, community) are trusted before the database is asked
again: a chat rebound with ``huiyin admin bind-chat`` is seen by running servers within this time."""


class LockTimeout(Exception):
    """The conversation lock could not be taken in time (another message of it is still being handled)."""


class StateStore:
    """Dialog state, locks and dedup over one Redis connection pool (real or fake)."""

    def __init__(self, redis: aioredis.Redis, *, lock_timeout_s: float, lock_wait_s: float) -> None:
        self.redis = redis
        # On a Redis Cluster a turn's scripts keep to the conversation's slot: what else the opening
        # script reads on one server (the 'complete' markers, a group's settings) is read differently.
        self.cluster = isinstance(redis, RedisCluster)
        self._lock_timeout_s = lock_timeout_s
        self.lock_ms = max(1, int(lock_timeout_s * 1000))
        # A third of the expiry: a renewal may be late by up to two thirds (a stalled loop, a slow Redis)
        # before the lock is lost.
        self.renew_every_s = lock_timeout_s / 3
        self._lock_wait_s = lock_wait_s
        self.scripts = TurnScripts(redis)

    @classmethod
    def from_url(
        cls, url: str | None, *, lock_timeout_s: float = 5.0, lock_wait_s: float = 20.0
    ) -> StateStore:
        """Connect to ``url`` (a Redis Cluster with a ``redis+cluster://`` scheme), or start an in-process
        fakeredis when it is None (the ``embedded`` extra; :class:`RuntimeError` says so if it is not
        installed)."""
        client: aioredis.Redis
        if url:
            client = connect(url)
        else:
            client = _embedded_redis()
        return cls(client, lock_timeout_s=lock_timeout_s, lock_wait_s=lock_wait_s)

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    # --- turns and locks -----------------------------------------------------------------------------
    async def past_lock(self, key: ConversationKey, attempt: Callable[[], Awaitable[R | None]]) -> R:
        """``attempt()`` until it gets past ``key``'s lock (it answers None while another message holds
        it), polling every 10 ms up to the lock wait; then :class:`LockTimeout`. Channels wait the same
        way for a claim of their own on one of the conversation's messages."""
        deadline = time.monotonic() + self._lock_wait_s
        while (result := await attempt()) is None:
            if time.monotonic() >= deadline:
                raise LockTimeout(str(key))
            await asyncio.sleep(0.01)
        return result

    @asynccontextmanager
    async def turn(
        self,
        key: ConversationKey,
        message_id: str,
        flags: Sequence[str] = (),
        *,
        engaged_by: int = 0,
        idle_hash: str | None = None,
    ) -> AsyncIterator[Turn]:
        """Hold ``key``'s conversation for one message: the lock, the dedup check, the state read and the
        existence of each of the ``flags`` keys in one round trip; :meth:`Turn.finish` saves and releases
        in another.

        With ``engaged_by`` n, the turn is only for an engaged conversation: one with a dialog state, or
        with one of the first n ``flags`` keys. Otherwise :attr:`Turn.idle` is True and nothing is held,
        and :attr:`Turn.idle_hash` has the fields of the hash named ``idle_hash`` (what the caller needs
        for a message of an idle conversation: a group's chat settings). All in the same round trip: a
        group message not addressed to the bot pays no more to be ignored.

        Waits (polling every 10 ms) while another message of the conversation holds the lock, up to the
        lock wait, then raises :class:`LockTimeout`. The lock is taken before the state is read (aiogram's
        issue 1317: loading first and locking later lets two messages overwrite each other's dialog). A
        turn left without :meth:`Turn.finish` (an error) releases the lock and records nothing.

        The lock expires after ``lock_timeout_s`` (a few seconds) unless renewed: while the turn runs, a
        timer extends it every third of that (its token compared), and :meth:`Turn.finish` or leaving
        the turn stops it. A slow but live turn keeps its lock; a killed process's lock is gone within
        the expiry, not after the longest turn anyone may need.
        """
        lock, seen = Keys.lock(key), Keys.seen(key, message_id)
        turn = Turn(self, key, seen, secrets.token_hex(16))
        if not 0 <= engaged_by <= len(flags):
            raise ValueError(f"engaged_by={engaged_by} with {len(flags)} flags")
        keys = [lock, seen, Keys.state(key), *(Keys.in_slot_of(key, flags) if self.cluster else flags)]
        args: list[str | int] = [turn.token, self.lock_ms, engaged_by, "0"]
        # On a cluster the group's settings live in the chat's slot: read after the script, and only
        # when it finds the conversation idle (a second round trip for group chatter there).
        if idle_hash is not None and not self.cluster:
            keys.append(idle_hash)
            args[3] = "1"

        async def attempt() -> list[Any] | None:
            reply = cast(list[Any], await self.scripts.open_turn(keys=keys, args=args))
            return None if reply[0] == 0 else reply

        reply = await self.past_lock(key, attempt)
        if reply[0] == 3:
            turn.idle = turn.finished = True
            fields = reply[1]
            turn.idle_hash = dict(zip(fields[::2], fields[1::2], strict=True))
            if idle_hash is not None and self.cluster:
                turn.idle_hash = cast(dict[str, str], await self.redis.hgetall(idle_hash))
            yield turn
            return
        if reply[0] == 2:
            turn.replayed = cast(list[dict[str, Any]], json.loads(reply[1]))
            turn.finished = True
            yield turn
            return
        if reply[1] is not None:
            turn.state = cast(dict[str, Any], json.loads(reply[1]))
        turn.flags = tuple(bool(x) for x in reply[2:])
        # The lock lives a few seconds unless renewed: a timer, not a round trip per turn, so only a
        # turn longer than a third of the expiry pays for renewals; a killed process's lock expires.
        turn._renew_later()
        try:
            yield turn
        finally:
            turn.stop_renewing()
            if not turn.finished:
                await self.scripts.release(keys=[lock], args=[turn.token])

    async def mark_complete(self, marker: str) -> None:
        """Set one of the :data:`COMPLETE_MARKERS` (start-up restored what it vouches for): on a cluster,
        its copy in every hash slot, so that each turn finds one beside its conversation's keys."""
        if not self.cluster:
            await self.redis.set(marker, "1")
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for slot in range(REDIS_CLUSTER_HASH_SLOTS):
                pipe.set(Keys.slot_copy(marker, slot), "1")
            await pipe.execute()

    # --- dialog state --------------------------------------------------------------------------------
    async def get_state(self, key: ConversationKey) -> dict[str, Any] | None:
        raw = await self.redis.get(Keys.state(key))
        return None if raw is None else cast(dict[str, Any], json.loads(raw))

    async def put_state(self, key: ConversationKey, state: dict[str, Any]) -> None:
        """Save ``key``'s state from outside its turns (a dialog moving into the resident's private chat),
        waiting while a message of that conversation holds its lock, in one round trip."""
        keys = [Keys.lock(key), Keys.state(key)]
        args: list[str | int] = [json.dumps(state, ensure_ascii=False), STATE_RETENTION_S]

        async def attempt() -> int | None:
            return cast(int, await self.scripts.put_state(keys=keys, args=args)) or None

        await self.past_lock(key, attempt)

    async def restore_state(self, conversation_key: str, state: dict[str, Any]) -> bool:
        """Put a durable copy of a dialog back, unless Redis has a state for that conversation already
        (``conversation_key`` as stored in ``conversation.key``). True if it was put back."""
        name = Keys.state(conversation_key)
        dumped = json.dumps(state, ensure_ascii=False)
        return bool(await self.redis.set(name, dumped, nx=True, ex=STATE_RETENTION_S))

    async def forget_dialogs(self, conversation_keys: Sequence[str]) -> None:
        """Drop the dialog states of these conversations (as stored in ``conversation.key``): their
        person's data was erased."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for conversation_key in conversation_keys:
                pipe.delete(Keys.state(conversation_key))
            await pipe.execute()

    async def has_state(self, key: ConversationKey) -> bool:
        return bool(await self.redis.exists(Keys.state(key)))

    # --- dedup ---------------------------------------------------------------------------------------
    async def seen(self, key: ConversationKey, message_id: str) -> list[dict[str, Any]] | None:
        """The replies recorded for an already handled message of ``key``'s conversation, or None if it
        is new."""
        raw = await self.redis.get(Keys.seen(key, message_id))
        return None if raw is None else cast(list[dict[str, Any]], json.loads(raw))

    # --- listen mode ---------------------------------------------------------------------------------
    async def take_offer_slot(self, platform: Platform, chat_id: str, user_id: str, cooldown_s: int) -> bool:
        """True at most once per cooldown per resident and group: listen mode must not flood a group."""
        if cooldown_s <= 0:
            return True
        return bool(
            await self.redis.set(
                Keys.offer(ConversationKey(platform, chat_id, user_id)), "1", nx=True, ex=cooldown_s
            )
        )

    @staticmethod
    def chat_settings_name(platform: Platform, chat_id: str) -> str:
        """The Redis key of a chat's cached settings (a hash: listen, community)."""
        return Keys.chat_settings(platform, chat_id)

    async def set_chat_settings(self, platform: Platform, chat_id: str, values: dict[str, str]) -> None:
        name = self.chat_settings_name(platform, chat_id)
        await self.redis.hset(name, mapping=dict(values))  # type: ignore[arg-type]
        await self.redis.expire(name, CHAT_SETTINGS_TTL_S)


REDIS_POOL_SIZE = 200
"""Connections one process keeps to a Redis server at most (a command holds one for a round trip)."""
REDIS_POOL_WAIT_S = 5.0
"""How long a command waits for a free connection of a full pool before it fails as an outage."""


def connect(url: str) -> aioredis.Redis:
    """A client for ``url``: one Redis server (``redis://``, ``rediss://``, ``unix://``), or a Redis
    Cluster (``redis+cluster://host:port``, any node: the others are discovered)."""
    for scheme in CLUSTER_SCHEMES:
        if url.startswith(scheme):
            plain = url.replace("+cluster", "", 1)
            # Typed as a Redis: RedisCluster answers the same commands, pipelines and scripts that
            # huiyin uses (each keeps to one slot, see Keys).
            return cast(aioredis.Redis, RedisCluster.from_url(plain, decode_responses=True))
    # A burst beyond the pool's size waits for a free connection (up to REDIS_POOL_WAIT_S, then a
    # ConnectionError: an outage) instead of failing at once, as redis-py's default pool does past 100.
    # ``?max_connections=N&timeout=S`` in the URL overrides both.
    pool = aioredis.BlockingConnectionPool.from_url(
        url, decode_responses=True, max_connections=REDIS_POOL_SIZE, timeout=REDIS_POOL_WAIT_S
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes its pool


def _embedded_redis() -> aioredis.Redis:
    """The in-process Redis used without ``REDIS_URL`` (one process, nothing kept across restarts)."""
    try:
        import fakeredis
    except ImportError as exc:  # installed without the extra that brings it
        raise RuntimeError(
            "REDIS_URL is not set, so huiyin would run an in-process Redis, but fakeredis is not installed: "
            'install huiyin with the embedded extra (pip install "huiyin[embedded]") or set REDIS_URL'
        ) from exc
    return cast(aioredis.Redis, fakeredis.FakeAsyncRedis(decode_responses=True))
