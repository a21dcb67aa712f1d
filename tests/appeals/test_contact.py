"""A phone number inside the description is not the resident's contact, and is masked in the group."""

from __future__ import annotations

import re

from sqlalchemy import select

from bot.db.models import Appeal
from bot.message import Target
from bot.runtime import Runtime
from bot.state import ConversationKey
from tests.conftest import group_message, private_message

APPEAL_ID = re.compile(r"HY-\d{8}-\d{4}")
NEIGHBOUR = "13800001234"


async def test_a_neighbours_phone_in_the_description_is_not_the_contact(runtime: Runtime) -> None:
    h = runtime.dispatcher.handle
    first = await h(
        group_message(f"@回音 3栋楼上邻居电话{NEIGHBOUR}一直漏水", "li", "李先生", mentions_bot=True)
    )
    photo = await h(group_message("没有照片", "li", "李先生"))
    to_group = [r.text for r in first + photo if r.target is Target.CHAT]
    assert to_group and not any(NEIGHBOUR in t for t in to_group), to_group
    asked = [r.text for r in photo if r.target is Target.PRIVATE]
    assert asked and "手机号" in asked[-1], "her own contact is asked for, privately"
    summary = "\n".join(r.text for r in await h(private_message("不留", "li", "李先生")))
    assert "联系电话：未留" in summary and NEIGHBOUR in summary, "her own words, in private"
    filed = await h(private_message("/confirm", "li", "李先生"))
    assert APPEAL_ID.search(filed[0].text)
    async with runtime.db.unit_of_work() as uow:
        [appeal] = (await uow.session.execute(select(Appeal))).scalars().all()
        assert appeal.contact_phone is None and NEIGHBOUR in appeal.description
        assert await uow.repo.people.saved_phone(appeal.reporter_id) is None, "not remembered as hers either"


async def test_the_group_sees_the_description_masked(runtime: Runtime) -> None:
    h = runtime.dispatcher.handle
    await h(group_message(f"@回音 3栋楼上邻居电话{NEIGHBOUR}一直漏水", "li", "李先生", mentions_bot=True))
    key = ConversationKey.of(group_message("x", "li", "李先生"))
    state = await runtime.store.get_state(key)
    assert state is not None and state["state"] == "photo"
    state["updated_at"] -= runtime.settings.dialog_idle_timeout_s + 60  # she went away mid-form
    await runtime.store.put_state(key, state)
    expired = await h(group_message("@回音 没有照片", "li", "李先生", mentions_bot=True))
    text = "\n".join(r.text for r in expired)
    assert "取消" in text and "138****1234" in text and NEIGHBOUR not in text, text
