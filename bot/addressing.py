"""Whether a message speaks to the bot, and the message without the words that addressed it.

In a group the bot answers only when addressed: an @-mention or a reply to it (the channel sets those
from the platform's own signals), a command (``/…``), or its name as a vocative at the start
of the message ("回音，楼道灯坏了", "回音 楼道灯坏了") — never inside ordinary words ("到现在都没回音").
One :class:`Addressing` per process, built from ``settings.bot_names``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.message import IncomingMessage

# @-mentions at the start of a message ("@回音 @王阿姨 …").
LEADING_MENTIONS = re.compile(r"^(?:@\S+[\s\u2005]*)+")


# What may follow the bot's name without a pause and still address it.
_RUN_ON = "你好|您好|在吗|在不在|帮我|帮忙|请问|麻烦|我要|我想|我家|我们"


_OPENING_GREETING = re.compile(r"^(?:你好|您好|在吗|在不在)[\s,，:：、!！.。~～]*")


class Addressing:
    def __init__(self, bot_names: Iterable[str]) -> None:
        names = sorted({n.lower() for n in bot_names if n}, key=len, reverse=True)
        alternatives = "|".join(re.escape(n) for n in names)
        self._anywhere = re.compile(alternatives)
        self._leading = re.compile(r"^(?:" + alternatives + r")[\s,，:：、]*", re.IGNORECASE)
        # The name as a vocative: at the start, followed by a pause or nothing ("回音，…", "回音 …",
        # "回音！") — not inside ordinary words ("报了三天都没回音", "回音都没有").
        # Run together with a greeting or a request ("回音你好", "回音帮我…") it is a vocative too.
        self._vocative = re.compile(
            r"^(?:" + alternatives + r")(?:[\s,，:：、!！.。~～?？]|$|(?=" + _RUN_ON + r"))", re.IGNORECASE
        )
        self._names = names

    def addressed(self, message: IncomingMessage) -> bool:
        """Whether ``message`` speaks to the bot (always true in a private chat's sense: callers ask
        for group messages)."""
        if message.mentions_bot or message.reply_to_bot:
            return True
        text = message.text.strip()
        if text.startswith("/"):
            return True
        leading = LEADING_MENTIONS.match(text)
        if leading:  # "@回音 …" typed as text (platforms that do not mark mentions)
            if self.addressed_by_mention(leading.group(0)):
                return True
            text = text[leading.end() :]
        return bool(self._vocative.match(text.strip()))

    def addressed_by_mention(self, mentions: str) -> bool:
        """Whether leading @-mentions (``"@王阿姨 @回音 "``) include the bot's name."""
        lowered = mentions.lower()
        return any(f"@{n}" in lowered for n in self._names)

    def without_name(self, text: str) -> str:
        """``text`` (lower-cased) without the first mention of the bot's name: what a group message
        asks once it has addressed the bot ("@回音 进度" → "@ 进度" → a command word after stripping)."""
        return self._anywhere.sub("", text.strip().lower(), count=1).strip()

    def without_address(self, text: str) -> str:
        """``text`` without the @-mentions and the bot's name it starts with, case kept."""
        text = LEADING_MENTIONS.sub("", text.strip())
        spoken = self._leading.sub("", text).strip()
        # "回音你好 我想问问物业电话": the greeting only opens what the resident asks.
        asked = _OPENING_GREETING.sub("", spoken).strip()
        return asked if asked and asked != spoken and len(asked) >= 2 else spoken
