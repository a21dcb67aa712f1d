"""After an appeal: a rating and its comment, an answer to the offer to join an open appeal at the same
place (bot/appeals)."""

from __future__ import annotations

from bot.turn.context import TurnContext
from bot.turn.handlers.base import Handler, Outcome


class FollowUpHandler(Handler):
    def check(self, turn: TurnContext) -> bool:
        return True  # whether an offer or a rating is pending is the follow-up's to find out

    async def handle(self, turn: TurnContext) -> Outcome:
        handled = await self.services.follow_up.intercept(
            turn.repo,
            turn.ref,
            turn.message,
            turn.understanding,
            turn.out.state,
            comment_pending=turn.probes.comment_pending,
        )
        if handled is None:
            return Outcome.CONTINUE
        turn.out.prompts.extend(handled.prompts)
        turn.out.state = handled.state
        return Outcome.DONE
