"""The Lua scripts of a conversation's turn, registered once per connection by :class:`TurnScripts`."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

# A dialog that idles past its timeout is expired on the next message; the state itself is kept a while
# longer so that the resident can be told politely what happened to it.
STATE_RETENTION_S = 7 * 24 * 3600

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


class TurnScripts:
    """The turn's scripts on one client (redis-py loads each into a server on its first use there)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.open_turn: AsyncScript = redis.register_script(_OPEN_TURN)
        self.close_turn: AsyncScript = redis.register_script(_CLOSE_TURN)
        self.release: AsyncScript = redis.register_script(_RELEASE)
        self.extend: AsyncScript = redis.register_script(_EXTEND)
        self.put_state: AsyncScript = redis.register_script(_PUT_STATE)
