"""The 5-second rule: answer in the callback's response when ready in time, otherwise later, and never
answer success for a message that was not durably handled.

WeChat (and WeCom) wait 5 seconds for the response to a callback, then drop the connection and retry the
same message up to three times. A passive reply (in the response) is the cheapest and fastest delivery,
so the callback waits up to a deadline for the core's replies. When they are not ready in time, they are
delivered through the platform's send API once ready; the work goes on regardless of the request (it
runs in its own task).

The response waits for the work's outcome, whatever the deadline: ``success`` (or an empty body) tells the
platform the message is done with, and it never delivers it again, so it is said only once the core has
stored the message. A message the core could not store because a service is out (Redis, the database,
the conversation lock: :func:`bot.outage.is_outage`) makes :meth:`PassiveWindow.run` raise, and the
endpoint answers 503; the platform delivers it again, and the redelivery is handled once. Answering
``success`` at the deadline instead would lose every message whose turn then fails. The price: a turn
that outlasts the platform's 5 s makes it retry while the first attempt runs; the retry waits for the
conversation's lock and is answered from the core's dedup record, so it costs nothing twice. (Queueing
the message durably before answering was the other honest choice; the queue would live in the very
Redis or database whose outage is the problem.)

Exactly one delivery per message, across retries and processes: whichever path is about to deliver first
claims its message (``Keys.channels.passive_claim``) with SET NX (per conversation: the
message id alone would let one resident's claim silence another's reply). A retry that arrives after the
late path sent the replies finds the claim taken and answers ``success``; a late path that finds a retry
already answered passively sends nothing. The core's own dedup makes the retry's processing free of side effects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis
import structlog

from bot.logs import crash_fields
from bot.message import Reply
from bot.outage import is_outage
from bot.state import ConversationKey, Keys

log = structlog.get_logger(__name__)

LateDelivery = Callable[[list[Reply]], Awaitable[None]]


class PassiveWindow:
    """Runs message work against a deadline and delivers its replies exactly once."""

    def __init__(self, redis: aioredis.Redis, prefix: str, *, claim_ttl_s: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._claim_ttl_s = claim_ttl_s
        self._jobs: set[asyncio.Task[Any]] = set()

    async def run(
        self,
        work: Coroutine[Any, Any, list[Reply]],
        *,
        key: ConversationKey,
        message_id: str,
        budget_s: float,
        late: LateDelivery,
    ) -> list[Reply] | None:
        """The replies to put in the response, or None when the response must be empty.

        ``work`` is started at once and always runs to completion, even if the callback's request is
        cancelled. When it misses ``budget_s``, ``late`` is called with its replies when they are ready.
        Returns once ``work`` has ended, however long it takes: when it failed for an outage
        (:func:`bot.outage.is_outage`) that error is raised, for the endpoint to answer 503; any other
        failure is a bug a redelivery would meet again, and the response is empty. Failures are logged.
        """
        task: asyncio.Task[list[Reply]] = asyncio.create_task(work, name=f"{self._prefix}:{message_id}")
        task.add_done_callback(_log_failure)
        self._keep(task)
        try:
            done, _ = await asyncio.wait({task}, timeout=max(budget_s, 0.0))
        except asyncio.CancelledError:  # the request is gone: the replies can only go out later
            self._deliver_later(task, key, message_id, late)
            raise
        if not done:
            log.info("reply missed the passive window; delivering later", message_id=message_id)
            self._deliver_later(task, key, message_id, late)
            await asyncio.wait({task})
        failure = task.exception()
        if failure is not None:
            if is_outage(failure):
                raise failure
            return None
        replies = task.result()
        if done and replies and await self.claim(key, message_id):
            return replies
        return None

    async def claim(self, key: ConversationKey, message_id: str) -> bool:
        """True for the one caller allowed to deliver the replies of ``key``'s message ``message_id``."""
        name = Keys.channels.passive_claim(self._prefix, key, message_id)
        return bool(await self._redis.set(name, "1", nx=True, ex=self._claim_ttl_s))

    def _deliver_later(
        self, task: asyncio.Task[list[Reply]], key: ConversationKey, message_id: str, late: LateDelivery
    ) -> None:
        """Once ``task`` is done, hand its replies to ``late`` (unless a retry delivered them first)."""

        async def deliver() -> None:
            try:
                replies = await task
            except Exception:
                return  # logged as the task ended; run() decides what the platform hears
            if replies and await self.claim(key, message_id):
                await late(replies)

        self._keep(asyncio.create_task(deliver()))

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` (a send that must not hold up the passive answer) alongside; kept until done."""
        self._keep(asyncio.create_task(work))

    def _keep(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        # asyncio keeps only weak references to tasks: hold them until they finish.
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)
        return task

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait for running work and late deliveries (tests, shutdown); cancel what outlives ``timeout_s``."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        while self._jobs and loop.time() < until:
            await asyncio.wait(set(self._jobs), timeout=until - loop.time())
        pending = set(self._jobs)
        for job in pending:
            job.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def _log_failure(task: asyncio.Task[Any]) -> None:
    """Log a message's work that failed, once, wherever its outcome is awaited (or not, if the request
    went away)."""
    if task.cancelled() or (failure := task.exception()) is None:
        return
    if is_outage(failure):  # the endpoint that awaits it, if still there, answers 503 and says so
        log.info("message not handled: a service is unavailable", work=task.get_name(), error=repr(failure))
    else:
        # Where it failed, not the exception's message: it may quote the resident's text.
        log.error("message work failed", work=task.get_name(), **crash_fields(failure))
