"""What the WeChat Official Account and WeCom channels share: a passive reply inside the platform's
deadline (:mod:`integrations.wechat.passive`), buttons as numbered options
(:mod:`integrations.wechat.options`), and sending through the platform's message API when the passive
window is missed or the core speaks on its own.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any, ClassVar

import httpx
import structlog

from bot.handoff.notices import Notice, queue_notice
from bot.message import IncomingMessage, Platform, Reply
from bot.outage import TRANSIENT_ERRORS
from bot.outbound import DeliveryError
from bot.state import ConversationKey
from integrations.channel import InputChannel
from integrations.core import Core
from integrations.wechat.options import NumberedOptions
from integrations.wechat.passive import LateDelivery, PassiveWindow

log = structlog.get_logger(__name__)

# What keeps a reply from going out through the platform's API: a refusal, or Redis (the token) out.
UNDELIVERED: tuple[type[BaseException], ...] = (DeliveryError, *TRANSIENT_ERRORS)


class PassiveReplyChannel(InputChannel):
    """Base of a channel whose callbacks are answered passively, else through a send API.

    A subclass implements :meth:`_post` (one reply through the platform's message API) and names the log
    event of a reply :meth:`send_all` could not deliver in ``undelivered_event``. ``deadline_s`` (the
    platform's reply deadline) may be changed after construction (tests shorten it).
    """

    undelivered_event: ClassVar[str]
    platform: Platform

    def __init__(
        self,
        core: Core,
        platform: Platform,
        *,
        window_prefix: str,
        deadline_s: float,
        http: httpx.AsyncClient | None,
    ) -> None:
        """Sets up the numbered options, the passive window (claims under ``hy:{window_prefix}:``) and the
        HTTP client: ``http`` when given (the caller closes it), else an own one closed by :meth:`stop`."""
        self.core = core
        self.deadline_s = deadline_s
        redis = core.store.redis
        self.options = NumberedOptions(redis, platform)
        self.window = PassiveWindow(redis, window_prefix, claim_ttl_s=core.settings.dedup_ttl_s)
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
        text = text[: self.core.settings.max_text_chars]
        if text:
            text = await self.options.resolve(chat_id, user_id, text)
        return text

    async def dispatch(self, message: IncomingMessage) -> list[Reply]:
        """The core's replies to ``message``; the numbered options they offer are remembered for the next
        message. Busy (a conversation that stays locked) is raised like any other outage: the platform is
        asked to deliver the message again, rather than the resident to send it again."""
        replies = (await self.core.handle(message)).replies_or_raise()
        await self.options.remember(replies)
        return replies

    def _say(self, chat_id: str, user_id: str, wording: str) -> Reply:
        """One of the core's wordings (with the bot's name) as a reply in ``chat_id`` to ``user_id``."""
        return self.core.say(wording, chat_id, user_id)

    # --- sending through the platform's API ------------------------------------------------------------
    async def send(self, reply: Reply) -> None:
        """Send one reply through the message API (buttons as numbered options, remembered).

        Raises :class:`DeliveryError` when the platform refuses it or sending is not configured.
        """
        await self._post(reply)
        if reply.buttons:
            await self.options.remember([reply])

    async def send_all(self, replies: list[Reply]) -> None:
        """Send replies one by one. Used for replies that missed the passive window, whose options are
        already remembered; it runs after the message was handled. A reply the API refuses goes to the
        notice queue, whose job retries it (:mod:`bot.handoff.notices`); only when Redis is out too (the
        queue and the access token live there) is it lost, and logged."""
        for reply in replies:
            try:
                await self._post(reply)
            except UNDELIVERED as exc:
                await self._retry_later(reply, exc)

    async def _retry_later(self, reply: Reply, error: BaseException) -> None:
        # Numbered options are part of the text (as_text): the queue carries text only.
        notice = Notice(
            self.platform.value, reply.chat_id, reply.recipient_id, reply.as_text(), reply.target.value, 1
        )
        try:
            await queue_notice(self.core.store.redis, notice)
        except TRANSIENT_ERRORS as exc:
            log.warning(self.undelivered_event, to=reply.recipient_id, error=repr(error), queue=repr(exc))
            return
        log.info("late reply refused by the API; queued for another attempt", to=reply.recipient_id,
                 error=repr(error))  # fmt: skip

    async def _post(self, reply: Reply) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        """Wait for running work and late deliveries, then close the HTTP client if it is our own."""
        await self.window.drain()
        if self._owns_http:
            await self.http.aclose()
