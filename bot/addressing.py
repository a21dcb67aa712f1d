"""Whether a message speaks to the bot, and the message without the words that addressed it.

In a group the bot answers only when addressed: an @-mention or a reply to it (the channel sets those
from the platform's own signals), a command (``/…``), or its name near the start of the message
("回音，楼道灯坏了"). One :class:`Addressing` per process, built from ``settings.bot_names``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.message import IncomingMessage

# The bot's name counts as addressing it within this many characters from the start.
NAME_WINDOW = 40
# @-mentions at the start of a message ("@回音 @王阿姨 …").
LEADING_MENTIONS = re.compile(r"^(?:@\S+[\s\u2005]*)+")


class Addressing:
    def __init__(self, bot_names: Iterable[str]) -> None:
        names = sorted({n.lower() for n in bot_names if n}, key=len, reverse=True)
        alternatives = "|".join(re.escape(n) for n in names)
        self._anywhere = re.compile(alternatives)
        self._leading = re.compile(r"^(?:" + alternatives + r")[\s,，:：、]*", re.IGNORECASE)

    def addressed(self, message: IncomingMessage) -> bool:
        """Whether ``message`` speaks to the bot (always true in a private chat's sense: callers ask
        for group messages)."""
        if message.mentions_bot or message.reply_to_bot:
            return True
        text = message.text.strip()
        if text.startswith("/"):
            return True
        return bool(self._anywhere.search(text[:NAME_WINDOW].lower()))

    def without_name(self, text: str) -> str:
        """``text`` (lower-cased) without the first mention of the bot's name: what a group message
        asks once it has addressed the bot ("@回音 进度" → "@ 进度" → a command word after stripping)."""
        return self._anywhere.sub("", text.strip().lower(), count=1).strip()

    def without_address(self, text: str) -> str:
        """``text`` without the @-mentions and the bot's name it starts with, case kept."""
        text = LEADING_MENTIONS.sub("", text.strip())
        return self._leading.sub("", text).strip()
