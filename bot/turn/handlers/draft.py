"""A form staff held half-finished, offered back once they released the conversation ("要继续登记刚才的
问题吗？", see :mod:`bot.handoff.drafts`): 继续登记 resumes it at the step where it stopped, 不用了 drops
it, a photo (or location) the step asked for answers it, and anything else the resident writes is read
afresh (the offer lapses, and the draft with it)."""

from __future__ import annotations

from typing import Any

from bot.addressing import Addressing
from bot.dialog.slots import bare
from bot.handoff import drafts
from bot.message import AttachmentKind
from bot.turn.context import TurnContext
from bot.turn.handlers.base import Handler, Outcome
from bot.turn.services import Services

# Typed answers to the offer (after normalization); the buttons send drafts.RESUME and drafts.DISCARD.
RESUME_WORDS = frozenset(
    {
        "继续",
        "继续登记",
        "继续吧",
        "要",
        "要的",
        "好",
        "好的",
        "好啊",
        "可以",
        "行",
        "是",
        "是的",
        "嗯",
        "嗯嗯",
        "ok",
    }
)
DISCARD_WORDS = frozenset(
    {"不用", "不用了", "不要", "不要了", "不了", "不继续", "不继续了", "不需要", "不用继续"}
)


# The slot types an attachment answers without a word.
_ANSWERED_BY = {"photo": AttachmentKind.PHOTO, "place": AttachmentKind.LOCATION}


class PausedDraftHandler(Handler):
    """The resident's answer to the offer of a paused form (or a late press of the offer's buttons)."""

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self._addressing = Addressing(services.settings.bot_names)

    def check(self, turn: TurnContext) -> bool:
        state = turn.out.state
        if state is not None and drafts.PAUSED in state:
            return True
        return turn.message.text.strip() in (drafts.RESUME, drafts.DISCARD)

    async def handle(self, turn: TurnContext) -> Outcome:
        out, words = turn.out, self.services.words
        state = out.state
        text = self._addressing.without_address(turn.message.text).strip()
        if state is None or drafts.PAUSED not in state:  # the offer's button, once the draft is gone
            out.say(words.get("handoff.draft_gone"))
            return Outcome.DONE
        filed = state[drafts.PAUSED].get("filed")
        word = bare(text)
        if text == drafts.RESUME or word in RESUME_WORDS:
            await self._resume(turn, state)
            return Outcome.DONE
        if text == drafts.DISCARD or word in DISCARD_WORDS or self.services.engine.is_cancel(text):
            out.state = None
            out.say(words.get("handoff.draft_dropped"))
            return Outcome.DONE
        if text in self.services.follow_up.step_buttons and not filed:
            # An old button of the form itself (确认提交…): the offer is still to be answered first.
            description = drafts.draft_description(state, in_group=turn.message.is_group)
            out.say(
                words.get("handoff.resume_offer", description=description or "问题"),
                drafts.offer_buttons(words),
            )
            return Outcome.DONE
        if not filed and self._answers_the_step(turn, state):
            out.state = drafts.resumed(state)  # the running form reads the message as its answer
            return Outcome.CONTINUE
        out.state = None  # the offer lapses: the message is read as if no form were open
        if turn.message.is_group and not self._addressing.addressed(turn.message):
            return Outcome.DONE  # group chatter, now that no form engages the resident with the bot
        return Outcome.CONTINUE

    def _answers_the_step(self, turn: TurnContext, state: dict[str, Any]) -> bool:
        """A photo or a location sent while the form was asking for one: nothing else it could mean."""
        spec = self.services.dialogs.dialogs.get(str(state.get("dialog")))
        if spec is None or not turn.message.attachments:
            return False
        step = spec.states.get(str(state.get("state")))
        if step is None or step.ask is None:
            return False
        kind = _ANSWERED_BY.get(spec.slots[step.ask].type)
        return any(a.kind is kind for a in turn.message.attachments)

    async def _resume(self, turn: TurnContext, state: dict[str, Any]) -> None:
        out, words = turn.out, self.services.words
        filed = state[drafts.PAUSED].get("filed")
        if filed is None:
            appeal = await turn.repo.appeals.appeal_by_draft(str(state.get("draft_key") or ""))
            filed = appeal.public_id if appeal is not None else None
        if filed is not None:  # staff filed it from the conversation meanwhile
            out.state = None
            out.say(words.get("appeal.already_created", public_id=filed))
            return
        running = drafts.resumed(state)
        out.state = running
        out.prompts.append(self.services.engine.resume(running, turn.prompt_context))
