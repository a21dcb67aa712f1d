"""The staff desk's part of a turn: staff commands, invites, building leaders' relays and conversations
staff hold are the desk's (bot/handoff); after the bot's own turn the desk queues the conversation for
staff when the turn asks for it."""

from __future__ import annotations

from bot.handoff import Verdict
from bot.turn.context import TurnContext
from bot.turn.handlers.base import Handler, Outcome
from bot.turn.handlers.emergency import answer_emergency, is_emergency


class StaffDeskHandler(Handler):
    def check(self, turn: TurnContext) -> bool:
        return True  # the desk decides, from the message and the conversation's holder

    async def handle(self, turn: TurnContext) -> Outcome:
        verdict = await self.services.hooks.intercept(
            turn.repo,
            turn.ref,
            turn.message,
            turn.understanding,
            turn.out,
            maybe_held=turn.probes.maybe_held,
        )
        turn.verdict = verdict
        if verdict is Verdict.PASS:
            return Outcome.CONTINUE
        if verdict is Verdict.HELD and is_emergency(self.services, turn):
            answer_emergency(self.services, turn)  # safety first, even while staff hold it
        return Outcome.DONE

    async def after(self, turn: TurnContext) -> None:
        await self.services.hooks.after_turn(turn.repo, turn.ref, turn.message, turn.out)
