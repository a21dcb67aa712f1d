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

APPEAL_BUTTON = "帮我登记这个问题"

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
            say_answer(self.services, turn, answer)
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
            say_answer(self.services, turn, answer)
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
            say_answer(self.services, turn, answer)
        else:
            not_understood(self.services, turn)
        return Outcome.DONE


def say_answer(services: Services, turn: TurnContext, answer: KBAnswer) -> None:
    """The answer as the chat can take it: a clarifying question first when the matter needs one; the
    hotline with an honest line when the knowledge base is unsure; in a group a brief answer (who, their
    phone, one next step) with the full text sent privately, since a long answer floods the group."""
    if answer.clarify is not None:
        buttons = tuple(Button(title, f"/kb {matter}") for title, matter in answer.clarify.options)
        turn.out.say(answer.clarify.question, buttons)
        return
    appeal = (Button(APPEAL_BUTTON, "/report"),)
    if answer.unsure:
        phone = answer.first_contact.phone or "12345"
        turn.out.say(services.words.get("kb_unsure", phone=phone), appeal)
        return
    buttons = appeal if answer.offer_appeal else ()
    if not turn.message.is_group or answer.emergency:
        turn.out.say(answer.text, buttons)
        return
    turn.out.say(f"{answer.brief}\n{services.words.get('kb_more_in_private')}", buttons)
    turn.out.say(answer.text, private=True)


def not_understood(services: Services, turn: TurnContext) -> None:
    turn.out.not_understood_at = len(turn.out.prompts)
    turn.out.say(services.words.get("not_understood"))
    turn.out.not_understood = True  # repeated failures queue the conversation for staff (bot/handoff)
