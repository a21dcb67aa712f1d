"""Conversation state, per-conversation locks and message dedup, in Redis.

Redis (``REDIS_URL``) holds what changes on every message; the database holds what must last. Without
``REDIS_URL`` an in-process fakeredis serves the same API, so one implementation covers both and the
tests run the same suite against each (see ``tests/conftest.py``).

Keys are all built by :class:`Keys`, here; no other module spells one. Every key of one conversation
carries the conversation's hash tag, ``{conv}`` = ``{platform:chat_id:user_id}``, so that each script of
a turn touches one Redis Cluster hash slot:

- ``hy:{conv}:dlg``   the resident's dialog state (JSON), expiring a week after the last change
- ``hy:{conv}:lock``  the conversation lock (a token with a short expiry, renewed by its holder while the
  turn runs and compared before it is extended or released: safe across processes, and gone within
  seconds when its holder dies)
- ``hy:{conv}:seen:{message_id}``  the replies a handled message produced, for dedup: per conversation,
  so that a message id is recognised as a redelivery only from the sender and chat that used it first
  (message ids are per chat on some platforms, and on REST the client chooses them)
- ``hy:{conv}:held``, ``hy:{conv}:rating-comment``  staff hold the conversation; a rating comment is due
- ``hy:{conv}:offer``  listen-mode offer cooldown
- ``hy:{platform:chat}:chat``  cached chat settings (listen mode, community)
- ``hy:dlg:complete``, ``hy:held:complete``  set once start-up restored the durable copies of dialogs
  and the held markers (:data:`DIALOGS_COMPLETE`, :data:`HELD_COMPLETE`). On a Redis Cluster one copy
  per hash slot, ``hy:{<slot tag>}:dlg:complete``: a turn reads the copy of its conversation's slot,
  which vouches for exactly the keys that live (and may be lost) with it.

A message's turn reads and writes these in two round trips, each one Lua script (see :meth:`StateStore.turn`).
"""

from __future__ import annotations

import asyncio
import binascii
import functools
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
import structlog
from redis.asyncio.cluster import RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from bot.message import ChatType, IncomingMessage, Platform

log = structlog.get_logger(__name__)

PREFIX = "hy"
R = TypeVar("R")
# A dialog that idles past its timeout is expired on the next message; the state itself is kept a while
# longer so that the resident can be told politely what happened to it.
STATE_RETENTION_S = 7 * 24 * 3600
DIALOGS_COMPLETE = f"{PREFIX}:dlg:complete"
"""Set once the durable copies of half-finished dialogs are back in Redis (``Runtime.restore_dialogs``, at
start-up). While it exists, a conversation without a state key has no dialog and the database need not be
asked; when Redis loses its data, this key goes with it and every turn asks the database again."""
HELD_COMPLETE = f"{PREFIX}:held:complete"
"""Set once every conversation held by staff has its marker again (``HandoffDesk.restore_markers``); see
``bot.handoff.desk``."""
COMPLETE_MARKERS = (DIALOGS_COMPLETE, HELD_COMPLETE)
CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
"""A ``REDIS_URL`` with one of these schemes names a node of a Redis Cluster (the rest of the cluster is
discovered from it): ``redis+cluster://10.0.0.5:7000``."""
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


def _tagged(tag: str, rest: str) -> str:
    return f"{PREFIX}:{{{tag}}}:{rest}"


