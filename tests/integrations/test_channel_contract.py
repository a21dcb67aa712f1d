"""The input-channel contract and the Core facade the channels receive instead of the runtime."""

from __future__ import annotations

import pytest
import redis.exceptions
from fastapi import FastAPI

from bot.message import ChatType, IncomingMessage, Platform, Reply
from bot.runtime import Runtime
from bot.state import LockTimeout
from integrations.channel import configured_channels, switch_on
from integrations.core import Core
from integrations.registry import channel_types
from integrations.rest.channel import RestChannel


def _message(text: str = "你好") -> IncomingMessage:
    return IncomingMessage(
        platform=Platform.REST, chat_id="u-core", chat_type=ChatType.PRIVATE, sender_id="u-core", text=text
    )


async def test_handle_answers_the_dispatchers_replies(runtime: Runtime) -> None:
    result = await Core.of(runtime).handle(_message())
    assert result.handled and not result.busy and not result.unavailable
    assert result.replies and all(isinstance(r, Reply) for r in result.replies)
    assert result.replies_or_raise() == result.replies


async def test_a_locked_conversation_is_one_busy_outcome(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def locked(message: IncomingMessage) -> list[Reply]:
        raise LockTimeout("held")

    monkeypatch.setattr(runtime.dispatcher, "handle", locked)
    result = await Core.of(runtime).handle(_message())
    assert result.busy and not result.unavailable and not result.handled and result.replies == []
    with pytest.raises(LockTimeout):
        result.replies_or_raise()


async def test_an_outage_is_one_unavailable_outcome_and_a_bug_propagates(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def redis_out(message: IncomingMessage) -> list[Reply]:
        raise redis.exceptions.ConnectionError("refused")

    monkeypatch.setattr(runtime.dispatcher, "handle", redis_out)
    result = await Core.of(runtime).handle(_message())
    assert result.unavailable and not result.busy

    async def bug(message: IncomingMessage) -> list[Reply]:
        raise KeyError("a bug")

    monkeypatch.setattr(runtime.dispatcher, "handle", bug)
    with pytest.raises(KeyError):
        await Core.of(runtime).handle(_message())


async def test_deliver_once_runs_a_delivered_message_once(runtime: Runtime) -> None:
    core = Core.of(runtime)
    runs: list[int] = []

    async def deliver() -> bool:
        runs.append(1)
        return True  # replies were sent: the message is done

    message = _message()
    assert await core.deliver_once(message, "test", deliver)
    assert not await core.deliver_once(message, "test", deliver), "a redelivery runs nothing"
    assert runs == [1]


async def test_without_platform_settings_only_rest_is_configured(runtime: Runtime) -> None:
    types = channel_types()
    assert [t.name for t in types] == ["rest", "telegram", "wechat", "wecom"]
    core = Core.of(runtime)
    channels = await configured_channels(core, types)
    assert [type(c) for c in channels] == [RestChannel]
    app = FastAPI()
    await switch_on(app, channels[0], core)
    assert app.state.rest is channels[0]
    assert channels[0].sender() is None and channels[0].routes()
