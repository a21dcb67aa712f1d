"""Conversation state, per-conversation locks and message dedup, in Redis.

Redis (``REDIS_URL``) holds what changes on every message; the database holds what must last. Without
``REDIS_URL`` an in-process fakeredis serves the same API, so one implementation covers both and the
tests run the same suite against each (see ``tests/conftest.py``).

Keys are all built by :class:`Keys` (:mod:`bot.state.keys`); no other module spells one. Every key of one conversation
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

The package: :mod:`~bot.state.keys` (every key name), :mod:`~bot.state.store` (the connection and the
turns), :mod:`~bot.state.turn` (one turn's hold and its lock's watchdog), :mod:`~bot.state.scripts` (the
turn's Lua scripts).
"""

from bot.state.keys import (
    COMPLETE_MARKERS,
    DIALOGS_COMPLETE,
    HELD_COMPLETE,
    PREFIX,
    ChannelKeys,
    ConversationKey,
    Keys,
    StaffKeys,
    _slot_tags,
    private_key_for,
)
from bot.state.scripts import STATE_RETENTION_S
from bot.state.store import (
    CHAT_SETTINGS_TTL_S,
    CLUSTER_SCHEMES,
    REDIS_POOL_SIZE,
    REDIS_POOL_WAIT_S,
    LockTimeout,
    StateStore,
    connect,
)
from bot.state.turn import Turn

__all__ = [
    "CHAT_SETTINGS_TTL_S",
    "CLUSTER_SCHEMES",
    "COMPLETE_MARKERS",
    "DIALOGS_COMPLETE",
    "HELD_COMPLETE",
    "PREFIX",
    "REDIS_POOL_SIZE",
    "REDIS_POOL_WAIT_S",
    "STATE_RETENTION_S",
    "ChannelKeys",
    "ConversationKey",
    "Keys",
    "LockTimeout",
    "StaffKeys",
    "StateStore",
    "Turn",
    "_slot_tags",
    "connect",
    "private_key_for",
]
