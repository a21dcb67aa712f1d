"""Conversation state, per-conversation locks and message dedup, in Redis.

Redis (``REDIS_URL``) holds what changes on every message; the database holds what must last. Without
``REDIS_URL`` an in-process fakeredis serves the same API, so one implementation covers both and the
tests run the same suite against each (see ``tests/conftest.py``).

Keys (all under the ``hy:`` prefix; ``{conv}`` is ``platform:chat_id:user_id``):

- ``hy:dlg:{conv}``   the resident's dialog state (JSON), expiring a week after the last change
- ``hy:lock:{conv}``  the conversation lock (redis-py's Lua-based lock: safe across processes)
- ``hy:seen:{platform}:{message_id}``  the replies a handled message produced, for dedup
- ``hy:offer:{platform}:{chat}:{user}``  listen-mode offer cooldown
- ``hy:chat:{platform}:{chat}``  cached chat settings (listen mode, community)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import LockError

from bot.message import ChatType, IncomingMessage, Platform

PREFIX = "hy"
# A dialog that idles past its timeout is expired on the next message; the state itself is kept a while
# longer so that the resident can be told politely what happened to it.
STATE_RETENTION_S = 7 * 24 * 3600
CHAT_SETTINGS_TTL_S = 60
"""How long a group's cached settings (listen mode, community) are trusted before the database is asked
again: a chat rebound with ``huiyin admin bind-chat`` is seen by running servers within this time."""


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Whose dialog this is: one per resident per chat, so neighbours in a group don't share a form."""

    platform: Platform
    chat_id: str
    user_id: str

    @classmethod
    def of(cls, message: IncomingMessage) -> ConversationKey:
        return cls(message.platform, message.chat_id, message.sender_id)

    @classmethod
    def private(cls, platform: Platform, user_id: str, private_chat_id: str | None = None) -> ConversationKey:
        return cls(platform, private_chat_id or user_id, user_id)

    @property
    def part(self) -> str:
        return f"{self.platform.value}:{self.chat_id}:{self.user_id}"

    def __str__(self) -> str:
        return self.part


class LockTimeout(Exception):
    """The conversation lock could not be taken in time (another message of it is still being handled)."""


class StateStore:
    """Dialog state, locks and dedup over one Redis connection pool (real or fake)."""

    def __init__(self, redis: aioredis.Redis, *, lock_timeout_s: float, lock_wait_s: float) -> None:
        self.redis = redis
        self._lock_timeout_s = lock_timeout_s
        self._lock_wait_s = lock_wait_s

    @classmethod
    def from_url(
        cls, url: str | None, *, lock_timeout_s: float = 30.0, lock_wait_s: float = 20.0
    ) -> StateStore:
        """Connect to ``url``, or start an in-process fakeredis when it is None."""
        client: aioredis.Redis
        if url:
            client = aioredis.Redis.from_url(url, decode_responses=True)
        else:
            import fakeredis

            client = fakeredis.FakeAsyncRedis(decode_responses=True)
        return cls(client, lock_timeout_s=lock_timeout_s, lock_wait_s=lock_wait_s)

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    # --- locks ---------------------------------------------------------------------------------------
    @asynccontextmanager
    async def lock(self, key: ConversationKey) -> AsyncIterator[None]:
        """Serialize everything that reads and writes ``key``'s state, across processes.

        Taken *before* the state is read (aiogram's issue 1317: loading first and locking later lets two
        messages overwrite each other's dialog).
        """
        lock = self.redis.lock(
            f"{PREFIX}:lock:{key.part}",
            timeout=self._lock_timeout_s,
            blocking_timeout=self._lock_wait_s,
            sleep=0.01,
        )
        if not await lock.acquire():
            raise LockTimeout(str(key))
        try:
            yield
        finally:
            try:
                await lock.release()
            except LockError:
                # Held past its timeout and taken over: our work is done; nothing to release.
                pass

    # --- dialog state --------------------------------------------------------------------------------
    @staticmethod
    def state_name(key: ConversationKey) -> str:
        """The Redis key of ``key``'s dialog state."""
        return f"{PREFIX}:dlg:{key.part}"

    async def get_state(self, key: ConversationKey) -> dict[str, Any] | None:
        raw = await self.redis.get(self.state_name(key))
        return None if raw is None else cast(dict[str, Any], json.loads(raw))

    async def set_state(self, key: ConversationKey, state: dict[str, Any] | None) -> None:
        name = self.state_name(key)
        if state is None:
            await self.redis.delete(name)
        else:
            await self.redis.set(name, json.dumps(state, ensure_ascii=False), ex=STATE_RETENTION_S)

    async def has_state(self, key: ConversationKey) -> bool:
        return bool(await self.redis.exists(self.state_name(key)))

    # --- dedup ---------------------------------------------------------------------------------------
    async def seen(self, platform: Platform, message_id: str) -> list[dict[str, Any]] | None:
        """The replies recorded for an already handled message, or None if it is new."""
        raw = await self.redis.get(f"{PREFIX}:seen:{platform.value}:{message_id}")
        return None if raw is None else cast(list[dict[str, Any]], json.loads(raw))

    async def mark_seen(
        self, platform: Platform, message_id: str, replies: list[dict[str, Any]], ttl_s: int
    ) -> None:
        await self.redis.set(
            f"{PREFIX}:seen:{platform.value}:{message_id}", json.dumps(replies, ensure_ascii=False), ex=ttl_s
        )

    # --- listen mode ---------------------------------------------------------------------------------
    async def take_offer_slot(self, platform: Platform, chat_id: str, user_id: str, cooldown_s: int) -> bool:
        """True at most once per cooldown per resident and group: listen mode must not flood a group."""
        if cooldown_s <= 0:
            return True
        return bool(
            await self.redis.set(
                f"{PREFIX}:offer:{platform.value}:{chat_id}:{user_id}", "1", nx=True, ex=cooldown_s
            )
        )

    async def get_chat_settings(self, platform: Platform, chat_id: str) -> dict[str, str] | None:
        data = await self.redis.hgetall(f"{PREFIX}:chat:{platform.value}:{chat_id}")
        return cast(dict[str, str], data) or None

    async def set_chat_settings(self, platform: Platform, chat_id: str, values: dict[str, str]) -> None:
        name = f"{PREFIX}:chat:{platform.value}:{chat_id}"
        await self.redis.hset(name, mapping=dict(values))  # type: ignore[arg-type]
        await self.redis.expire(name, CHAT_SETTINGS_TTL_S)


def private_key_for(message: IncomingMessage) -> ConversationKey:
    """The conversation key of the sender's private chat with the bot on the message's platform."""
    if message.chat_type is ChatType.PRIVATE:
        return ConversationKey.of(message)
    return ConversationKey.private(message.platform, message.sender_id)
