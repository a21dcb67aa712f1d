"""What the WeChat Official Account and WeCom channels share: a passive reply inside the platform's
deadline (:mod:`integrations.wechat.passive`), buttons as numbered options
(:mod:`integrations.wechat.options`), and sending through the platform's message API when the passive
window is missed or the core speaks on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, ClassVar

import httpx
import structlog

from bot.message import IncomingMessage, Platform, Reply
from bot.outage import TRANSIENT_ERRORS
from bot.outbound import DeliveryError
from bot.runtime import Runtime
from bot.state import ConversationKey
from integrations.wechat.options import NumberedOptions
from integrations.wechat.passive import LateDelivery, PassiveWindow

log = structlog.get_logger(__name__)

# What keeps a reply from going out through the platform's API: a refusal, or Redis (the token) out.
UNDELIVERED: tuple[type[BaseException], ...] = (DeliveryError, *TRANSIENT_ERRORS)


class PassiveReplyChannel:
    """Base of a channel whose callbacks are answered passively, else through a send API.

    A subclass implements :meth:`_post` (one reply through the platform's message API) and names the log
    event of a reply :meth:`send_all` could not deliver in ``undelivered_event``. ``deadline_s`` (the
    platform's reply deadline) may be changed after construction (tests shorten it).
    """

    undelivered_event: ClassVar[str]

    def __init__(
        self,
        runtime: Runtime,
        platform: Platform,
        *,
        window_prefix: str,
        deadline_s: float,
        http: httpx.AsyncClient | None,
    ) -> None:
        """Sets up the numbered options, the passive window (its claims: ``Keys.channels.passive_claim``) and the
        HTTP client: ``http`` when given (the caller closes it), else an own one closed by :meth:`close`."""
        self.runtime = runtime
        self.deadline_s = deadline_s
        redis = runtime.store.redis
        self.options = NumberedOptions(redis, platform)
        self.window = PassiveWindow(redis, window_prefix, claim_ttl_s=runtime.settings.dedup_ttl_s)
        self.http = http or httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        self._owns_http = http is None

    # --- answering one message -------------------------------------------------------------------------
    async def within_deadline(
        self,
        work: Coroutine[Any, Any, list[Reply]],
        *,
        key: ConversationKey,
        message_id: str,
        started: float,
        late: LateDelivery | None = None,
    ) -> list[Reply] | None:
        """Run ``work`` (``key``'s message ``message_id``) in the passive window with what is left of
        ``deadline_s`` since ``started`` (a :func:`time.monotonic` reading taken when the callback arrived).

        Returns the replies for the response, or None when the response must be empty; replies that
        miss the deadline go to ``late`` (default: :meth:`send_all`) once ready. Returns only once the
        work has ended, and raises what it failed with when that is an outage (the endpoint answers 503).
        See :meth:`PassiveWindow.run`.
        """
        return await self.window.run(
            work,
            key=key,
            message_id=message_id,
            budget_s=self.deadline_s - (time.monotonic() - started),
            late=late or self.send_all,
        )

    async def resolved_text(self, chat_id: str, user_id: str, text: str) -> str:
        """``text`` cut to ``max_text_chars``, with an answer to the numbered options last offered to
        ``user_id`` in ``chat_id`` ("1", "２。", a title) replaced by that button's payload."""
        text = text[: self.runtime.settings.max_text_chars]
        if text:
            text = await self.options.resolve(chat_id, user_id, text)
        return text

    async def dispatch(self, message: IncomingMessage) -> list[Reply]:
        """The core's replies to ``message``; the numbered options they offer are remembered for the next
        message. A conversation that stays locked raises :class:`~bot.state.LockTimeout`, an outage like
        any other: the platform is asked to deliver the message again, rather than the resident to
        send it again."""
        replies = await self.runtime.dispatcher.handle(message)
        await self.options.remember(replies)
        return replies

    def _say(self, chat_id: str, user_id: str, wording: str) -> Reply:
        """One of the core's wordings (with the bot's name) as a reply in ``chat_id`` to ``user_id``."""
        words = self.runtime.dispatcher.words
        return Reply(words.get(wording, bot_name=self.runtime.settings.bot_name), chat_id, user_id)

    # --- sending through the platform's API ------------------------------------------------------------
    async def send(self, reply: Reply) -> None:
        """Send one reply through the message API (buttons as numbered options, remembered).

        Raises :class:`DeliveryError` when the platform refuses it or sending is not configured.
        """
        await self._post(reply)
        if reply.buttons:
            await self.options.remember([reply])

    async def send_all(self, replies: list[Reply]) -> None:
        """Send replies one by one, logging (not raising) those not delivered. Used for replies that
        missed the passive window, whose options are already remembered; it runs after the message was
        handled, so a Redis outage (the access token lives there) loses a reply, not the message."""
        for reply in replies:
            try:
                await self._post(reply)
            except UNDELIVERED as exc:
                log.warning(self.undelivered_event, to=reply.recipient_id, error=repr(exc))

    async def _post(self, reply: Reply) -> None:
        raise NotImplementedError

    async def hold(self) -> None:
        """A runtime job: keeps the channel for the runtime's life and closes it when the runtime cancels
        its jobs at shutdown."""
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()

    async def close(self) -> None:
        """Wait for running work and late deliveries, then close the HTTP client if it is our own."""
        await self.window.drain()
        if self._owns_http:
            await self.http.aclose()
