"""What a Telegram message says, in the core's terms: mentions of the bot, replies to it, attachments
(photos downloaded to ``<data_dir>/media/telegram``), the chat type, and the raw payload."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import structlog
from telegram import Chat, Message, MessageEntity, TelegramObject
from telegram.constants import ChatType as TgChatType
from telegram.error import TelegramError
from telegram.ext import ExtBot

from bot.message import Attachment, AttachmentKind, ChatType

log = structlog.get_logger(__name__)

PHOTO_DOWNLOAD_TIMEOUT_S = 20.0


def mentions(bot: ExtBot[Any], message: Message, text: str) -> tuple[bool, str]:
    """Whether the message @-mentions ``bot``, and the text without that mention."""
    username = (bot.username or "").lower()
    mentioned = False
    kinds: list[str | None] = [MessageEntity.MENTION, MessageEntity.TEXT_MENTION]
    found = message.parse_entities(kinds) if message.text else message.parse_caption_entities(kinds)
    for entity, said in found.items():
        if entity.type == MessageEntity.MENTION and said.lower() == f"@{username}":
            mentioned = True
            text = text.replace(said, " ", 1)
        elif entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == bot.id:
            mentioned = True
    return mentioned, " ".join(text.split()) if mentioned else text.strip()


def replies_to(bot: ExtBot[Any], message: Message) -> bool:
    """Whether ``message`` replies to one of ``bot``'s messages."""
    replied = message.reply_to_message
    return bool(replied and replied.from_user and replied.from_user.id == bot.id)


async def attachments(
    bot: ExtBot[Any], message: Message, media_dir: Path, *, download: Callable[[], Awaitable[bool]]
) -> tuple[Attachment, ...]:
    """The message's photo (downloaded only when ``download()`` says the message is for the bot) and
    location."""
    found: list[Attachment] = []
    photo: tuple[str, str, str] | None = None
    if message.photo:
        largest = message.photo[-1]
        photo = (largest.file_id, largest.file_unique_id, ".jpg")
    elif message.document and (message.document.mime_type or "").startswith("image/"):
        doc = message.document
        photo = (doc.file_id, doc.file_unique_id, Path(doc.file_name or "").suffix.lower() or ".jpg")
    if photo is not None:
        if await download():
            found.append(await downloaded_photo(bot, media_dir, *photo))
        else:
            found.append(Attachment(AttachmentKind.PHOTO, file_id=photo[0]))
    if message.location is not None:
        venue = message.venue
        label = " ".join(x for x in (venue.title, venue.address) if x) if venue else None
        found.append(
            Attachment(
                AttachmentKind.LOCATION,
                latitude=message.location.latitude,
                longitude=message.location.longitude,
                label=label or None,
            )
        )
    return tuple(found)


async def downloaded_photo(
    bot: ExtBot[Any], media_dir: Path, file_id: str, unique_id: str, suffix: str
) -> Attachment:
    """A photo attachment with its file id, downloaded to ``media_dir`` (url = file URI).

    A failed download is logged and the file id kept: Telegram serves the file for it later too.
    """
    path = media_dir / f"{unique_id}{suffix}"
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            async with asyncio.timeout(PHOTO_DOWNLOAD_TIMEOUT_S):
                tg_file = await bot.get_file(file_id)
                await tg_file.download_to_drive(path)
        return Attachment(AttachmentKind.PHOTO, file_id=file_id, url=path.resolve().as_uri())
    except (TelegramError, TimeoutError, OSError) as exc:
        log.warning("photo not downloaded", file_id=file_id, error=repr(exc))
        return Attachment(AttachmentKind.PHOTO, file_id=file_id)


class Raw(Mapping[str, Any]):
    """The platform payload for ``IncomingMessage.raw``, serialized only if someone reads it (the core
    does not; a transcript or a debugger may)."""

    __slots__ = ("_data", "_source")

    def __init__(self, source: TelegramObject) -> None:
        self._source = source
        self._data: dict[str, Any] | None = None

    def _dict(self) -> dict[str, Any]:
        if self._data is None:
            self._data = self._source.to_dict()
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())


def chat_type(chat: Chat) -> ChatType:
    return ChatType.PRIVATE if chat.type == TgChatType.PRIVATE else ChatType.GROUP


def has_content(message: Message) -> bool:
    """A resident's message the bot cannot read (sticker, voice, video, file …), as opposed to a service
    message (someone joined, a pin, a new title) that is not addressed to anyone."""
    return bool(
        message.effective_attachment
        or message.contact
        or message.poll
        or message.dice
        or message.sticker
        or message.story
    )
