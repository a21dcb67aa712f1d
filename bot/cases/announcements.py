"""Notices staff post to a community's residents' groups (计划停水, 电梯维保, 物业费催缴 …): from a staff chat,
``/announce 文本`` (every residents' group of the community) or ``/announce 群名 文本`` (the one group whose
name contains 群名); also ``公告 文本``. A notice is valid until the time it names ("明天9:00-12:00停水":
until 12:00 tomorrow), else for ``HUIYIN_ANNOUNCEMENT_HOURS``; while it is valid, a resident who asks
about its topic ("明天几点停水") is answered from it.

The notices go out through the staff notices' queue (:mod:`bot.handoff.notices`), like any message to a
chat other than the one a turn answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from bot.db.models import Announcement, Chat, utcnow
from bot.db.repository import ConversationRef, Repository
from bot.dialog.slots import mask_personal
from bot.dialog.spec import Responses
from bot.handoff.notices import Notice, queue_notice
from bot.message import IncomingMessage
from bot.settings import Settings

TOPICS: dict[str, tuple[str, ...]] = {
    "water": ("停水", "断水", "来水", "没水", "供水", "用水"),
    "power": ("停电", "断电", "来电", "没电", "供电"),
    "gas": ("停气", "燃气", "天然气", "煤气"),
    "lift": ("电梯",),
    "fees": ("物业费", "缴费", "交费", "催缴"),
    "works": ("施工", "检修", "维保", "消杀"),
}
"""What a notice can be about, by the words that name it in the notice and in residents' questions."""

_ALL_WORDS = tuple(w for words in TOPICS.values() for w in words)
_COMMAND = re.compile(r"^(?:/announce(?:@\S+)?|公告)(?:\s+|$)(.*)$", re.S)
_DAYS = {"今天": 0, "今日": 0, "明天": 1, "明日": 1, "后天": 2}
_TIME = re.compile(r"(上午|中午|下午|晚上)?\s*(\d{1,2})(?:[:：](\d{2})|点(半|\d{1,2})?)")


def topics_of(text: str) -> list[str]:
    return [topic for topic, words in TOPICS.items() if any(w in text for w in words)]


def mentions_a_topic(text: str) -> bool:
    """Whether ``text`` names anything a notice may be about. No I/O."""
    return any(w in text for w in _ALL_WORDS)


def valid_until(text: str, now: datetime, tz: ZoneInfo, default: timedelta) -> datetime:
    """Until when a notice is valid: the last time it names, on the day it names (今天/明天/后天;
    without one, the next such time); ``now + default`` when it names no time."""
    local = now.astimezone(tz)
    day = next((d for word, d in _DAYS.items() if word in text), None)
    found = list(_TIME.finditer(text))
    if not found:
        if day is None:
            return now + default
        return datetime.combine(local.date() + timedelta(days=day + 1), time(0, 0), tz).astimezone(UTC)
    last = found[-1]
    part, hour = last.group(1), int(last.group(2))
    minute_text = last.group(3) or last.group(4) or "0"
    minute = 30 if minute_text == "半" else int(minute_text)
    if part in ("下午", "晚上") and hour < 12:
        hour += 12
    if hour > 23 or minute > 59:
        return now + default
    end = datetime.combine(local.date() + timedelta(days=day or 0), time(hour, minute), tz)
    if end <= local and day is None:
        end += timedelta(days=1)
    return end.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Posted:
    chats: int
    until: datetime


class Announcements:
    def __init__(self, settings: Settings, words: Responses, redis: Redis) -> None:
        self.settings = settings
        self.words = words
        self.redis = redis
        self.tz = ZoneInfo(settings.timezone)

    @staticmethod
    def command(text: str) -> str | None:
        """The notice's text when ``text`` is an announce command ("" when it has none), else None."""
        found = _COMMAND.match(text.strip())
        return found.group(1).strip() if found else None

    async def post(self, repo: Repository, ref: ConversationRef, text: str) -> str:
        """Post ``text`` (``群名 文本`` for one group) as a notice from a staff chat; what staff read back.
        The caller checked that the sender is staff of the community."""
        w = self.words
        if not text:
            return w.get("announce.usage")
        groups = await repo.incidents.resident_groups(ref.community_id)
        head, _, rest = text.partition(" ")
        named = [g for g in groups if head and head in (g.title or "")] if rest.strip() else []
        if len(named) == 1:
            groups, text = named, rest.strip()
        if not groups:
            return w.get("announce.no_groups")
        now = utcnow()
        until = valid_until(text, now, self.tz, timedelta(hours=self.settings.announcement_hours))
        repo.announcements.add(
            Announcement(
                community_id=ref.community_id,
                text=text,
                topics=topics_of(text),
                chat_ids=[g.external_id for g in groups],
                valid_until=until,
                posted_by_id=ref.person_id,
                created_at=now,
            )
        )
        notice = w.get("announce.notice", text=mask_personal(text))
        for group in groups:
            await queue_notice(self.redis, _to(group, notice))
        return w.get(
            "announce.posted",
            count=len(groups),
            until=until.astimezone(self.tz).strftime("%m月%d日 %H:%M"),
        )

    async def answer(self, repo: Repository, ref: ConversationRef, message: IncomingMessage) -> str | None:
        """The notice that answers the resident's question, while it is valid; None when none does."""
        text = message.text
        for notice in await repo.announcements.valid(ref.community_id, utcnow()):
            if message.is_group and notice.chat_ids and message.chat_id not in notice.chat_ids:
                continue  # posted to other groups: not about this one
            if any(w in text for topic in notice.topics for w in TOPICS.get(topic, ())):
                return self.words.get(
                    "announce.answer",
                    time=notice.created_at.astimezone(self.tz).strftime("%m月%d日 %H:%M"),
                    text=mask_personal(notice.text),
                )
        return None


def _to(chat: Chat, text: str) -> Notice:
    return Notice(chat.platform, chat.external_id, chat.external_id, text)