class Keys:
    """Every Redis key huiyin uses, in one place (a key family renamed here is renamed everywhere).

    A conversation's keys share its hash tag (see the module's notes); keys used only by single
    commands (a login counter, a mailbox) keep their names, which need no tag.
    """

    # --- one conversation: one hash slot --------------------------------------------------------------
    @staticmethod
    def state(key: ConversationKey | str) -> str:
        """A conversation's dialog state (``key``, or its :attr:`~ConversationKey.part` as the database
        stores it in ``conversation.key``)."""
        return _tagged(key if isinstance(key, str) else key.part, "dlg")

    @staticmethod
    def lock(key: ConversationKey) -> str:
        return _tagged(key.part, "lock")

    @staticmethod
    def seen(key: ConversationKey, message_id: str) -> str:
        return _tagged(key.part, f"seen:{message_id}")

    @staticmethod
    def delivery(record: str, key: ConversationKey, message_id: str) -> str:
        return _tagged(key.part, f"{record}:{message_id}")

    @staticmethod
    def held(key: ConversationKey) -> str:
        return _tagged(key.part, "held")

    @staticmethod
    def rating_comment(key: ConversationKey) -> str:
        return _tagged(key.part, "rating-comment")

    @staticmethod
    def offer(key: ConversationKey) -> str:
        return _tagged(key.part, "offer")

    @staticmethod
    def chat_settings(platform: Platform, chat_id: str) -> str:
        return _tagged(f"{platform.value}:{chat_id}", "chat")

    @staticmethod
    def slot_copy(marker: str, slot: int) -> str:
        """The copy of a 'complete' marker (``hy:dlg:complete``…) that lives in Redis Cluster hash slot
        ``slot``."""
        return _tagged(_slot_tags()[slot], marker.removeprefix(f"{PREFIX}:"))

    # --- single-command keys ---------------------------------------------------------------------------
    NOTICES = f"{PREFIX}:notices"

    @staticmethod
    def relay_draft(platform: Platform, sender_id: str) -> str:
        return f"{PREFIX}:relay:{platform.value}:{sender_id}"

    @staticmethod
    def invite_failures(platform: Platform, sender_id: str) -> str:
        return f"{PREFIX}:invitefail:{platform.value}:{sender_id}"

    @staticmethod
    def inbox(platform: Platform, recipient: str) -> str:
        return f"{PREFIX}:inbox:{platform.value}:{recipient}"

    @staticmethod
    def telegram_button(token: str) -> str:
        """A Telegram inline button's payload, by its callback token."""
        return f"{PREFIX}:btn:tg:{token}"

    @staticmethod
    def options(platform: Platform, chat_id: str, user_id: str) -> str:
        """The numbered options last offered to a user in a chat (WeChat, WeCom)."""
        return f"{PREFIX}:btn:{platform.value}:{chat_id}:{user_id}"

    @staticmethod
    def access_token(name: str) -> str:
        """A platform API's cached access token (``wx:token:{app}``, ``wecom:token:{corp}:{agent}``)."""
        return f"{PREFIX}:{name}"


@functools.cache
def _slot_tags() -> tuple[str, ...]:
    """A hash tag for each of the 16384 Redis Cluster slots (``_slot_tags()[s]`` hashes to slot s), found
    by trying short strings (~170k CRC16s, a fraction of a second, once per process on a cluster)."""
    tags: list[str] = [""] * REDIS_CLUSTER_HASH_SLOTS
    missing, n = REDIS_CLUSTER_HASH_SLOTS, 0
    while missing:
        tag = f"s{n}"
        slot = binascii.crc_hqx(tag.encode(), 0) % REDIS_CLUSTER_HASH_SLOTS
        if not tags[slot]:
            tags[slot] = tag
            missing -= 1
        n += 1
    return tuple(tags)


class LockTimeout(Exception):
    """The conversation lock could not be taken in time (another message of it is still being handled)."""


