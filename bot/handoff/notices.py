"""Messages to chats other than the one a turn answers: staff chats, a resident taken over from chat.

A turn can only answer the chat its message came from. When a resident asks for a person, the
community's staff chats must hear of it; when staff reply with ``/reply 12 …`` from a staff group, the
resident's chat must get the reply. Those messages are queued here (a Redis list, so any process with a
sender for the platform may deliver them) and delivered by :func:`deliver_notices`, a background job of
``huiyin serve``. Delivery is at least once, with a few retries; a notice that keeps failing is logged.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Chat
from bot.db.repository.conversation_records import ConversationRecords
from bot.message import Button, Platform, Reply, Target
from bot.outbound import Outbound
from bot.state import Keys

log = structlog.get_logger(__name__)

QUEUE = Keys.NOTICES
MAX_ATTEMPTS = 3
STAFF_CHAT = "staff"


@dataclass(frozen=True, slots=True)
class Notice:
    platform: str
    chat_id: str
    recipient_id: str
    text: str
    target: str = Target.CHAT.value
    attempts: int = 0
    buttons: tuple[Button, ...] = ()

    def reply(self) -> Reply:
        return Reply(
            self.text,
            chat_id=self.chat_id,
            recipient_id=self.recipient_id,
            target=Target(self.target),
            buttons=self.buttons,
        )

    def dumps(self) -> str:
        return json.dumps(
            {
                "platform": self.platform,
                "chat_id": self.chat_id,
                "recipient_id": self.recipient_id,
                "text": self.text,
                "target": self.target,
                "attempts": self.attempts,
                "buttons": [[b.title, b.payload] for b in self.buttons],
            },
            ensure_ascii=False,
        )

    @classmethod
    def loads(cls, raw: str) -> Notice:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            platform=str(data["platform"]),
            chat_id=str(data["chat_id"]),
            recipient_id=str(data["recipient_id"]),
            text=str(data["text"]),
            target=str(data.get("target", Target.CHAT.value)),
            attempts=int(data.get("attempts", 0)),
            buttons=tuple(Button(str(t), str(p)) for t, p in data.get("buttons", [])),
        )


async def queue_notice(redis: Redis, notice: Notice) -> None:
    await redis.rpush(QUEUE, notice.dumps())


async def staff_chats(session: AsyncSession, community_id: int) -> list[Chat]:
    """The chats bound as staff chats of a community (``/staffchat`` or ``huiyin admin bind-chat``)."""
    return await ConversationRecords(session).chats_with_purpose(community_id, STAFF_CHAT)


async def notify_staff(redis: Redis, session: AsyncSession, community_id: int, text: str) -> int:
    """Queue ``text`` for every staff chat of the community; returns how many chats it goes to.

    For any feature that must get staff's attention (a new waiting conversation, an overdue appeal).
    """
    chats = await staff_chats(session, community_id)
    for chat in chats:
        await queue_notice(redis, Notice(chat.platform, chat.external_id, chat.external_id, text))
    return len(chats)


async def deliver_pending(redis: Redis, outbound: Outbound, *, limit: int = 100) -> int:
    """Deliver up to ``limit`` queued notices; returns how many were taken off the queue."""
    taken = 0
    while taken < limit:
        raw = await redis.lpop(QUEUE)
        if raw is None:
            break
        taken += 1
        notice = Notice.loads(raw if isinstance(raw, str) else str(raw))  # decode_responses=True
        try:
            platform = Platform(notice.platform)
        except ValueError:
            log.warning("notice for an unknown platform dropped", platform=notice.platform)
            continue
        failed = await outbound.deliver(platform, [notice.reply()])
        if failed:
            if notice.attempts + 1 < MAX_ATTEMPTS:
                retry = replace(notice, attempts=notice.attempts + 1)
                await redis.rpush(QUEUE, retry.dumps())
            else:
                log.error("notice not delivered", platform=notice.platform, chat=notice.chat_id)
    return taken


async def deliver_notices(redis: Redis, outbound: Outbound, *, idle_sleep_s: float = 0.2) -> None:
    """The background job: deliver queued notices as they come, for the life of the process."""
    while True:
        try:
            if await deliver_pending(redis, outbound) == 0:
                await asyncio.sleep(idle_sleep_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a Redis hiccup must not end the job
            log.warning("notice delivery failed; retrying", error=repr(exc))
            await asyncio.sleep(1.0)
