"""The case desk's part of a turn (bot/cases): staff and handlers' people moving appeals on from chat
(受理 / 派单 / 进展 / 办结 / 退回 …), and a handler's bound chat, which takes those commands only."""

from __future__ import annotations

from functools import cached_property

from bot.cases.commands import CaseCommands
from bot.db.repository.cases import HANDLER_CHAT
from bot.handoff import Verdict
from bot.turn.context import TurnContext
from bot.turn.handlers.base import Handler, Outcome
from bot.turn.handlers.staff import answer_privately


class CaseCommandsHandler(Handler):
    @cached_property
    def _commands(self) -> CaseCommands:
        return CaseCommands(self.services.cases)

    def check(self, turn: TurnContext) -> bool:
        return self._commands.parse(turn.message.text) is not None

    async def handle(self, turn: TurnContext) -> Outcome:
        start = len(turn.out.prompts)
        if not await self._commands.handle(turn.repo.session, turn.message, turn.out):
            return Outcome.CONTINUE
        turn.verdict = Verdict.HANDLED
        answer_privately(self.services, turn, start)  # a case list is nothing for a residents' group
        return Outcome.DONE


class HandlerChatHandler(Handler):
    """A handler's bound chat is for case commands only: anything else gets the list of them."""

    def check(self, turn: TurnContext) -> bool:
        return turn.ref.chat_purpose == HANDLER_CHAT

    async def handle(self, turn: TurnContext) -> Outcome:
        turn.out.say(self.services.words.get("case.usage_handler"))
        turn.verdict = Verdict.HANDLED
        return Outcome.DONE
