"""The handler contract and the loop that runs an ordered list of handlers.

A handler is one capability of the bot (answer an emergency, run the form, tell a status…). Its
``check`` says whether this message is its own, from what the turn already knows (synchronous: no
I/O, it runs for every message); its ``handle`` does the work and writes to the turn output. A handler
that needs the database to decide checks true and lets the message through from ``handle``. The
handlers of a list are tried in order and the first whose check passes handles the message, as
python-telegram-bot's handlers of one group do. A handler may look at a message and let it go on
(:attr:`Outcome.CONTINUE`): the staff desk does, for a conversation nobody holds; such a handler's
``after`` runs once the turn's handlers are done.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.turn.context import TurnContext
    from bot.turn.services import Services


class Outcome(Enum):
    DONE = "done"
    """The message is handled: no later handler sees it."""
    CONTINUE = "continue"
    """Looked at and let through: the next handlers are tried."""


class Handler:
    """A capability of the bot: ``check`` then ``handle``, built once with the bot's services."""

    commands: frozenset[str] = frozenset()
    """The commands (``/status``, "进度"…, by their names in dialogs.yml) this handler takes."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def check(self, turn: TurnContext) -> bool:
        raise NotImplementedError

    async def handle(self, turn: TurnContext) -> Outcome:
        raise NotImplementedError

    async def after(self, turn: TurnContext) -> None:
        """Runs after the turn's handlers when this one let the message through."""


async def run_handlers(handlers: Sequence[Handler], turn: TurnContext) -> list[Handler]:
    """Offer ``turn`` to ``handlers`` in order until one handles it; the ones that let it through."""
    passed: list[Handler] = []
    for handler in handlers:
        if not handler.check(turn):
            continue
        if await handler.handle(turn) is Outcome.DONE:
            break
        passed.append(handler)
    return passed
