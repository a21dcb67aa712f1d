"""Safety first: a live emergency is answered with the safety script and queued for staff as urgent,
whatever else the conversation is doing (a form, a staff member holding it)."""

from __future__ import annotations

import structlog

from bot.nlu.base import Intent
from bot.turn.context import TurnContext
from bot.turn.handlers.base import Handler, Outcome
from bot.turn.services import Services

log = structlog.get_logger(__name__)

# An emergency intent below this needs the knowledge base to agree before the safety script interrupts.
EMERGENCY_CONFIDENCE = 0.6


def is_emergency(services: Services, turn: TurnContext) -> bool:
    """Safety first, but not on a hunch: a sure NLU, or an uncertain one the KB confirms."""
    u = turn.understanding
    if u.intent.name is not Intent.EMERGENCY:
        return False
    if u.intent.confidence >= EMERGENCY_CONFIDENCE:
        return True
    answer = services.kb.lookup(u.text, turn.ref.community_code)
    return answer is not None and answer.emergency


def answer_emergency(services: Services, turn: TurnContext) -> None:
    """The safety script (the KB's for this kind of emergency, else the general one); staff are asked."""
    answer = services.kb.lookup(turn.understanding.text, turn.ref.community_code)
    if answer is not None and answer.emergency:
        turn.out.say(answer.text)
    else:
        turn.out.say(services.words.get("emergency"))
    turn.out.handoff = "emergency"
    log.warning(
        "emergency message",
        conversation=turn.ref.conversation_id,
        kb=answer.matter_id if answer else None,
    )


class EmergencyHandler(Handler):
    """An emergency outside a form (a command the message gives comes first)."""

    def check(self, turn: TurnContext) -> bool:
        return turn.command_name is None and is_emergency(self.services, turn)

    async def handle(self, turn: TurnContext) -> Outcome:
        answer_emergency(self.services, turn)
        return Outcome.DONE


class DialogEmergencyHandler(EmergencyHandler):
    """An emergency in the middle of a form interrupts it before the form reads the message."""

    def check(self, turn: TurnContext) -> bool:
        return turn.dialog_state is not None and is_emergency(self.services, turn)
