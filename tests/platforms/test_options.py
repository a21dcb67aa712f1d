"""Numbered options on text-only platforms: what counts as choosing one, and what is just text."""

from __future__ import annotations

from collections.abc import AsyncIterator

import fakeredis
import pytest

from bot.message import Button, Platform, Reply, Target
from integrations.wechat.options import NumberedOptions


@pytest.fixture
async def options() -> AsyncIterator[NumberedOptions]:
    redis = fakeredis.FakeAsyncRedis(decode_responses=True)
    yield NumberedOptions(redis, Platform.WECHAT)
    await redis.aclose()


CONFIRM = Reply(
    "请确认：3栋2单元楼道灯坏了",
    chat_id="u1",
    recipient_id="u1",
    buttons=(Button("确认提交", "/confirm"), Button("修改", "/edit"), Button("取消", "/cancel")),
)


async def test_a_number_or_an_exact_title_chooses_an_option(options: NumberedOptions) -> None:
    await options.remember([Reply("好的。", "u1", "u1"), CONFIRM])
    assert await options.resolve("u1", "u1", "1") == "/confirm"
    assert await options.resolve("u1", "u1", " ２。") == "/edit", "full-width digits and a stop are fine"
    assert await options.resolve("u1", "u1", "取消") == "/cancel"


async def test_anything_else_is_text(options: NumberedOptions) -> None:
    await options.remember([CONFIRM])
    assert await options.resolve("u1", "u1", "4") == "4", "outside the offered range: maybe a building"
    assert await options.resolve("u1", "u1", "0") == "0"
    assert await options.resolve("u1", "u1", "3栋") == "3栋"
    assert await options.resolve("u2", "u2", "1") == "1", "options belong to one conversation"


async def test_a_turn_without_options_forgets_them(options: NumberedOptions) -> None:
    await options.remember([CONFIRM])
    await options.remember([Reply("已提交。", "u1", "u1")])
    assert await options.resolve("u1", "u1", "1") == "1"


async def test_options_are_kept_per_conversation_the_reply_goes_to(options: NumberedOptions) -> None:
    private = Reply("留电话吗？", "u1", "u1", target=Target.PRIVATE, buttons=(Button("不留", "/skip"),))
    group = Reply("@王阿姨 好的", "group-9", "u1")
    await options.remember([group, private])
    assert await options.resolve("u1", "u1", "1") == "/skip"
    assert await options.resolve("group-9", "u1", "1") == "1"
