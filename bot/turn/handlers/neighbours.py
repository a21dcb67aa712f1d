"""A resident in the middle of a form who talks to a neighbour in the group ("李哥你家今天有水吗",
"@王阿姨 你家也停水了吗") is left alone: the message is not the form's answer, and the form waits.

In a group the bot takes a form-filler's unaddressed messages as answers to the form's question (so an
elderly resident need not @-mention it at every step). A message that speaks to someone else — it starts
by naming a neighbour, @-mentions someone who is not the bot, or greets everyone — is not an answer,
unless it carries what a form step asks for (a building, a flat, a place, a phone, a photo).
"""

from __future__ import annotations

import re
from functools import cached_property

from bot.addressing import LEADING_MENTIONS, Addressing
from bot.nlu.base import EntityType
from bot.turn.context import TurnContext
from bot.turn.handlers.base import Handler, Outcome

# "李哥，…" "王阿姨你家…" "张师傅…" "大家好" "邻居们…": a neighbour named at the start.
_VOCATIVE = re.compile(
    r"^(?:[\u4e00-\u9fff]{1,2}(?:哥|姐|叔|婶|姨|伯|爷|奶|师傅|老师|阿姨|大爷|奶奶|大哥|大姐|叔叔|阿姨们)"
    r"|大家|邻居们|各位|阿姨|大爷|大哥|大姐|叔叔|奶奶)"
)
_ANSWERS = frozenset(
    {EntityType.BUILDING, EntityType.UNIT, EntityType.ROOM, EntityType.PLACE, EntityType.PHONE}
)


def talks_to_someone_else(text: str, addressing: Addressing) -> bool:
    """Whether a group message speaks to someone other than the bot."""
    text = text.strip()
    mentions = LEADING_MENTIONS.match(text)
    if mentions and not addressing.addressed_by_mention(mentions.group(0)):
        return True
    return bool(_VOCATIVE.match(text))


class NeighbourTalkHandler(Handler):
    @cached_property
    def _addressing(self) -> Addressing:
        return Addressing(self.services.settings.bot_names)

    def check(self, turn: TurnContext) -> bool:
        message = turn.message
        if not message.is_group or message.mentions_bot or message.reply_to_bot:
            return False
        if turn.dialog_state is None or message.attachments:  # a photo or a location pin answers
            return False
        if self._addressing.addressed(message):
            return False
        if any(e.type in _ANSWERS for e in turn.understanding.entities):
            return False
        return talks_to_someone_else(message.text, self._addressing)

    async def handle(self, turn: TurnContext) -> Outcome:
        return Outcome.DONE  # no reply; the form's state is kept as it was
