"""In a group the bot's name addresses it only as a mention, at the start of a message, or by a reply —
never inside ordinary words (没回音 is everyday Chinese)."""

from __future__ import annotations

import pytest

from bot.addressing import Addressing
from bot.message import ChatType, IncomingMessage, Platform
from bot.runtime import Runtime

ADDRESSING = Addressing(("回音", "小回"))


def _group(text: str, **kw: object) -> IncomingMessage:
    return IncomingMessage(
        platform=Platform.REST,
        chat_id="grp",
        chat_type=ChatType.GROUP,
        sender_id="wang",
        sender_name="王阿姨",
        text=text,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "text",
    [
        "回音，楼道灯坏了",
        "回音 楼道灯坏了",
        "回音：3栋停水了",
        "回音!",
        "回音",
        "小回，电梯又坏了",
        "@回音 楼道灯坏了",
        "@王阿姨 @回音 你看看",
        "  回音、帮我查一下进度",
        "/status",
    ],
)
def test_the_name_at_the_start_or_a_mention_addresses_the_bot(text: str) -> None:
    assert ADDRESSING.addressed(_group(text))


@pytest.mark.parametrize(
    "text",
    [
        "报了三天了物业到现在都没回音",
        "回音都没有，物业太差了",
        "打了12345也没有回音",
        "@王阿姨 物业一直没回音",
        "楼道里有回音，挺吓人的",
    ],
)
def test_the_name_inside_ordinary_words_does_not(text: str) -> None:
    assert not ADDRESSING.addressed(_group(text))


def test_a_mention_or_a_reply_flagged_by_the_platform_addresses_it() -> None:
    assert ADDRESSING.addressed(_group("物业一直没回音", mentions_bot=True))
    assert ADDRESSING.addressed(_group("好的", reply_to_bot=True))


async def test_no_form_starts_from_an_everyday_complaint_in_a_group(runtime: Runtime) -> None:
    replies = await runtime.dispatcher.handle(_group("报了三天了物业到现在都没回音"))
    assert replies == [], "group chatter the bot was not addressed in stays unanswered"
    started = await runtime.dispatcher.handle(_group("回音，3栋楼道灯坏了"))
    assert started, "addressed at the start: the bot answers"


async def test_a_form_filler_talking_to_a_neighbour_is_left_alone_and_the_form_waits(
    runtime: Runtime,
) -> None:
    handle = runtime.dispatcher.handle
    asked = await handle(_group("回音，3栋2单元楼道灯坏了好几天了"))
    assert any("照片" in r.text for r in asked), [r.text for r in asked]
    for chatter in ("李哥你家今天有水吗", "@王阿姨 你家也停电了吗", "大家晚上好"):
        assert await handle(_group(chatter)) == [], chatter
    answered = await handle(_group("没有照片"))  # the form's answer, still without addressing the bot
    assert answered and not any("照片" in r.text and "发" in r.text for r in answered), [
        r.text for r in answered
    ]
    assert any("手机" in r.text or "电话" in r.text for r in answered), "the form went on to its next step"


def test_a_greeting_after_the_name_only_opens_the_question() -> None:
    addressing = Addressing(["回音"])
    assert addressing.without_address("回音你好 我想问问物业电话") == "我想问问物业电话"
    assert addressing.without_address("回音 你好，3栋楼道灯坏了") == "3栋楼道灯坏了"
    assert addressing.without_address("回音你好") == "你好", "a greeting alone is what was said"