# One turn of a conversation is two Redis round trips, each one script (atomic on the server):
# opening takes the lock, answers a redelivered message from the dedup record, and reads the dialog
# state; closing writes the new state and the dedup record and releases the lock. Seven separate
# commands before; on a turn that costs ~5 ms of CPU in all, each round trip was worth ~0.2 ms.
#
# KEYS: lock, seen, state, flag keys...[, a hash].  ARGV: token, lock expiry (ms), how many of the flag
# keys (from the first) engage the conversation (0: it need not be engaged), '1' if a hash is given.
# Returns {3, the hash's fields and values} when the conversation must be engaged and neither its state
# nor one of those flag keys exists (nothing is taken), {0} while another holder has the lock, {2,
# replies} for a message already handled (the lock is not taken), {1, state or false, flag key exists
# (1/0)...} with the lock taken.
_OPEN_TURN = """
local last = #KEYS
if ARGV[4] == '1' then last = last - 1 end
local required = tonumber(ARGV[3])
if required > 0 then
  if redis.call('EXISTS', KEYS[3]) == 0 and redis.call('EXISTS', unpack(KEYS, 4, 3 + required)) == 0 then
    if ARGV[4] == '1' then return {3, redis.call('HGETALL', KEYS[#KEYS])} end
    return {3, {}}
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
local seen = redis.call('GET', KEYS[2])
if seen then return {2, seen} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local reply = {1, redis.call('GET', KEYS[3])}
for i = 4, last do reply[i - 1] = redis.call('EXISTS', KEYS[i]) end
return reply
"""
# KEYS: lock, seen, state[, another conversation's lock and state].  ARGV: token, replies, dedup ttl
# (s), state ('' deletes it), state ttl (s)[, the other conversation's state].
# Returns 0 when the other state was not written because a message of that conversation holds its lock,
# else 1.
_CLOSE_TURN = """
if ARGV[4] == '' then redis.call('DEL', KEYS[3]) else redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[5]) end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
local written = 1
if #KEYS == 5 then
  if redis.call('EXISTS', KEYS[4]) == 1 then written = 0
  else redis.call('SET', KEYS[5], ARGV[6], 'EX', ARGV[5]) end
end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return written
"""
# KEYS: lock, state.  ARGV: state, state ttl (s).  Writes another conversation's state unless a message
# of it holds its lock (then 0: wait and try again).
_PUT_STATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return 1
"""
# KEYS: lock.  ARGV: token, expiry (ms).  Extends the lock only if it is still ours (1), else 0.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# KEYS: lock.  ARGV: token.  Releases the lock only if it is still ours (it may have expired and been
# taken by another holder).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(slots=True)
class Turn:
    """One message's hold on its conversation, from :meth:`StateStore.turn`.

    ``replayed`` holds the replies recorded for a message that was already handled (a redelivery):
    then the lock was not taken and nothing is to be done. ``idle`` is True when the turn was asked
    only for a conversation that is engaged and it is not (then nothing was taken either; ``idle_hash``
    holds the hash asked for in that case, empty if it does not exist). Otherwise
    ``state`` is the dialog state read under the lock, ``flags`` whether each flag key asked for exists,
    and :meth:`finish` ends the turn.
    """

    store: StateStore
    key: ConversationKey
    seen_name: str
    token: str
    replayed: list[dict[str, Any]] | None = None
    idle: bool = False
    idle_hash: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] | None = None
    flags: tuple[bool, ...] = ()
    finished: bool = field(default=False)
    # The lock's watchdog: a timer that extends the lock every third of its expiry while the turn runs
    # (see StateStore.turn); None once the turn stopped renewing.
    _renewal: asyncio.TimerHandle | None = field(default=None, repr=False)
    _extending: asyncio.Task[None] | None = field(default=None, repr=False)

    async def finish(
        self,
        state: dict[str, Any] | None,
        replies: list[dict[str, Any]],
        dedup_ttl_s: int,
        *,
        also: tuple[ConversationKey, dict[str, Any]] | None = None,
    ) -> None:
        """Save the new dialog state and the dedup record of this message, and release the lock: one
        atomic script, so a redelivery never sees the record without the state that goes with it.

        ``also`` is another conversation's key and state to save in the same round trip (a dialog moving
        into the resident's private chat), as :meth:`StateStore.put_state` would: if a message of that
        conversation holds its lock, it is saved once that lock is free, after this turn's is released.
        """
        try:
            written = await self.store._finish(self, state, replies, dedup_ttl_s, also)
        finally:
            self.stop_renewing()
        self.finished = True
        if not written and also is not None:
            await self.store.put_state(*also)

    # --- the lock's watchdog -----------------------------------------------------------------------------
    def _renew_later(self) -> None:
        self._renewal = asyncio.get_running_loop().call_later(self.store._renew_every_s, self._renew)

    def _renew(self) -> None:
        self._extending = asyncio.ensure_future(self._extend())

    async def _extend(self) -> None:
        try:
            kept = await self.store._extend_lock(self)
        except Exception as exc:  # Redis unreachable a moment: the lock lasts its expiry, try again
            log.warning("conversation lock not extended", conversation=str(self.key), error=repr(exc))
            kept = True
        if self._renewal is None:  # the turn ended meanwhile (its lock is released or not ours anyway)
            return
        if kept:
            self._renew_later()
        else:
            self._renewal = None
            # The loop stalled past the lock's expiry and another message may hold it now.
            log.warning("conversation lock lost before the turn ended", conversation=str(self.key))

    def stop_renewing(self) -> None:
        """Stop extending the lock (the turn ends; a test also calls it to play a holder that died)."""
        if self._renewal is not None:
            self._renewal.cancel()
            self._renewal = None


class StateStore:
    """Dialog state, locks and dedup over one Redis connection pool (real or fake)."""

    def __init__(self, redis: aioredis.Redis, *, lock_timeout_s: float, lock_wait_s: float) -> None:
        self.redis = redis
        # On a Redis Cluster a turn's scripts keep to the conversation's slot: what else the opening
        # script reads on one server (the 'complete' markers, a group's settings) is read differently.
        self.cluster = isinstance(redis, RedisCluster)
        self._lock_timeout_s = lock_timeout_s
        self._lock_ms = max(1, int(lock_timeout_s * 1000))
        # A third of the expiry: a renewal may be late by up to two thirds (a stalled loop, a slow Redis)
        # before the lock is lost.
        self._renew_every_s = lock_timeout_s / 3
        self._lock_wait_s = lock_wait_s
        self._open_turn = redis.register_script(_OPEN_TURN)
        self._close_turn = redis.register_script(_CLOSE_TURN)
        self._release = redis.register_script(_RELEASE)
        self._extend = redis.register_script(_EXTEND)
        self._put_state = redis.register_script(_PUT_STATE)

    @classmethod
    def from_url(
        cls, url: str | None, *, lock_timeout_s: float = 5.0, lock_wait_s: float = 20.0
    ) -> StateStore:
        """Connect to ``url`` (a Redis Cluster with a ``redis+cluster://`` scheme), or start an in-process
        fakeredis when it is None."""
        client: aioredis.Redis
        if url:
            client = connect(url)
        else:
            import fakeredis

            client = fakeredis.FakeAsyncRedis(decode_responses=True)
        return cls(client, lock_timeout_s=lock_timeout_s, lock_wait_s=lock_wait_s)

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    # --- turns and locks -----------------------------------------------------------------------------
    @staticmethod
    def lock_name(key: ConversationKey) -> str:
        """The Redis key of ``key``'s conversation lock (taken by :meth:`turn`, respected by
        :meth:`put_state`)."""
        return Keys.lock(key)

    @staticmethod
    def seen_name(key: ConversationKey, message_id: str) -> str:
        """The Redis key of the dedup record of a handled message of ``key``'s conversation. Never the
        message id alone: another sender reusing it (any REST client can) would be answered with the
        first sender's replies, their phone number among them."""
        return Keys.seen(key, message_id)

    @staticmethod
    def delivery_name(record: str, key: ConversationKey, message_id: str) -> str:
        """The Redis key of a channel's record about delivering the replies of ``key``'s message
        ``message_id`` (``record`` says whose and which: ``tg:done`` once Telegram sent them,
        ``wx:answered`` for the one path allowed to answer a WeChat callback…). Per conversation like
        :meth:`seen_name`: message ids are per chat on some platforms (Telegram's), and the record of one
        resident's message must not silence another's."""
        return Keys.delivery(record, key, message_id)

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
        lock, seen = self.lock_name(key), self.seen_name(key, message_id)
        turn = Turn(self, key, seen, secrets.token_hex(16))
        if not 0 <= engaged_by <= len(flags):
            raise ValueError(f"engaged_by={engaged_by} with {len(flags)} flags")
        keys = [lock, seen, self.state_name(key), *(self._slot_copies(key, flags) if self.cluster else flags)]
        args: list[str | int] = [turn.token, self._lock_ms, engaged_by, "0"]
        # On a cluster the group's settings live in the chat's slot: read after the script, and only
        # when it finds the conversation idle (a second round trip for group chatter there).
        if idle_hash is not None and not self.cluster:
            keys.append(idle_hash)
            args[3] = "1"

        async def attempt() -> list[Any] | None:
            reply = cast(list[Any], await self._open_turn(keys=keys, args=args))
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
                await self._release(keys=[lock], args=[turn.token])

    def _slot_copies(self, key: ConversationKey, flags: Sequence[str]) -> list[str]:
        """``flags`` with each 'complete' marker replaced by its copy in ``key``'s slot (on a cluster)."""
        slot = key_slot(self.lock_name(key).encode())
        return [Keys.slot_copy(f, slot) if f in COMPLETE_MARKERS else f for f in flags]

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

    async def _extend_lock(self, turn: Turn) -> bool:
        """Extend ``turn``'s lock by its expiry if it still holds it (the watchdog's one command)."""
        return bool(await self._extend(keys=[self.lock_name(turn.key)], args=[turn.token, self._lock_ms]))

    async def _finish(
        self,
        turn: Turn,
        state: dict[str, Any] | None,
        replies: list[dict[str, Any]],
        dedup_ttl_s: int,
        also: tuple[ConversationKey, dict[str, Any]] | None,
    ) -> bool:
        keys = [self.lock_name(turn.key), turn.seen_name, self.state_name(turn.key)]
        args: list[str | int] = [
            turn.token,
            json.dumps(replies, ensure_ascii=False),
            dedup_ttl_s,
            "" if state is None else json.dumps(state, ensure_ascii=False),
            STATE_RETENTION_S,
        ]
        if also is not None and not self.cluster:
            keys += [self.lock_name(also[0]), self.state_name(also[0])]
            args.append(json.dumps(also[1], ensure_ascii=False))
        # On a cluster the other conversation is in another slot: Turn.finish saves it with put_state
        # (one more round trip, on the turn a group dialog moves into the private chat).
        return bool(await self._close_turn(keys=keys, args=args)) and not (self.cluster and also)

    # --- dialog state --------------------------------------------------------------------------------
    @staticmethod
    def state_name(key: ConversationKey | str) -> str:
        """The Redis key of a conversation's dialog state (``key``, or its :attr:`~ConversationKey.part` as
        the database stores it in ``conversation.key``)."""
        return Keys.state(key)

    async def get_state(self, key: ConversationKey) -> dict[str, Any] | None:
        raw = await self.redis.get(self.state_name(key))
        return None if raw is None else cast(dict[str, Any], json.loads(raw))

    async def put_state(self, key: ConversationKey, state: dict[str, Any]) -> None:
        """Save ``key``'s state from outside its turns (a dialog moving into the resident's private chat),
        waiting while a message of that conversation holds its lock, in one round trip."""
        keys = [self.lock_name(key), self.state_name(key)]
        args: list[str | int] = [json.dumps(state, ensure_ascii=False), STATE_RETENTION_S]

        async def attempt() -> int | None:
            return cast(int, await self._put_state(keys=keys, args=args)) or None

        await self.past_lock(key, attempt)

    async def restore_state(self, conversation_key: str, state: dict[str, Any]) -> bool:
        """Put a durable copy of a dialog back, unless Redis has a state for that conversation already
        (``conversation_key`` as stored in ``conversation.key``). True if it was put back."""
        name = self.state_name(conversation_key)
        dumped = json.dumps(state, ensure_ascii=False)
        return bool(await self.redis.set(name, dumped, nx=True, ex=STATE_RETENTION_S))

    async def has_state(self, key: ConversationKey) -> bool:
        return bool(await self.redis.exists(self.state_name(key)))

    # --- dedup ---------------------------------------------------------------------------------------
    async def seen(self, key: ConversationKey, message_id: str) -> list[dict[str, Any]] | None:
        """The replies recorded for an already handled message of ``key``'s conversation, or None if it
        is new."""
        raw = await self.redis.get(self.seen_name(key, message_id))
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


def private_key_for(message: IncomingMessage) -> ConversationKey:
    """The conversation key of the sender's private chat with the bot on the message's platform."""
    if message.chat_type is ChatType.PRIVATE:
        return ConversationKey.of(message)
    return ConversationKey.private(message.platform, message.sender_id)
