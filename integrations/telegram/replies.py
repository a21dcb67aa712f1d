"""Replies out to Telegram: a turn's answers (quoting, ForceReply, the private-chat hint), buttons as
inline keyboards, and proactive delivery as the Telegram :class:`~bot.outbound.Sender`.

Buttons are inline keyboards. ``callback_data`` holds at most 64 bytes, so each button carries a short
token; ``hy:btn:tg:{token}`` in Redis maps it to the payload and to the resident it was offered to (a
neighbour pressing someone else's button in a group is told so, and nothing happens).
"""

from __future__ import annotations

import json
import secrets
from importlib.resources import files
from typing import Any

import structlog
import yaml
from telegram import (
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
)
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import ExtBot

from bot.message import IncomingMessage, Platform, Reply, Target
from bot.outbound import DeliveryError
from bot.state import ConversationKey, Keys, StateStore

log = structlog.get_logger(__name__)

BUTTON_TTL_S = 7 * 24 * 3600
MAX_TEXT = 4096  # Telegram's limit for one message


def wording() -> dict[str, Any]:
    """The connector's own wordings (``wording.yml``: the command menu, button and private-chat hints)."""
    text = files("integrations.telegram").joinpath("wording.yml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def chat_arg(chat_id: str) -> int | str:
    return int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id


class TelegramSender:
    """Sends replies through one bot. Also the Telegram :class:`~bot.outbound.Sender`."""

    platform = Platform.TELEGRAM

    def __init__(self, bot: ExtBot[Any], store: StateStore, wording: dict[str, Any]) -> None:
        self.bot = bot
        self.store = store
        self.wording = wording

    async def send_replies(
        self, replies: list[Reply], incoming: IncomingMessage, origin: Message | None
    ) -> None:
        """Send a turn's replies. In a group, answers quote the resident's message; the last one asks
        for a reply (selective ForceReply) while the resident is in the middle of a form there."""
        in_group_here = [
            i
            for i, r in enumerate(replies)
            if incoming.is_group and r.target is Target.CHAT and r.chat_id == incoming.chat_id
        ]
        force_at = -1
        if in_group_here and origin is not None and not replies[in_group_here[-1]].buttons:
            if await self.store.has_state(ConversationKey.of(incoming)):
                force_at = in_group_here[-1]
        hinted = False
        for i, reply in enumerate(replies):
            quote = origin.message_id if origin is not None and i in in_group_here else None
            try:
                await self._send(reply, quote=quote, force_reply=i == force_at)
            except Forbidden as exc:
                if reply.target is Target.PRIVATE and incoming.is_group and not hinted:
                    hinted = True
                    await self._hint_private(incoming, origin)
                else:
                    log.warning("Telegram refused a reply", chat=reply.chat_id, error=str(exc))
            except TelegramError as exc:
                log.warning("Telegram reply not sent", chat=reply.chat_id, error=str(exc))

    async def send(self, reply: Reply) -> None:
        """Proactive delivery (status changes, staff answers): buttons as an inline keyboard."""
        try:
            await self._send(reply)
        except (Forbidden, BadRequest) as exc:
            raise DeliveryError(f"Telegram refused: {exc}") from exc
        except TelegramError as exc:
            raise DeliveryError(f"Telegram: {exc.__class__.__name__}: {exc}") from exc

    async def _send(self, reply: Reply, *, quote: int | None = None, force_reply: bool = False) -> Message:
        chat = reply.recipient_id if reply.target is Target.PRIVATE else reply.chat_id
        markup: InlineKeyboardMarkup | ForceReply | None = None
        if reply.buttons:
            markup = await self._keyboard(reply)
        elif force_reply:
            markup = ForceReply(selective=True)
        return await self.bot.send_message(
            chat_id=chat_arg(chat),
            text=reply.text[:MAX_TEXT],
            reply_markup=markup,
            reply_parameters=ReplyParameters(quote, allow_sending_without_reply=True) if quote else None,
        )

    async def _keyboard(self, reply: Reply) -> InlineKeyboardMarkup:
        rows = []
        async with self.store.redis.pipeline(transaction=False) as pipe:
            for button in reply.buttons:
                token = secrets.token_urlsafe(9)  # 12 characters: "b:" + token is far below 64 bytes
                entry = json.dumps([button.payload, reply.recipient_id], ensure_ascii=False)
                pipe.set(Keys.channels.telegram_button(token), entry, ex=BUTTON_TTL_S)
                rows.append([InlineKeyboardButton(button.title, callback_data=f"b:{token}")])
            await pipe.execute()
        return InlineKeyboardMarkup(rows)

    async def _hint_private(self, incoming: IncomingMessage, origin: Message | None) -> None:
        link = f"https://t.me/{self.bot.username}?start=continue"
        text = self.wording["private_blocked"].format(name=incoming.sender_name or "您好")
        try:
            await self.bot.send_message(
                chat_id=chat_arg(incoming.chat_id),
                text=text,
                reply_markup=InlineKeyboardMarkup(
                    [[InlineKeyboardButton(self.wording["private_button"], url=link)]]
                ),
                reply_parameters=ReplyParameters(origin.message_id, allow_sending_without_reply=True)
                if origin is not None
                else None,
            )
        except TelegramError as exc:
            log.warning("could not hint at the private chat", chat=incoming.chat_id, error=str(exc))
