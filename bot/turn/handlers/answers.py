"""Who to contact: the knowledge base's answer to a question (with the legal basis and the escalation
path), a choice among matters when the question is ambiguous, and "not understood" when it has none."""

from __future__ import annotations

from bot.message import Button
from bot.nlu.base import Intent
from bot.nlu.route import find_answer
from bot.nlu.rules import told_not_live
from bot.turn.context import TurnContext
from bot.turn.handlers.base import Handler, Outcome
from bot.turn.services import Services
from kb import KBAnswer

# A question the NLU did not recognise is answered from the KB only when the match is at least this good.
CONFIDENT_ANSWER = 0.5


class AskContactHandler(Handler):
    """ "楼道灯坏了找谁": the KB's answer, or "not understood"."""

    def check(self, turn: TurnContext) -> bool:
        return turn.command_name is None and turn.intent is Intent.ASK_CONTACT

    async def handle(self, turn: TurnContext) -> Outcome:
        answer = find_answer(turn.understanding, self.services.kb, turn.ref.community_code)
        if answer is None:
            not_understood(self.services, turn)
        else:
            say_answer(turn, answer)
        return Outcome.DONE


class KBChoiceHandler(Handler):
    """``/kb <matter>``: the resident picked one of the matters offered for an ambiguous question."""

    commands = frozenset({"kb"})

    def check(self, turn: TurnContext) -> bool:
        return turn.command_name == "kb"

    async def handle(self, turn: TurnContext) -> Outcome:
        try:
            answer = self.services.kb.answer(turn.command[1], turn.ref.community_code)
        except KeyError:
            not_understood(self.services, turn)
        else:
            say_answer(turn, answer)
        return Outcome.DONE


class FallbackHandler(Handler):
    """Anything else: a confident KB answer if there is one, else "not understood" (repeated failures
    queue the conversation for staff, see bot/handoff)."""

    def check(self, turn: TurnContext) -> bool:
        return True

    async def handle(self, turn: TurnContext) -> Outcome:
        text = turn.understanding.text
        answer = self.services.kb.lookup(text, turn.ref.community_code, ordinary=told_not_live(text))
        if answer is not None and answer.score >= CONFIDENT_ANSWER:
            say_answer(turn, answer)
        else:
            not_understood(self.services, turn)
        return Outcome.DONE


def say_answer(turn: TurnContext, answer: KBAnswer) -> None:
    if answer.clarify is not None:
        buttons = tuple(Button(title, f"/kb {matter}") for title, matter in answer.clarify.options)
        turn.out.say(answer.clarify.question, buttons)
        return
    buttons = (Button("帮我登记这个问题", "/report"),) if answer.offer_appeal else ()
    turn.out.say(answer.text, buttons)


def not_understood(services: Services, turn: TurnContext) -> None:
    turn.out.not_understood_at = len(turn.out.prompts)
    turn.out.say(services.words.get("not_understood"))
    turn.out.not_understood = True  # repeated failures queue the conversation for staff (bot/handoff)
