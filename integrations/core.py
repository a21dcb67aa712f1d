"""The core as the input channels see it: one facade instead of the whole :class:`~bot.runtime.Runtime`.

A channel translates its platform's messages into :class:`~bot.message.IncomingMessage` and hands them
to :meth:`Core.handle`, which answers a :class:`HandleResult`: the replies, or one of the two outcomes
every platform must answer in its own way —

- **busy**: another message of the conversation held its lock past the lock wait
  (:class:`~bot.state.LockTimeout`);
- **unavailable**: Redis or the database is out of reach (:func:`bot.outage.is_outage`), so the
  message was not durably handled and must be delivered again.

Both mean "not handled, try again". The channel maps them to its platform's answer (REST: 503 with
``Retry-After``; WeChat, WeCom and a Telegram webhook: a non-2xx so the platform delivers again;
Telegram polling: the busy wording to the resident). Any other exception is a bug and propagates.

:meth:`Core.deliver_once` is the delivery dedup a channel needs when its platform may deliver one
message several times at once and the channel sends the replies itself (Telegram).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from bot.message import IncomingMessage, Reply
from bot.outage import TRANSIENT_ERRORS, is_outage
from bot.state import ConversationKey, Keys, LockTimeout, StateStore

if TYPE_CHECKING:
    import asyncio

    from bot.outbound import Outbound
    from bot.runtime import Runtime
    from bot.settings import Settings
    from bot.turn import TurnPipeline

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class HandleResult:
    """What became of one message: its ``replies``, or the ``outage`` that kept it from being handled."""

    replies: list[Reply]
    outage: BaseException | None = None

    @property
    def handled(self) -> bool:
        return self.outage is None

    @property
    def busy(self) -> bool:
        """The conversation stayed locked by another of its messages; nothing was done."""
        return isinstance(self.outage, LockTimeout)

    @property
    def unavailable(self) -> bool:
        """Redis or the database is out of reach; nothing was durably done."""
        return self.outage is not None and not self.busy

    def replies_or_raise(self) -> list[Reply]:
        """The replies; the outage raised again when there was one (for channels whose platform answer
        to an outage is decided further up, by :func:`integrations.payload.outages_answered`)."""
        if self.outage is not None:
            raise self.outage
        return self.replies


class Core:
    """What a channel may use of the core: the settings, the state store (for its own Redis records),
    the outbound senders, message handling, the core's wordings and background jobs."""

    __slots__ = ("_dispatcher", "_spawn", "outbound", "settings", "store")

    def __init__(
        self,
        *,
        settings: Settings,
        store: StateStore,
        dispatcher: TurnPipeline,
        outbound: Outbound,
        spawn: Callable[[str, Coroutine[Any, Any, None]], asyncio.Task[None]],
    ) -> None:
        self.settings = settings
        self.store = store
        self.outbound = outbound
        self._dispatcher = dispatcher
        self._spawn = spawn

    @classmethod
    def of(cls, runtime: Runtime) -> Core:
        """The facade over a started runtime."""
        return cls(
            settings=runtime.settings,
            store=runtime.store,
            dispatcher=runtime.dispatcher,
            outbound=runtime.outbound,
            spawn=runtime.spawn,
        )

    async def handle(self, message: IncomingMessage) -> HandleResult:
        """The core's replies to ``message`` (a redelivered message gets the first delivery's replies:
        the dispatcher's dedup), or the busy / unavailable outcome. Other errors propagate."""
        try:
            replies = await self._dispatcher.handle(message)
        except LockTimeout as exc:
            return HandleResult([], exc)
        except Exception as exc:
            if not is_outage(exc):
                raise
            return HandleResult([], exc)
        return HandleResult(replies)

    def say(self, wording: str, chat_id: str, recipient_id: str) -> Reply:
        """One of the core's wordings (with the bot's name) as a reply in ``chat_id`` to ``recipient_id``."""
        text = self._dispatcher.words.get(wording, bot_name=self.settings.bot_name)
        return Reply(text, chat_id=chat_id, recipient_id=recipient_id)

    @property
    def commands(self) -> list[str]:
        """The core's commands without their slash (``start``, ``report`` …), sorted."""
        return sorted(c.lstrip("/") for c in self._dispatcher.dialogs.rules.commands)

    def spawn(self, name: str, job: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a channel's background job until the core shuts down (it is cancelled then)."""
        return self._spawn(name, job)

    async def deliver_once(
        self, message: IncomingMessage, record: str, deliver: Callable[[], Awaitable[bool]]
    ) -> bool:
        """Run ``deliver`` (handle ``message`` and send its replies) for one delivery of the message only.

        The core answers a redelivered message with the first delivery's replies; sending them again is
        right only if they were never sent (a crash mid-way). So ``deliver`` answers whether it sent
        replies, and the message is then marked done (``{record}:done``); a delivery of a done message
        runs nothing. Copies that arrive while the first is still at it (a platform that redelivers
        what was slow to answer) wait for its outcome under a claim (``{record}:claim``); a claim left
        by a killed process expires, and a copy that waits longer than the lock wait raises
        :class:`LockTimeout`. Returns False when the message was already delivered.
        """
        redis = self.store.redis
        key = ConversationKey.of(message)
        done = Keys.channels.sent(record, key, message.message_id)
        claim = Keys.channels.send_claim(record, key, message.message_id)
        ttl_s = int(self.settings.lock_wait_s + self.settings.lock_timeout_s) + 1

        async def attempt() -> bool | None:
            if await redis.set(claim, "1", nx=True, ex=ttl_s):
                return not await redis.exists(done)
            return False if await redis.exists(done) else None  # None: another copy is still at it

        if not await self.store.past_lock(key, attempt):
            return False
        try:
            if await deliver():
                try:
                    await redis.set(done, "1", ex=self.settings.dedup_ttl_s)
                except TRANSIENT_ERRORS as exc:
                    # Handled and answered: success is the truth. A redelivery (there is none after
                    # success) would only send the replies again.
                    log.warning("done mark not written", message_id=message.message_id, error=repr(exc))
        finally:
            try:
                await redis.delete(claim)
            except TRANSIENT_ERRORS:
                pass  # it expires by itself
        return True
