"""Telegram, with python-telegram-bot: updates in (webhook or polling), replies out.

The connector owns a PTB :class:`~telegram.ext.Application` (with :class:`~telegram.ext.AIORateLimiter`)
and registers three handlers: a :class:`~telegram.ext.CommandHandler` for the core's commands
(``/start``, ``/report``, ``/status``, ``/cancel``, ``/help`` …, taken from ``dialogs/dialogs.yml``; PTB
drops commands addressed to other bots), a :class:`~telegram.ext.CallbackQueryHandler` for inline
buttons, and a :class:`~telegram.ext.MessageHandler` for everything else. Each translates the update
into an :class:`~bot.message.IncomingMessage`, calls the dispatcher and sends the replies.

Group etiquette needs the platform's own signals, set here: ``mentions_bot`` from an ``@username``
mention (or a text mention of the bot's user), ``reply_to_bot`` from a reply to one of the bot's
messages. With privacy mode on (BotFather's default) the bot only receives commands, mentions and
replies to itself in groups, so a resident in the middle of a form is sent a selective ``ForceReply``
that opens a reply to the bot in their client.

A resident is their Telegram user id everywhere: in a group ``sender_id`` is the user id and ``chat_id``
the group; a private chat's id equals the user id, so the core's private conversation for that resident
is the same chat Telegram uses. Replies with ``Target.PRIVATE`` go to ``recipient_id``; when Telegram
refuses because the resident never opened a chat with the bot, the group gets a short hint with a
deep-link button (never the private content).

Buttons are inline keyboards. ``callback_data`` holds at most 64 bytes, so each button carries a short
token; its key in Redis (``Keys.channels.telegram_button``) maps it to the payload and to the resident it was offered to (a
neighbour pressing someone else's button in a group is told so, and nothing happens).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Iterator, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import structlog
import yaml
from telegram import (
    BotCommand,
    CallbackQuery,
    Chat,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    ReplyParameters,
    TelegramObject,
    Update,
)
from telegram.constants import ChatType as TgChatType
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ExtBot,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest

from bot.message import Attachment, AttachmentKind, ChatType, IncomingMessage, Platform, Reply, Target
from bot.outage import TRANSIENT_ERRORS, is_outage
from bot.outbound import DeliveryError
from bot.runtime import Runtime
from bot.state import ConversationKey, Keys, LockTimeout

log = structlog.get_logger(__name__)

# What the bot asks Telegram for; edited messages, channel posts and the rest are not part of a dialog.
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
BUTTON_TTL_S = 7 * 24 * 3600
MAX_TEXT = 4096  # Telegram's limit for one message
PHOTO_DOWNLOAD_TIMEOUT_S = 20.0

# The rate limiter and default context make PTB's generics long; nothing here depends on them.
TelegramApp = Application[Any, Any, Any, Any, Any, Any]


def _wording() -> dict[str, Any]:
    text = files("integrations.telegram").joinpath("wording.yml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _chat_arg(chat_id: str) -> int | str:
    return int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id


class TelegramConnector:
    """One bot on one Bot API server. Also the Telegram :class:`~bot.outbound.Sender`."""

    platform = Platform.TELEGRAM

    def __init__(
        self,
        runtime: Runtime,
        *,
        request: BaseRequest | None = None,
        get_updates_request: BaseRequest | None = None,
        poll_interval: float = 0.0,
    ) -> None:
        s = runtime.settings
        if s.telegram_token is None:
            raise ValueError("HUIYIN_TELEGRAM_TOKEN is not set")
        self.runtime = runtime
        self.mode: Literal["webhook", "polling"] = s.telegram_mode
        self.secret = s.telegram_secret.get_secret_value() if s.telegram_secret else None
        self.poll_interval = poll_interval
        self.wording = _wording()
        self.media_dir = s.data_dir / "media" / "telegram"
        self._work: set[asyncio.Task[None]] = set()
        # Webhook updates being handled (by id of the Update), with the outage that stopped one, if any:
        # PTB hands handler errors to the error handler, not to the caller of process_update.
        self._outages: dict[int, BaseException | None] = {}
        base = s.telegram_api_base.rstrip("/")
        builder = (
            Application.builder()
            .token(s.telegram_token.get_secret_value())
            .base_url(f"{base}/bot")
            .base_file_url(f"{base}/file/bot")
            .rate_limiter(
                AIORateLimiter(
                    overall_max_rate=s.telegram_rate_per_s,
                    group_max_rate=s.telegram_group_rate_per_min,
                    max_retries=2,
                )
            )
        )
        if request is not None:
            builder = builder.request(request)
        if get_updates_request is not None:
            builder = builder.get_updates_request(get_updates_request)
        if self.mode == "webhook":
            builder = builder.updater(None)
        self.application: TelegramApp = builder.build()
        commands = sorted(c.lstrip("/") for c in runtime.dispatcher.dialogs.rules.commands)
        self.commands = commands
        app = self.application
        app.add_handler(CommandHandler(commands, self._on_command, filters=filters.UpdateType.MESSAGE))
        app.add_handler(CallbackQueryHandler(self._on_callback))
        app.add_handler(MessageHandler(filters.UpdateType.MESSAGE, self._on_message))
        app.add_error_handler(self._on_error)

    @property
    def bot(self) -> ExtBot[Any]:
        bot: ExtBot[Any] = self.application.bot
        return bot

    # --- lifecycle -----------------------------------------------------------------------------------
    async def initialize(self, webhook_url: str | None = None) -> None:
        """Meet the bot (getMe), publish the command menu, register the webhook when given its URL."""
        await self.application.initialize()
        try:
            await self.bot.set_my_commands(
                [BotCommand(name, text) for name, text in self.wording["commands"].items()]
            )
        except TelegramError as exc:  # a menu is a nicety; a Bot API server without it is still usable
            log.warning("could not set the Telegram command menu", error=str(exc))
        if self.mode == "webhook" and webhook_url:
            await self.bot.set_webhook(webhook_url, secret_token=self.secret, allowed_updates=ALLOWED_UPDATES)
            log.info("Telegram webhook registered", url=webhook_url)

    async def run(self) -> None:
        """The connector's life as a runtime job: polls in polling mode; shuts PTB down when cancelled."""
        app = self.application
        try:
            if self.mode == "polling" and app.updater is not None:
                await app.updater.start_polling(
                    poll_interval=self.poll_interval,
                    allowed_updates=ALLOWED_UPDATES,
                    bootstrap_retries=3,
                )
                await app.start()
                log.info("Telegram polling", bot=self.bot.username)
            await asyncio.Event().wait()
        finally:
            if self._work:  # webhook updates still being handled
                await asyncio.wait(set(self._work), timeout=10)
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
            await app.shutdown()

    async def process(self, update: Update) -> None:
        """Handle one update (the webhook's entry).

        Raises the error that kept the update from being durably handled when it is an outage
        (:func:`bot.outage.is_outage`: Redis or the database out, the conversation locked), so that the
        webhook answers 503 and Telegram delivers the update again. Other handler errors are bugs a
        redelivery would meet again: logged, not raised.

        The work runs in its own task: if Telegram gives up on the request (a timeout, a dropped
        connection), the turn still finishes instead of being cut off in the middle of its transaction;
        Telegram's redelivery then finds it done.
        """
        work = asyncio.create_task(self.application.process_update(update))
        self._work.add(work)
        work.add_done_callback(self._work.discard)
        self._outages[id(update)] = None
        try:
            await asyncio.shield(work)
        finally:
            outage = self._outages.pop(id(update), None)
        if outage is not None:
            raise outage

    # --- handlers ------------------------------------------------------------------------------------
    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or message.text is None:
            return
        entity = message.entities[0]  # CommandHandler matched: a bot_command at offset 0
        command = message.text[: entity.length]
        name, _, addressee = command.partition("@")
        text = name + message.text[entity.length :]
        await self._handle_message(message, text=text, addressed=bool(addressee))

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None:
            return
        text = message.text or message.caption or ""
        if text.startswith("/") and "@" in text.split(" ", 1)[0]:
            # A command for another bot ("/start@other_bot"); commands for this one went to _on_command.
            if not text.split(" ", 1)[0].lower().endswith("@" + (self.bot.username or "").lower()):
                return
        await self._handle_message(message, text=text, addressed=False)

    async def _handle_message(self, message: Message, *, text: str, addressed: bool) -> None:
        user = message.from_user
        if user is None or user.is_bot or message.chat.type == TgChatType.CHANNEL:
            return  # channel posts, anonymous admins, other bots
        mentioned, text = self._mentions(message, text)
        replying = self._replies_to_me(message)

        async def for_the_bot() -> bool:
            # Photos are downloaded only for messages the bot will handle: a neighbour's holiday pictures
            # in the group are none of its business (with privacy mode off it sees them all).
            if message.chat.type == TgChatType.PRIVATE or addressed or mentioned or replying:
                return True
            key = ConversationKey(Platform.TELEGRAM, str(message.chat.id), str(user.id))
            return await self.runtime.store.has_state(key)

        attachments = await self._attachments(message, download=for_the_bot)
        incoming = IncomingMessage(
            platform=Platform.TELEGRAM,
            chat_id=str(message.chat.id),
            chat_type=_chat_type(message.chat),
            sender_id=str(user.id),
            sender_name=user.full_name,
            text=text[: self.runtime.settings.max_text_chars],
            message_id=f"{message.chat.id}:{message.message_id}",
            mentions_bot=addressed or mentioned,
            reply_to_bot=replying,
            attachments=attachments,
            raw=_Raw(message),
            chat_title=message.chat.title or "",
        )
        if not incoming.text and not attachments:
            if _has_content(message) and (not incoming.is_group or incoming.reply_to_bot or mentioned):
                await self._send_replies([self._say(incoming, "unsupported_attachment")], incoming, message)
            return  # service messages (joins, pins, titles) are not for the bot
        await self._dispatch(incoming, message)

    async def _on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        data = query.data or ""
        entry = (
            await self.runtime.store.redis.get(Keys.channels.telegram_button(data[2:]))
            if data.startswith("b:")
            else None
        )
        if entry is None:
            await _answer(query, self.wording["button_expired"])
            return
        payload, owner = json.loads(entry)
        presser = str(query.from_user.id)
        if owner and owner != presser:
            await _answer(query, self.wording["not_your_button"])
            return
        await _answer(query)
        origin = query.message
        if origin is None:
            return  # a button under an inline-mode message: not ours
        if isinstance(origin, Message):
            try:  # a choice is made once: take the keyboard away
                await origin.edit_reply_markup(reply_markup=None)
            except Exception as exc:  # cosmetic: never lose the resident's choice over it
                log.debug("could not remove an inline keyboard", error=repr(exc))
        incoming = IncomingMessage(
            platform=Platform.TELEGRAM,
            chat_id=str(origin.chat.id),
            chat_type=_chat_type(origin.chat),
            sender_id=presser,
            sender_name=query.from_user.full_name,
            text=payload,
            message_id=f"cb:{query.id}",
            reply_to_bot=True,
            raw=_Raw(query),
            chat_title=origin.chat.title or "",
        )
        await self._dispatch(incoming, None)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        if error is not None and id(update) in self._outages and is_outage(error):
            self._outages[id(update)] = error  # process() raises it: the webhook answers 503
            return
        log.error(
            "Telegram update failed",
            error=repr(context.error),
            update_type=type(update).__name__,
            exc_info=context.error,
        )

    # --- translating ---------------------------------------------------------------------------------
    def _mentions(self, message: Message, text: str) -> tuple[bool, str]:
        """Whether the message @-mentions this bot, and the text without that mention."""
        username = (self.bot.username or "").lower()
        mentioned = False
        kinds: list[str | None] = [MessageEntity.MENTION, MessageEntity.TEXT_MENTION]
        found = message.parse_entities(kinds) if message.text else message.parse_caption_entities(kinds)
        for entity, said in found.items():
            if entity.type == MessageEntity.MENTION and said.lower() == f"@{username}":
                mentioned = True
                text = text.replace(said, " ", 1)
            elif entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == self.bot.id:
                mentioned = True
        return mentioned, " ".join(text.split()) if mentioned else text.strip()

    def _replies_to_me(self, message: Message) -> bool:
        replied = message.reply_to_message
        return bool(replied and replied.from_user and replied.from_user.id == self.bot.id)

    async def _attachments(
        self, message: Message, *, download: Callable[[], Awaitable[bool]]
    ) -> tuple[Attachment, ...]:
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
                found.append(await self._photo(*photo))
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

    async def _photo(self, file_id: str, unique_id: str, suffix: str) -> Attachment:
        """A photo attachment with its file id, downloaded to ``<data_dir>/media/telegram`` (url = file URI).

        A failed download is logged and the file id kept: Telegram serves the file for it later too.
        """
        path = self.media_dir / f"{unique_id}{suffix}"
        try:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                async with asyncio.timeout(PHOTO_DOWNLOAD_TIMEOUT_S):
                    tg_file = await self.bot.get_file(file_id)
                    await tg_file.download_to_drive(path)
            return Attachment(AttachmentKind.PHOTO, file_id=file_id, url=path.resolve().as_uri())
        except (TelegramError, TimeoutError, OSError) as exc:
            log.warning("photo not downloaded", file_id=file_id, error=repr(exc))
            return Attachment(AttachmentKind.PHOTO, file_id=file_id)

    # --- the core, and the replies -------------------------------------------------------------------
    async def _dispatch(self, incoming: IncomingMessage, origin: Message | None) -> None:
        """Hand the message to the core and send its replies, once.

        The core answers a redelivered message with the first delivery's replies; sending them again is
        right only if they were never sent (a crash mid-way), so a message is marked done once its
        replies are out, and a redelivery of a done message sends nothing.

        An outage before the replies are out propagates (in webhook mode Telegram then delivers the update
        again). A conversation that stays locked is one too in webhook mode; in polling mode, where
        nothing is delivered twice, the resident is asked to send the message again.
        """
        redis = self.runtime.store.redis
        key = ConversationKey.of(incoming)
        done = Keys.channels.telegram_done(key, incoming.message_id)
        claim = Keys.channels.telegram_claim(key, incoming.message_id)
        if not await self._claim(key, claim, done):
            log.info("redelivered Telegram update ignored", message_id=incoming.message_id)
            return
        try:
            await self._dispatch_claimed(incoming, origin, done)
        finally:
            try:
                await redis.delete(claim)
            except TRANSIENT_ERRORS:
                pass  # it expires by itself

    async def _claim(self, key: ConversationKey, claim: str, done: str) -> bool:
        """Become the one delivery of an update that sends its replies; False once they are sent.

        Telegram sends an update again when the first delivery was slow to answer, so copies can arrive
        while the first is still being handled: they wait for its outcome instead of sending the same
        replies again. A claim left by a killed process expires; a copy that waits longer than the lock
        wait raises :class:`LockTimeout` (the webhook answers 503 and Telegram tries again later)."""
        redis = self.runtime.store.redis
        settings = self.runtime.settings
        ttl_s = int(settings.lock_wait_s + settings.lock_timeout_s) + 1

        async def attempt() -> bool | None:
            if await redis.set(claim, "1", nx=True, ex=ttl_s):
                return not await redis.exists(done)
            return False if await redis.exists(done) else None  # None: another copy is still at it

        return await self.runtime.store.past_lock(key, attempt)

    async def _dispatch_claimed(self, incoming: IncomingMessage, origin: Message | None, done: str) -> None:
        redis = self.runtime.store.redis
        try:
            replies = await self.runtime.dispatcher.handle(incoming)
        except LockTimeout:
            if self.mode == "webhook":
                raise
            await self._send_replies([self._say(incoming, "busy")], incoming, origin)
            return
        if replies:
            await self._send_replies(replies, incoming, origin)
            try:
                await redis.set(done, "1", ex=self.runtime.settings.dedup_ttl_s)
            except TRANSIENT_ERRORS as exc:
                # Handled and answered: success is the truth. A redelivery (there is none after success)
                # would only send the replies again.
                log.warning("Telegram done mark not written", message_id=incoming.message_id, error=repr(exc))

    def _say(self, incoming: IncomingMessage, wording: str) -> Reply:
        text = self.runtime.dispatcher.words.get(wording, bot_name=self.runtime.settings.bot_name)
        return Reply(text, chat_id=incoming.chat_id, recipient_id=incoming.sender_id)

    async def _send_replies(
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
            if await self.runtime.store.has_state(ConversationKey.of(incoming)):
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

    async def _send(self, reply: Reply, *, quote: int | None = None, force_reply: bool = False) -> Message:
        chat = reply.recipient_id if reply.target is Target.PRIVATE else reply.chat_id
        markup: InlineKeyboardMarkup | ForceReply | None = None
        if reply.buttons:
            markup = await self._keyboard(reply)
        elif force_reply:
            markup = ForceReply(selective=True)
        return await self.bot.send_message(
            chat_id=_chat_arg(chat),
            text=reply.text[:MAX_TEXT],
            reply_markup=markup,
            reply_parameters=ReplyParameters(quote, allow_sending_without_reply=True) if quote else None,
        )

    async def _keyboard(self, reply: Reply) -> InlineKeyboardMarkup:
        rows = []
        async with self.runtime.store.redis.pipeline(transaction=False) as pipe:
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
                chat_id=_chat_arg(incoming.chat_id),
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

    # --- Sender ----------------------------------------------------------------------------------------
    async def send(self, reply: Reply) -> None:
        """Proactive delivery (status changes, staff answers): buttons as an inline keyboard."""
        try:
            await self._send(reply)
        except (Forbidden, BadRequest) as exc:
            raise DeliveryError(f"Telegram refused: {exc}") from exc
        except TelegramError as exc:
            raise DeliveryError(f"Telegram: {exc.__class__.__name__}: {exc}") from exc


class _Raw(Mapping[str, Any]):
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


def _chat_type(chat: Chat) -> ChatType:
    return ChatType.PRIVATE if chat.type == TgChatType.PRIVATE else ChatType.GROUP


def _has_content(message: Message) -> bool:
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


async def _answer(query: CallbackQuery, text: str | None = None) -> None:
    """Stop the button's spinner (Telegram expects an answer to every callback query)."""
    try:
        await query.answer(text=text)
    except TelegramError as exc:
        log.debug("callback query not answered", error=str(exc))
