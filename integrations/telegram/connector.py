"""Telegram, with python-telegram-bot: updates in (webhook or polling), replies out.

The connector owns a PTB :class:`~telegram.ext.Application` (with :class:`~telegram.ext.AIORateLimiter`)
and registers three handlers: a :class:`~telegram.ext.CommandHandler` for the core's commands
(``/start``, ``/report``, ``/status``, ``/cancel``, ``/help`` …, taken from ``dialogs/dialogs.yml``; PTB
drops commands addressed to other bots), a :class:`~telegram.ext.CallbackQueryHandler` for inline
buttons, and a :class:`~telegram.ext.MessageHandler` for everything else. Each translates the update
into an :class:`~bot.message.IncomingMessage`, hands it to the core (:class:`~integrations.core.Core`)
and sends the replies.

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

Translating updates is :mod:`.translate`; sending replies and inline keyboards is :mod:`.replies`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import structlog
from telegram import BotCommand, CallbackQuery, Message, Update
from telegram.constants import ChatType as TgChatType
from telegram.error import TelegramError
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

from bot.logs import crash_fields
from bot.message import IncomingMessage, Platform, Reply
from bot.outage import is_outage
from bot.state import ConversationKey, Keys
from integrations.channel import InputChannel
from integrations.core import Core
from integrations.telegram import translate
from integrations.telegram.replies import TelegramSender, wording

log = structlog.get_logger(__name__)

# What the bot asks Telegram for; edited messages, channel posts and the rest are not part of a dialog.
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]

# The rate limiter and default context make PTB's generics long; nothing here depends on them.
TelegramApp = Application[Any, Any, Any, Any, Any, Any]


class TelegramConnector(InputChannel):
    """One bot on one Bot API server, as an input channel."""

    name = "telegram"
    platform = Platform.TELEGRAM

    def __init__(
        self,
        core: Core,
        *,
        request: BaseRequest | None = None,
        get_updates_request: BaseRequest | None = None,
        poll_interval: float = 0.0,
    ) -> None:
        s = core.settings
        if s.telegram_token is None:
            raise ValueError("HUIYIN_TELEGRAM_TOKEN is not set")
        self.core = core
        self.mode: Literal["webhook", "polling"] = s.telegram_mode
        self.secret = s.telegram_secret.get_secret_value() if s.telegram_secret else None
        self.webhook_url = s.telegram_webhook_url
        self.poll_interval = poll_interval
        self.wording = wording()
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
        self.commands = core.commands
        app = self.application
        app.add_handler(CommandHandler(self.commands, self._on_command, filters=filters.UpdateType.MESSAGE))
        app.add_handler(CallbackQueryHandler(self._on_callback))
        app.add_handler(MessageHandler(filters.UpdateType.MESSAGE, self._on_message))
        app.add_error_handler(self._on_error)
        self.replies = TelegramSender(self.bot, core.store, self.wording)

    @property
    def bot(self) -> ExtBot[Any]:
        bot: ExtBot[Any] = self.application.bot
        return bot

    # --- the channel contract ------------------------------------------------------------------------

    def sender(self) -> TelegramSender:
        return self.replies

    async def start(self) -> None:
        """Meet the bot (getMe), publish the command menu, register the webhook when its URL is set;
        in polling mode, start polling as a core job (a Bot API server that is slow to answer at
        start-up does not hold up the other channels)."""
        await self.application.initialize()
        try:
            await self.bot.set_my_commands(
                [BotCommand(name, text) for name, text in self.wording["commands"].items()]
            )
        except TelegramError as exc:  # a menu is a nicety; a Bot API server without it is still usable
            log.warning("could not set the Telegram command menu", error=str(exc))
        if self.mode == "webhook" and self.webhook_url:
            await self.bot.set_webhook(
                self.webhook_url, secret_token=self.secret, allowed_updates=ALLOWED_UPDATES
            )
            log.info("Telegram webhook registered", url=self.webhook_url)
        if self.mode == "polling":
            self.core.spawn("telegram-polling", self._poll())
        log.info("Telegram on", mode=self.mode, bot=self.bot.username)

    async def _poll(self) -> None:
        app = self.application
        if app.updater is not None:
            await app.updater.start_polling(
                poll_interval=self.poll_interval, allowed_updates=ALLOWED_UPDATES, bootstrap_retries=3
            )
            await app.start()
            log.info("Telegram polling", bot=self.bot.username)

    async def stop(self) -> None:
        """Let webhook updates in flight finish, stop polling, shut PTB down."""
        app = self.application
        if self._work:
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
        mentioned, text = translate.mentions(self.bot, message, text)
        replying = translate.replies_to(self.bot, message)

        async def for_the_bot() -> bool:
            # Photos are downloaded only for messages the bot will handle: a neighbour's holiday pictures
            # in the group are none of its business (with privacy mode off it sees them all).
            if message.chat.type == TgChatType.PRIVATE or addressed or mentioned or replying:
                return True
            key = ConversationKey(Platform.TELEGRAM, str(message.chat.id), str(user.id))
            return await self.core.store.has_state(key)

        attachments = await translate.attachments(self.bot, message, self.media_dir, download=for_the_bot)
        incoming = IncomingMessage(
            platform=Platform.TELEGRAM,
            chat_id=str(message.chat.id),
            chat_type=translate.chat_type(message.chat),
            sender_id=str(user.id),
            sender_name=user.full_name,
            text=text[: self.core.settings.max_text_chars],
            message_id=f"{message.chat.id}:{message.message_id}",
            mentions_bot=addressed or mentioned,
            reply_to_bot=replying,
            attachments=attachments,
            raw=translate.Raw(message),
            chat_title=message.chat.title or "",
        )
        if not incoming.text and not attachments:
            if translate.has_content(message) and (
                not incoming.is_group or incoming.reply_to_bot or mentioned
            ):
                await self.replies.send_replies(
                    [self._say(incoming, "unsupported_attachment")], incoming, message
                )
            return  # service messages (joins, pins, titles) are not for the bot
        await self._dispatch(incoming, message)

    async def _on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        data = query.data or ""
        entry = (
            await self.core.store.redis.get(Keys.channels.telegram_button(data[2:]))
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
            chat_type=translate.chat_type(origin.chat),
            sender_id=presser,
            sender_name=query.from_user.full_name,
            text=payload,
            message_id=f"cb:{query.id}",
            reply_to_bot=True,
            raw=translate.Raw(query),
            chat_title=origin.chat.title or "",
        )
        await self._dispatch(incoming, None)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        if error is not None and id(update) in self._outages and is_outage(error):
            self._outages[id(update)] = error  # process() raises it: the webhook answers 503
            return
        # Where it failed, not the exception's message: it may quote the update (the resident's text).
        log.error(
            "Telegram update failed",
            update_type=type(update).__name__,
            **(crash_fields(error) if error is not None else {"error": "unknown"}),
        )

    # --- the core, and the replies -------------------------------------------------------------------
    async def _dispatch(self, incoming: IncomingMessage, origin: Message | None) -> None:
        """Hand the message to the core and send its replies, once (:meth:`Core.deliver_once`: Telegram
        delivers an update again when the first delivery was slow to answer).

        An outage before the replies are out propagates (in webhook mode Telegram then delivers the update
        again). A conversation that stays locked is one too in webhook mode; in polling mode, where
        nothing is delivered twice, the resident is asked to send the message again.
        """

        async def deliver() -> bool:
            result = await self.core.handle(incoming)
            if result.busy and self.mode == "polling":
                await self.replies.send_replies([self._say(incoming, "busy")], incoming, origin)
                return False
            replies = result.replies_or_raise()
            if replies:
                await self.replies.send_replies(replies, incoming, origin)
            return bool(replies)

        if not await self.core.deliver_once(incoming, "tg", deliver):
            log.info("redelivered Telegram update ignored", message_id=incoming.message_id)

    def _say(self, incoming: IncomingMessage, wording: str) -> Reply:
        return self.core.say(wording, incoming.chat_id, incoming.sender_id)


async def _answer(query: CallbackQuery, text: str | None = None) -> None:
    """Stop the button's spinner (Telegram expects an answer to every callback query)."""
    try:
        await query.answer(text=text)
    except TelegramError as exc:
        log.debug("callback query not answered", error=str(exc))
