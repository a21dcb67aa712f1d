"""Proactive delivery: sending a reply when no incoming request is waiting for it.

Most replies travel back in the response to the message that caused them (REST answers, WeChat's
passive reply). Some don't: a status change from the backend, a staff member's answer, a private message
to a resident who wrote in a group (Telegram), WeChat replies that missed the 5-second window. Those go
through a :class:`Sender` for the platform, registered on the :class:`Outbound` registry at start-up.

A sender only needs ``send``; richer output (buttons) degrades to numbered text where the platform has no
buttons (see :meth:`bot.message.Reply.as_text`), never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import structlog

from bot.message import Platform, Reply

log = structlog.get_logger(__name__)


@runtime_checkable
class Sender(Protocol):
    """Delivers replies on one platform. Raise :class:`DeliveryError` when the platform refuses."""

    platform: Platform

    async def send(self, reply: Reply) -> None: ...


class DeliveryError(Exception):
    """The platform did not take the message (network, API error, resident blocked the bot, ...)."""


class Outbound:
    """The senders of this process, by platform."""

    def __init__(self) -> None:
        self._senders: dict[Platform, Sender] = {}

    def register(self, sender: Sender) -> None:
        self._senders[sender.platform] = sender

    def sender(self, platform: Platform) -> Sender | None:
        return self._senders.get(platform)

    def platforms(self) -> list[Platform]:
        return list(self._senders)

    async def deliver(self, platform: Platform, replies: Iterable[Reply]) -> list[Reply]:
        """Send each reply; returns those that could not be delivered (no sender, or it failed)."""
        failed: list[Reply] = []
        sender = self._senders.get(platform)
        for reply in replies:
            if sender is None:
                log.warning("no sender for platform", platform=platform.value, chat=reply.chat_id)
                failed.append(reply)
                continue
            try:
                await sender.send(reply)
            except DeliveryError as exc:
                log.warning("delivery failed", platform=platform.value, chat=reply.chat_id, error=str(exc))
                failed.append(reply)
        return failed
