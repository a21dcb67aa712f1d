"""The input-channel contract, and the registry of the channels a server knows.

An input channel (in the spirit of Rasa's ``InputChannel``) connects one platform to the core: it serves
the platform's webhook routes, turns what arrives into :class:`~bot.message.IncomingMessage`, hands it to
the :class:`~integrations.core.Core` facade and answers in the platform's own way. It receives the
facade and the settings, never the whole runtime.

Two objects per platform, because an app's routes are fixed when it is created while a channel can only
be built once the core has started:

- a :class:`ChannelType`, cheap to import (no platform library): its name, the routers it serves
  (mounted by :func:`bot.app.create_app`; until the channel is on they answer 404 naming the setting
  that switches it on), whether the settings configure it, and how to build it;
- the :class:`InputChannel` it builds: :meth:`~InputChannel.start` / :meth:`~InputChannel.stop` for
  its background resources, and its outbound sender if it has one.

:func:`switch_on` is the one way a built channel is put to work, by the app's lifespan and by tests.
"""

from __future__ import annotations

import asyncio
from abc import ABC
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import structlog

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI

    from bot.outbound import Sender
    from bot.settings import Settings
    from integrations.core import Core

log = structlog.get_logger(__name__)


class InputChannel(ABC):
    """One platform's connection to the core, once built.

    ``name`` is also where the app keeps the channel (``app.state.<name>``), which is how its routes find
    it. A channel's background work runs between :meth:`start` and :meth:`stop`.
    """

    name: ClassVar[str]
    routers: Sequence[APIRouter] = ()
    """Set by the channel type that builds the channel (the routers live with the type, which the app
    mounts before any channel is built)."""

    def routes(self) -> Sequence[APIRouter]:
        """The FastAPI routers this channel serves (the same as its :class:`ChannelType`'s)."""
        return self.routers

    async def start(self) -> None:  # noqa: B027  # a channel without resources to start needs nothing
        """Acquire what the channel needs before it serves (meet the platform, register a webhook, start
        polling). Called once, before the channel receives anything."""

    async def stop(self) -> None:  # noqa: B027  # nor anything to stop
        """Finish the work in flight and release the channel's resources (HTTP clients, polling)."""

    def sender(self) -> Sender | None:
        """The platform's :class:`~bot.outbound.Sender` for proactive messages, when it can send."""
        return None

    def published(self) -> dict[str, object]:
        """Parts of the channel others reach through ``app.state`` by these names (besides ``name``)."""
        return {}


@dataclass(frozen=True, slots=True)
class ChannelType:
    """What the app knows of a platform before its channel is built."""

    name: str
    routes: tuple[APIRouter, ...]
    configured: Callable[[Settings], bool]
    build: Callable[[Core], Awaitable[InputChannel]]
    """Builds the channel (importing the platform's library only then); raises ValueError for settings
    that cannot work."""


async def switch_on(app: FastAPI, channel: InputChannel, core: Core) -> InputChannel:
    """Start ``channel``, make it the one its routes answer with, register its sender, and keep it until
    the core shuts down (then it is stopped)."""
    await channel.start()
    setattr(app.state, channel.name, channel)
    for attribute, part in channel.published().items():
        setattr(app.state, attribute, part)
    sender = channel.sender()
    if sender is not None:
        core.outbound.register(sender)
    core.spawn(channel.name, _kept(channel))
    return channel


async def _kept(channel: InputChannel) -> None:
    """A core job: holds the channel for the core's life; stops it when the core cancels its jobs."""
    try:
        await asyncio.Event().wait()
    finally:
        await channel.stop()


async def configured_channels(core: Core, types: Sequence[ChannelType]) -> list[InputChannel]:
    """The channels ``core``'s settings configure, built."""
    return [await kind.build(core) for kind in types if kind.configured(core.settings)]
