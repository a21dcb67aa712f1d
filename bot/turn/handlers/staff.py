"""The staff desk's part of a turn (bot/handoff): staff commands and invites, building leaders' relays,
a bound staff chat, and conversations staff hold come before the bot's own handlers; after the bot's
turn, the conversation is queued for staff when the turn asks for it."""

from __future__ import annotations

from bot.db.repository.cases import RESIDENTS_CHAT
from bot.dialog.engine import Prompt
from bot.handoff import Verdict
from bot.handoff.commands import StaffCommands
from bot.handoff.notices import STAFF_CHAT
from bot.handoff.relay import Relay
from bot.turn.context import TurnContext
from bot.turn.handlers.base import Handler, Outcome
from bot.turn.handlers.emergency import answer_emergency, is_emergency
from bot.turn.services import Services


class _DeskPartHandler(Handler):
    """A part of the desk that recognises its own messages (its ``handle`` answers whether it took one)."""

    def check(self, turn: TurnContext) -> bool:
        return True  # the part parses the message and checks the sender's roles itself

    def part(self) -> StaffCommands | Relay:
        raise NotImplementedError

    async def handle(self, turn: TurnContext) -> Outcome:
        if not await self.part().handle(turn.repo.session, turn.ref, turn.message, turn.out):
            return Outcome.CONTINUE
        turn.verdict = Verdict.HANDLED
        return Outcome.DONE


class StaffCommandsHandler(_DeskPartHandler):
    """``/take``, ``/reply``, ``/invite`` … from staff, and residents accepting an invitation."""

    def part(self) -> StaffCommands:
        return self.services.hooks.commands

    async def handle(self, turn: TurnContext) -> Outcome:
        start = len(turn.out.prompts)
        outcome = await super().handle(turn)
        head = turn.message.text.strip().split(maxsplit=1)[0].lower() if turn.message.text.strip() else ""
        if outcome is Outcome.DONE and head in _DESK_WORK:
            answer_privately(self.services, turn, start)
        return outcome


# Commands whose answers are about residents (the queue, a conversation, a reply's confirmation): typed in
# a residents' group, they are answered in the staff member's private chat.
_DESK_WORK = frozenset({"/queue", "/take", "/reply", "/r", "/note", "/release", "/file", "/canned"})


def answer_privately(services: Services, turn: TurnContext, start: int) -> None:
    """In a residents' group, the answers from ``start`` on go to the sender's private chat instead, and
    the group hears one short line."""
    if not turn.message.is_group or turn.ref.chat_purpose != RESIDENTS_CHAT:
        return
    answers = turn.out.prompts[start:]
    if not answers:
        return
    moved = [Prompt(p.text, p.buttons, private=True) for p in answers]
    note = Prompt(services.words.get("staff.answered_privately", name=turn.message.sender_name or "您"))
    turn.out.prompts[start:] = [note, *moved]


class RelayHandler(_DeskPartHandler):
    """A building leader reporting for a neighbour ("帮502王阿姨报：…")."""

    def part(self) -> Relay:
        return self.services.hooks.relay


class StaffChatHandler(Handler):
    """A bound staff chat is for staff commands only: anything else gets the list of them."""

    def check(self, turn: TurnContext) -> bool:
        return turn.ref.chat_purpose == STAFF_CHAT

    async def handle(self, turn: TurnContext) -> Outcome:
        turn.out.say(self.services.words.get("staff.staff_chat_help"))
        turn.verdict = Verdict.HANDLED
        return Outcome.DONE


class HeldConversationHandler(Handler):
    """A conversation staff hold: the message is recorded for them and the bot stays silent (except
    for an emergency: safety first). Otherwise the bot answers, and afterwards the conversation is
    queued for staff when the turn asks for a person, reports an emergency or failed too often."""

    def check(self, turn: TurnContext) -> bool:
        return True  # held or not, the bot's turn needs this handler's after()

    async def handle(self, turn: TurnContext) -> Outcome:
        if not turn.probes.maybe_held:  # Redis says no held marker, and the markers are complete
            return Outcome.CONTINUE
        if not await self.services.hooks.held(turn.repo, turn.ref, turn.message, turn.understanding):
            return Outcome.CONTINUE
        turn.verdict = Verdict.HELD
        if is_emergency(self.services, turn):
            answer_emergency(self.services, turn)
        return Outcome.DONE

    async def after(self, turn: TurnContext) -> None:
        await self.services.hooks.after_turn(turn.repo, turn.ref, turn.message, turn.out)
