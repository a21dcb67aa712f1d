"""Nothing personal in a group: what the bot says there about a resident's appeal carries no phone or
flat number, even when the resident wrote them in the group."""

from __future__ import annotations

import re

from bot.message import Target
from bot.runtime import Runtime
from tests.conftest import group_message, private_message

PHONE = re.compile(r"1[3-9]\d{9}")


async def test_a_group_report_with_a_flat_and_a_phone_keeps_both_out_of_the_group(runtime: Runtime) -> None:
    handle = runtime.dispatcher.handle
    seen_in_group: list[str] = []
    steps = [
        group_message("@回音 我家3栋2单元1201卫生间漏水，电话13512345678", mentions_bot=True),
        group_message("没有照片"),
    ]
    for message in steps:
        for reply in await handle(message):
            if reply.target is Target.CHAT and reply.chat_id == message.chat_id:
                seen_in_group.append(reply.text)
    for text in ("/confirm",):
        for reply in await handle(private_message(text)):
            if reply.target is Target.CHAT and reply.chat_id != "wang":
                seen_in_group.append(reply.text)
    assert seen_in_group, "the bot answered in the group"
    for text in seen_in_group:
        assert not PHONE.search(text) and "1201" not in text, text
