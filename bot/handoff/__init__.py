"""People in the loop: handing conversations to staff, staff commands in chat, building leaders' relays.

- :mod:`bot.handoff.model` — reasons, verdicts, addresses, outcomes, errors: what the others speak in.
- :mod:`bot.handoff.desk` — the queue, taking over, replies signed by staff, internal notes, release and
  auto-release (reads in :mod:`bot.handoff.reading`, background upkeep in :mod:`bot.handoff.upkeep`).
- :mod:`bot.handoff.hooks` — what the dispatcher calls on every turn, before and after the bot's own.
- :mod:`bot.handoff.commands` — the same operations as chat commands (/take, /reply, …), and invites.
- :mod:`bot.handoff.relay` — "帮3栋502王阿姨反映：厨房漏水" from a building leader.
- :mod:`bot.handoff.summary` — who, where, what and the responsible party, for the queue.
- :mod:`bot.handoff.notices` — messages to other chats (staff chats, a resident answered from chat).
"""

from bot.handoff.desk import HandoffDesk
from bot.handoff.hooks import TurnHooks
from bot.handoff.model import Address, HandoffError, HandoffReason, Outcome, QueueItem, Verdict

__all__ = [
    "Address",
    "HandoffDesk",
    "HandoffError",
    "HandoffReason",
    "Outcome",
    "QueueItem",
    "TurnHooks",
    "Verdict",
]
