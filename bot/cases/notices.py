"""Messages about an appeal to the chats of the people who handle it: a handler's chat (a new
assignment, a reminder, a reopened case) and the community's staff chats (an escalation, the digest).

Like the residents' notifications (:mod:`bot.appeals.notify`) they are outbox rows (action ``notify``)
written in the transaction of the change they announce, delivered by the forwarder through the chat's
platform; the idempotency key names the occasion, so a repeated occasion sends nothing twice.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.appeals.notify import queue_notify
from bot.db.models import Appeal, Chat
from bot.db.repository.cases import CaseRepository
from bot.message import Reply


def queue_chat_message(
    session: AsyncSession, appeal: Appeal, chat: Chat, text: str, *, occasion: str
) -> None:
    """One outbox row: ``text`` to ``chat`` about ``appeal``; ``occasion`` makes it unique."""
    reply = Reply(text, chat_id=chat.external_id, recipient_id=chat.external_id)
    key = f"{appeal.public_id}:{occasion}:{chat.id}"
    queue_notify(session, appeal, chat.platform, reply, key, role=chat.purpose, person_id=None)


async def tell_handler(
    session: AsyncSession, appeal: Appeal, handler_id: int | None, text: str, *, occasion: str
) -> int:
    """Queue ``text`` for every chat bound to the handler; returns how many chats it goes to."""
    if handler_id is None:
        return 0
    chats = await CaseRepository(session).handler_chats(handler_id)
    for chat in chats:
        queue_chat_message(session, appeal, chat, text, occasion=occasion)
    return len(chats)


async def tell_staff(session: AsyncSession, appeal: Appeal, text: str, *, occasion: str) -> int:
    """Queue ``text`` for every staff chat of the appeal's community; returns how many chats."""
    chats = await CaseRepository(session).staff_chats(appeal.community_id)
    for chat in chats:
        queue_chat_message(session, appeal, chat, text, occasion=occasion)
    return len(chats)
