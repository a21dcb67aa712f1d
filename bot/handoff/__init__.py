"""People in the loop: handing conversations to staff, staff commands in chat, building leaders' relays.

- :mod:`bot.handoff.desk` — the queue, taking over, replies signed by staff, internal notes, release and
  auto-release; the hooks the dispatcher calls on every turn.
- :mod:`bot.handoff.commands` — the same operations as chat commands (/take, /reply, …), and invites.
- :mod:`bot.handoff.relay` — "帮3栋502王阿姨反映：厨房漏水" from a building leader.
- :mod:`bot.handoff.summary` — who, where, what and the responsible party, for the queue.
- :mod:`bot.handoff.notices` — messages to other chats (staff chats, a resident answered from chat).
"""

from bot.handoff.desk import Address, HandoffDesk, HandoffError, Outcome, QueueItem, Verdict

__all__ = ["Address", "HandoffDesk", "HandoffError", "Outcome", "QueueItem", "Verdict"]
