"""Buttons on platforms without buttons: numbered options, answered by number.

WeChat and WeCom show replies as plain text, so a reply's buttons become "1. 确认提交 / 2. 修改" lines
(:meth:`bot.message.Reply.as_text`). The payloads of the last offered options are remembered per
conversation in Redis, under ``Keys.channels.options``, so that the resident's "1" (or the
option's exact title) is turned back into the payload before the message reaches the core. Anything
else the resident types passes through unchanged, and a number outside the offered range is just text
("3" may well be a building number).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence

import redis.asyncio as aioredis

from bot.message import Platform, Reply
from bot.state import Keys

# Options older than this are forgotten: a "1" typed next week is not an answer to today's question.
OPTIONS_TTL_S = 24 * 3600


class NumberedOptions:
    """Remembers the last offered options of each conversation and resolves answers to them."""

    def __init__(self, redis: aioredis.Redis, platform: Platform) -> None:
        self._redis = redis
        self._platform = platform

    def _key(self, chat_id: str, user_id: str) -> str:
        return Keys.channels.options(self._platform, chat_id, user_id)

    async def resolve(self, chat_id: str, user_id: str, text: str) -> str:
        """The payload the resident chose with ``text``, or ``text`` itself when it chose none."""
        answer = unicodedata.normalize("NFKC", text).strip().rstrip(".。、")
        if not answer or len(answer) > 40:
            return text
        raw = await self._redis.get(self._key(chat_id, user_id))
        if raw is None:
            return text
        options: list[list[str]] = json.loads(raw)
        if answer.isdigit():
            n = int(answer)
            return options[n - 1][1] if 1 <= n <= len(options) else text
        for title, payload in options:
            if answer == unicodedata.normalize("NFKC", title).strip():
                return payload
        return text

    async def remember(self, replies: Sequence[Reply]) -> None:
        """Store, per conversation the replies go to, the options of the last reply that offers any;
        clear a conversation's options when this turn offers it none.

        ``Reply.as_text`` numbers each reply's buttons from 1, so only the last reply's numbers are the
        ones the resident sees last and will answer.
        """
        offered: dict[tuple[str, str], Reply | None] = {}
        for reply in replies:
            conversation = (reply.chat_id, reply.recipient_id)
            if reply.buttons:
                offered[conversation] = reply
            else:
                offered.setdefault(conversation, None)
        if not offered:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for (chat_id, user_id), last in offered.items():
                key = self._key(chat_id, user_id)
                if last is None:
                    pipe.delete(key)
                else:
                    options = [[b.title, b.payload] for b in last.buttons]
                    pipe.set(key, json.dumps(options, ensure_ascii=False), ex=OPTIONS_TTL_S)
            await pipe.execute()
