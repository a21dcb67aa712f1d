"""The small talk of a conversation: help, greetings, thanks, "cancel" with no form open, and asking
for a person (转人工: queued for staff by the desk after the turn, or the community office's contact)."""

from __future__ import annotations

from bot.nlu.base import Intent
from bot.turn.context import TurnContext
from bot.turn.handlers.base import Handler, Outcome


class _Simple(Handler):
    """A handler for its commands, or for its intents when the message gives no command."""

    intents: frozenset[Intent] = frozenset()

    def check(self, turn: TurnContext) -> bool:
        command = turn.command_name
        if command is not None:
            return command in self.commands
        return turn.intent in self.intents


class HelpHandler(_Simple):
    commands = frozenset({"help", "start"})

    async def handle(self, turn: TurnContext) -> Outcome:
        turn.out.say(self.services.words.get("help", bot_name=self.services.settings.bot_name))
        return Outcome.DONE


class CancelHandler(_Simple):
    """Cancelling with no form open (a running form handles its own cancel)."""

    commands = frozenset({"cancel"})
    intents = frozenset({Intent.CANCEL})

    async def handle(self, turn: TurnContext) -> Outcome:
        turn.out.say(self.services.words.get("appeal.nothing_to_cancel"))
        return Outcome.DONE


class HumanHandler(_Simple):
    commands = frozenset({"human"})
    intents = frozenset({Intent.HUMAN})

    async def handle(self, turn: TurnContext) -> Outcome:
        turn.out.handoff = "asked"  # queued for staff, or the community office's contact (bot/handoff)
        return Outcome.DONE


class GreetHandler(_Simple):
    intents = frozenset({Intent.GREET})

    async def handle(self, turn: TurnContext) -> Outcome:
        turn.out.say(self.services.words.get("greet", bot_name=self.services.settings.bot_name))
        return Outcome.DONE


class ThanksHandler(_Simple):
    intents = frozenset({Intent.THANKS})

    async def handle(self, turn: TurnContext) -> Outcome:
        turn.out.say(self.services.words.get("thanks"))
        return Outcome.DONE
