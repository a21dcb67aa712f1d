"""Every kind of text huiyin sends into a residents' group — answers, form steps and summaries, the
"filed" notice, duplicate offers, status news to reporters and supporters, an expired form, a staff
reply, a building leader's relay — carries no phone, flat, ID-card or licence-plate number, even when
residents and staff wrote them; the same texts in private keep them. The community's published numbers
(its offices in the knowledge base) stay readable."""

from __future__ import annotations

import re
import time

from sqlalchemy import select

from bot.appeals.status import change_status, lock_appeal
from bot.db.models import Appeal, AppealStatus, OutboxEntry
from bot.message import ChatType, IncomingMessage, Platform, Reply, Target
from bot.privacy.masking import GroupMasker
from tests.staff.conftest import World

GROUP = {"chat_id": "grp-3", "chat_type": ChatType.GROUP, "chat_title": "幸福里3栋业主群"}
PERSONAL = re.compile(r"1[3-9]\d{9}|1201|1502|502|440301199001011234|粤B12345|B12345")


def said(message: IncomingMessage, replies: list[Reply]) -> tuple[list[str], list[str]]:
    """The replies' texts into the group, and into private chats."""
    group = [r.text for r in replies if r.target is Target.CHAT and r.chat_id == GROUP["chat_id"]]
    private = [r.text for r in replies if r.chat_id != GROUP["chat_id"]]
    return group, private


def msg(text: str, who: str = "res-wang", name: str = "王阿姨") -> IncomingMessage:
    return IncomingMessage(
        platform=Platform.REST, sender_id=who, sender_name=name, text=text, mentions_bot=True, **GROUP
    )


async def queued_to_group(world: World) -> list[str]:
    async with world.rt.db.unit_of_work() as uow:
        rows = (await uow.session.scalars(select(OutboxEntry).where(OutboxEntry.action == "notify"))).all()
    return [r.payload["reply"]["text"] for r in rows if r.payload["reply"]["chat_id"] == GROUP["chat_id"]]


async def test_nothing_personal_reaches_the_group_whoever_wrote_it(world: World) -> None:
    handle = world.rt.dispatcher.handle
    in_group: list[str] = []
    in_private: list[str] = []

    async def step(message: IncomingMessage) -> None:
        group, private = said(message, await handle(message))
        in_group.extend(group)
        in_private.extend(private)

    # A report in the group naming a flat, a phone, an ID card and a car; the form goes on in private.
    await step(msg("@回音 我家3栋2单元1201门口被粤B12345的车堵了，身份证440301199001011234，电话13512345678"))
    await step(msg("没有照片"))
    for text in ("13512345678", "/confirm"):
        group, private = said(msg(text), await world.rt.dispatcher.handle(_private(text)))
        in_private.extend(private)
        in_group.extend(t for t in group)
    # The "filed" notice into the group is a GroupNotice reply of the private turn.
    async with world.rt.db.unit_of_work() as uow:
        appeal = (await uow.session.scalars(select(Appeal))).one()

    # A neighbour reports the same in the group: the duplicate offer, then joining it.
    await step(msg("@回音 3栋2单元1201门口车堵了，我家1502也出不去，电话13700001111", "res-li", "李先生"))
    await step(msg("加入支持", "res-li", "李先生"))

    # Staff write progress naming a flat and a phone: the news to both residents.
    async with world.rt.db.unit_of_work() as uow:
        locked = await lock_appeal(uow.session, appeal.id)
        assert locked is not None
        await change_status(
            uow.session,
            locked,
            AppealStatus.IN_PROGRESS,
            note="师傅10分钟后到1201，电话13900001111",
            actor=f"staff:{world.lina.person_id}",
            words=world.rt.dispatcher.words,
        )
        await uow.commit()
    news = await queued_to_group(world)
    assert news, "the group heard of the progress"
    in_group.extend(news)

    # A form left idle in the group, read again there.
    await step(msg("@回音 我家1502的窗户被对面工地砸坏了", "res-zhao", "赵阿姨"))
    conv_key = f"rest:{GROUP['chat_id']}:res-zhao"
    state = await world.rt.store.get_state(_key(conv_key))
    assert state is not None
    state["updated_at"] = time.time() - 10 * 3600
    await world.rt.store.restore_state(conv_key, state) or await _overwrite(world, conv_key, state)
    await step(msg("@回音 还在吗", "res-zhao", "赵阿姨"))

    # A "who should I contact" answer to a question that names a flat and a phone.
    await step(msg("@回音 楼上1502漏水到我家，他电话13700001111，这种找谁", "res-qian", "钱先生"))

    assert in_group, "the bot spoke in the group"
    leaks = [t for t in in_group if PERSONAL.search(t)]
    assert leaks == [], leaks
    assert any("13512345678" in t for t in in_private), "the resident reads her own number in private"


async def test_a_published_office_number_stays_readable_in_a_group(world: World) -> None:
    replies = await world.rt.dispatcher.handle(msg("@回音 物业电话多少"))
    group, _ = said(msg(""), replies)
    profile = world.rt.dispatcher.services.kb.community("demo")
    assert profile.property is not None and profile.property.phone
    assert any(profile.property.phone in t for t in group), group


def test_the_mask_keeps_published_numbers_and_hides_the_rest() -> None:
    mask = GroupMasker(["0755-86001234", "幸福里3栋101室"])
    text = "物业0755-86001234，在幸福里3栋101室；师傅到1201，电话13900001111，车牌粤B12345"
    assert mask(text) == "物业0755-86001234，在幸福里3栋101室；师傅到***，电话139****1111，车牌粤B***45"


def _private(text: str) -> IncomingMessage:
    return IncomingMessage(
        platform=Platform.REST,
        sender_id="res-wang",
        sender_name="王阿姨",
        text=text,
        chat_id="res-wang",
        chat_type=ChatType.PRIVATE,
    )


def _key(part: str):  # type: ignore[no-untyped-def]
    from bot.state import ConversationKey

    platform, chat_id, user_id = part.split(":")
    return ConversationKey(Platform(platform), chat_id, user_id)


async def _overwrite(world: World, conv_key: str, state: dict) -> bool:  # type: ignore[type-arg]
    await world.rt.store.put_state(_key(conv_key), state)
    return True
