"""The appeal form and staff handoff together: a form's buttons are inert while staff hold the
conversation; once they give it back the resident is offered the half-finished form again; staff file an
appeal from a conversation in one action (console or chat), once however often they click."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from sqlalchemy import select

from bot.db.models import Appeal, AppealEvent, AuditEntry, TranscriptMessage
from bot.handoff import drafts
from bot.message import Attachment, AttachmentKind, ChatType, Platform, Reply
from bot.state import ConversationKey
from tests.staff.conftest import World, csrf_of, login

STAFF_GROUP = {"chat_id": "staff-grp", "chat_type": ChatType.GROUP, "chat_title": "幸福里工作人员群"}
OFFER = "要继续登记刚才的问题吗？"


async def _state(world: World, who: str = "res-wang") -> dict[str, Any] | None:
    return await world.rt.store.get_state(ConversationKey(Platform.REST, who, who))


async def _appeals(world: World) -> list[Appeal]:
    async with world.rt.db.unit_of_work() as uow:
        return list((await uow.session.execute(select(Appeal).order_by(Appeal.id))).scalars())


async def _at_confirm(world: World) -> None:
    """The resident fills the form up to its summary (description and place at once, no photo, no phone)."""
    await world.say("3栋2单元楼道灯坏了好几天了")
    await world.say("/skip")
    summary = await world.say("/skip")
    assert any("请核对您的诉求" in r for r in summary), summary


async def _at_place(world: World) -> None:
    """The resident has described the problem; the form asks where it is."""
    replies = await world.say("水管漏水了好几天了")
    assert any("问题在哪里" in r for r in replies), replies


async def _release(world: World, conv: int) -> None:
    desk = world.rt.dispatcher.handoff
    async with world.rt.db.unit_of_work() as uow:
        released = await desk.release(uow.session, conv, world.lina.person_id)
        await uow.commit()
    await desk.send(released.notices, world.rt.outbound)


def _last_to(world: World, who: str = "res-wang") -> Reply:
    return [r for r in world.sender.sent if r.recipient_id == who][-1]


async def _staff_in_chat(world: World) -> None:
    """李娜 links her chat identity "tg-lina" to her account and binds the staff group."""
    code = await world.invite(world.demo, "staff", account=world.lina)
    await world.say(f"/join {code}", who="tg-lina", name="娜娜")
    await world.say("/staffchat", who="tg-lina", name="娜娜", **STAFF_GROUP)


async def _staff_says(world: World, text: str) -> list[str]:
    """李娜 in the staff group, addressing the bot; the answers without the "@娜娜 " they start with."""
    replies = await world.say(text, who="tg-lina", name="娜娜", mentions_bot=True, **STAFF_GROUP)
    return [r.removeprefix("@娜娜 ") for r in replies]


# --- while staff hold the conversation ------------------------------------------------------------------
async def test_form_buttons_are_inert_while_staff_hold_the_conversation(world: World) -> None:
    await _at_confirm(world)
    before = await _state(world)
    assert before is not None and before["state"] == "confirm"
    conv = await world.conversation_of("res-wang")
    await world.take(conv)

    for text in ("/confirm", "确认提交", "/edit place", "/skip", "4栋1单元", "/cancel", "/resume_form"):
        assert await world.say(text) == [], text
    assert await _appeals(world) == []
    after = await _state(world)
    assert after is not None and after["state"] == "confirm" and after["slots"] == before["slots"]
    async with world.rt.db.unit_of_work() as uow:
        texts = list(
            (
                await uow.session.execute(
                    select(TranscriptMessage.text).where(
                        TranscriptMessage.conversation_id == conv, TranscriptMessage.author == "resident"
                    )
                )
            ).scalars()
        )
    assert "/confirm" in texts and "4栋1单元" in texts


# --- after staff give the conversation back -------------------------------------------------------------
async def test_after_release_the_form_is_offered_back_and_resumes_where_it_stopped(world: World) -> None:
    await _at_place(world)
    conv = await world.conversation_of("res-wang")
    await world.take(conv)
    # Staff held it longer than a form may stay idle: that time does not count against the form.
    state = await _state(world)
    assert state is not None
    stale = time.time() - world.rt.settings.dialog_idle_timeout_s - 60
    await world.rt.store.put_state(
        ConversationKey(Platform.REST, "res-wang", "res-wang"), {**state, "updated_at": stale}
    )
    await _release(world, conv)

    left, offer = [r for r in world.sender.sent if r.recipient_id == "res-wang"][-2:]
    assert "李娜已结束本次服务" in left.text and not left.buttons
    assert OFFER in offer.text and "水管漏水了好几天了" in offer.text
    assert [(b.title, b.payload) for b in offer.buttons] == [
        ("继续登记", "/resume_form"),
        ("不用了", "/drop_form"),
    ]

    resumed = await world.say("/resume_form")
    assert len(resumed) == 1 and resumed[0].startswith("我们继续刚才的登记") and "问题在哪里" in resumed[0]
    assert "photo" not in str((await _state(world) or {}).get("state"))
    photo = await world.say("3栋2单元")
    assert any("照片" in r for r in photo), photo
    await world.say("/skip")
    await world.say("/skip")
    created = await world.say("/confirm")
    assert any("已提交，诉求编号" in r for r in created), created
    appeals = await _appeals(world)
    assert len(appeals) == 1 and appeals[0].building == "3" and "水管漏水了" in appeals[0].description


async def test_the_offer_accepts_a_typed_yes(world: World) -> None:
    await _at_place(world)
    conv = await world.conversation_of("res-wang")
    await world.take(conv)
    await _release(world, conv)
    resumed = await world.say("好的")
    assert resumed[0].startswith("我们继续刚才的登记"), resumed


async def test_a_photo_the_form_asked_for_answers_the_offer(world: World) -> None:
    await _at_place(world)
    await world.say("3栋2单元")  # the form asks for a photo
    conv = await world.conversation_of("res-wang")
    await world.take(conv)
    await _release(world, conv)
    photo = (Attachment(AttachmentKind.PHOTO, file_id="p-1"),)
    replies = await world.say("", attachments=photo)
    assert not any(OFFER in r for r in replies), replies
    state = await _state(world)
    assert state is not None and drafts.PAUSED not in state and state["slots"].get("photo")


async def test_declining_the_offer_drops_the_draft_politely(world: World) -> None:
    await _at_confirm(world)
    conv = await world.conversation_of("res-wang")
    await world.take(conv)
    await _release(world, conv)
    assert await world.say("/drop_form") == ["好的，刚才的登记就不继续了。有新的问题随时告诉我。"]
    assert await _state(world) is None
    # The old summary's button does nothing now, and neither does the offer's.
    assert await world.say("/confirm") == ["这次登记已经结束了，不用再点了。有新的问题可以直接告诉我。"]
    assert await world.say("/resume_form") == ["刚才的登记已经结束了。有问题可以直接告诉我，我帮您重新登记。"]
    assert await _appeals(world) == []


async def test_a_typed_no_declines_too(world: World) -> None:
    await _at_place(world)
    conv = await world.conversation_of("res-wang")
    await world.take(conv)
    await _release(world, conv)
    assert await world.say("不用了") == ["好的，刚才的登记就不继续了。有新的问题随时告诉我。"]
    assert await _state(world) is None


async def test_writing_something_new_lets_the_offer_lapse(world: World) -> None:
    await _at_place(world)
    conv = await world.conversation_of("res-wang")
    await world.take(conv)
    await _release(world, conv)
    # Not read as the place the form asked for: answered as any question is.
    replies = await world.say("下水道堵了找谁")
    assert replies and not any("位置" in r or "继续刚才的登记" in r for r in replies), replies
    assert await _state(world) is None


async def test_an_old_form_button_after_release_asks_the_offer_again(world: World) -> None:
    await _at_confirm(world)
    conv = await world.conversation_of("res-wang")
    await world.take(conv)
    await _release(world, conv)
    again = await world.say("/confirm")
    assert len(again) == 1 and OFFER in again[0], again
    assert await _appeals(world) == []
    state = await _state(world)
    assert state is not None and state.get(drafts.PAUSED)


async def test_no_offer_without_a_form(world: World) -> None:
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    await world.take(conv)
    await _release(world, conv)
    assert not any(OFFER in t for t in world.sender.to("res-wang"))


async def test_releasing_from_chat_and_auto_release_offer_the_form_too(world: World) -> None:
    await _staff_in_chat(world)
    await _at_place(world)
    conv = await world.conversation_of("res-wang")
    await _staff_says(world, f"/take {conv}")
    await _staff_says(world, f"/release {conv}")
    await world.flush_notices()
    assert OFFER in world.sender.to("res-wang")[-1]
    assert world.sender.to("res-wang")[-2].startswith("工作人员李娜已结束本次服务")
    # Queued for the notice job, the offer keeps its buttons.
    assert [b.payload for b in _last_to(world).buttons] == [drafts.RESUME, drafts.DISCARD]

    assert (await world.say("继续登记"))[0].startswith("我们继续刚才的登记")
    from datetime import timedelta

    from sqlalchemy import update

    from bot.db.models import Handoff, utcnow

    await world.take(conv)
    quiet = utcnow() - timedelta(seconds=world.rt.settings.handoff_quiet_release_s + 5)
    async with world.rt.db.unit_of_work() as uow:
        await uow.session.execute(update(Handoff).values(last_activity_at=quiet))
        await uow.commit()
    assert await world.rt.dispatcher.handoff.release_quiet(world.rt.db, world.rt.outbound) == 1
    assert "一段时间没有新消息" in world.sender.to("res-wang")[-2]
    assert OFFER in world.sender.to("res-wang")[-1]


async def test_in_a_group_the_offer_names_the_resident_and_hides_numbers(world: World) -> None:
    group = {"chat_id": "grp-3", "chat_type": ChatType.GROUP, "chat_title": "幸福里3栋业主群"}
    replies = await world.say("@回音 我要报修 水管漏水了，电话13812345678", mentions_bot=True, **group)
    assert any("问题在哪里" in r for r in replies), replies
    conv = await world.conversation_of("res-wang", "grp-3")
    await world.take(conv)
    await _release(world, conv)
    offer = world.sender.in_chat("grp-3")[-1]
    assert offer.startswith("@王阿姨 ") and OFFER in offer and "13812345678" not in offer
    resumed = await world.say("/resume_form", **group)
    assert resumed and "继续刚才的登记" in resumed[0], resumed
    # Offered again after another hold, the resident talks to neighbours instead: the offer lapses
    # quietly, and the group's chatter is not answered.
    await world.take(conv)
    await _release(world, conv)
    assert await world.say("今天天气不错", **group) == []
    assert await world.rt.store.get_state(ConversationKey(Platform.REST, "grp-3", "res-wang")) is None
    assert await world.say("明天也不错", **group) == []


# --- staff file the appeal from the conversation ---------------------------------------------------------
async def test_staff_file_the_half_finished_form_from_chat_once(world: World) -> None:
    await _staff_in_chat(world)
    await _at_place(world)
    assert await world.say("3栋2单元") != []  # the form goes on: place given, photo asked
    conv = await world.conversation_of("res-wang")
    await _staff_says(world, f"/take {conv}")

    answer = await _staff_says(world, f"/file {conv}")
    found = re.search(r"HY-\d{8}-\d{4}", " ".join(answer))
    assert found and "登记诉求" in answer[0], answer
    public_id = found.group(0)
    await world.flush_notices()
    told = world.sender.to("res-wang")[-1]
    assert public_id in told and "李娜已为您登记诉求" in told

    again = await _staff_says(world, f"@回音 登记 {conv}")
    assert again == [f"对话 #{conv} 已经登记过诉求 {public_id}，没有重复登记。"]
    appeals = await _appeals(world)
    assert len(appeals) == 1
    appeal = appeals[0]
    assert appeal.public_id == public_id and "水管漏水了" in appeal.description and appeal.building == "3"
    async with world.rt.db.unit_of_work() as uow:
        event = (
            (await uow.session.execute(select(AppealEvent).where(AppealEvent.appeal_id == appeal.id)))
            .scalars()
            .one()
        )
        audits = list(
            (
                await uow.session.execute(
                    select(AuditEntry).where(AuditEntry.action == "appeal.file_from_conversation")
                )
            ).scalars()
        )
    assert event.actor == f"staff:{world.lina.person_id}" and "工作人员李娜" in event.note
    assert len(audits) == 1 and audits[0].actor_person_id == world.lina.person_id
    assert audits[0].detail["appeal"] == public_id and audits[0].detail["from"] == "form"

    # Given back, the form is not offered again (its appeal is filed), and its old buttons say so.
    await _staff_says(world, f"/release {conv}")
    await world.flush_notices()
    assert not any(OFFER in t for t in world.sender.to("res-wang"))
    assert await world.say("/skip") == [f"这条诉求已经提交过了，编号 {public_id}。"]
    assert len(await _appeals(world)) == 1


async def test_staff_file_with_their_own_words_or_from_the_transcript(world: World) -> None:
    await _staff_in_chat(world)
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    await _staff_says(world, f"/take {conv}")
    assert await world.say("楼上漏水到我家厨房了，5栋1单元302") == []

    answer = await _staff_says(world, f"/file {conv}")
    assert "登记诉求" in answer[0], answer
    appeal = (await _appeals(world))[0]
    assert "楼上漏水到我家厨房了" in appeal.description and appeal.building == "5" and appeal.room == "302"

    # A second problem in another handoff, described by staff.
    await _staff_says(world, f"/release {conv}")
    await _staff_says(world, f"/take {conv}")
    answer = await _staff_says(world, f"@回音 登记 {conv} 东门路灯不亮")
    assert "登记诉求" in answer[0], answer
    appeals = await _appeals(world)
    assert len(appeals) == 2 and appeals[1].description == "东门路灯不亮"


async def test_filing_needs_something_to_file_and_staff_rights(world: World) -> None:
    await _staff_in_chat(world)
    await world.say("你好")
    conv = await world.conversation_of("res-wang")
    assert await _staff_says(world, f"/file {conv}") == [
        f"对话 #{conv} 里还没有可登记的内容，请写明问题：/file {conv} 问题描述"
    ]
    # A resident's /file is refused; their "登记 502 …" is their own report, not a staff command.
    await world.say("你好", who="res-li", name="李先生")  # not his first message: no privacy notice
    assert await world.say(f"/file {conv} 假的", who="res-li", name="李先生") == [
        "抱歉，这个指令只有本社区的工作人员可以使用。"
    ]
    own = await world.say("登记 502 厨房水管漏水", who="res-li", name="李先生")
    assert own and not any("工作人员可以使用" in r for r in own), own
    assert await _appeals(world) == []
    usage = await _staff_says(world, "/help")
    assert any("/file 编号" in r for r in usage), usage


async def test_staff_file_from_the_console_once(world: World, console: httpx.AsyncClient) -> None:
    await _at_place(world)
    conv = await world.conversation_of("res-wang")
    await login(console, "lina")
    page = await console.get(f"/staff/conversations/{conv}")
    assert "登记为诉求" in page.text and 'data-testid="file-confirm"' in page.text
    token = csrf_of(page.text)
    await console.post(f"/staff/conversations/{conv}/take", data={"csrf": token})

    filed = await console.post(f"/staff/conversations/{conv}/file", data={"csrf": token, "text": ""})
    assert filed.status_code == 303
    location = filed.headers["location"]
    assert "done=filed" in location
    public_id = (await _appeals(world))[0].public_id
    shown = await console.get(location)
    assert f"已登记为诉求 {public_id}" in shown.text
    assert public_id in world.sender.to("res-wang")[-1]

    twice = await console.post(f"/staff/conversations/{conv}/file", data={"csrf": token})
    assert "done=file_already" in twice.headers["location"]
    assert len(await _appeals(world)) == 1
    # Without the CSRF token nothing is filed.
    refused = await console.post(f"/staff/conversations/{conv}/file", data={"text": "东门路灯不亮"})
    assert refused.status_code == 403
    assert len(await _appeals(world)) == 1


async def test_filing_a_form_the_bot_is_still_running_ends_that_form(world: World) -> None:
    """Nobody holds the conversation: staff file the form the resident is filling, and the form stops
    there (its next answer does not file a second appeal, nor go on asking)."""
    await _staff_in_chat(world)
    await _at_place(world)
    await world.say("3栋2单元")
    conv = await world.conversation_of("res-wang")
    answer = await _staff_says(world, f"/file {conv}")
    public_id = re.search(r"HY-\d{8}-\d{4}", answer[0])
    assert public_id, answer
    state = await _state(world)
    assert state is not None and state[drafts.PAUSED]["filed"] == public_id.group(0)
    # A second click finds the form filed.
    again = await _staff_says(world, f"/file {conv}")
    assert again == [f"对话 #{conv} 已经登记过诉求 {public_id.group(0)}，没有重复登记。"]
    assert await world.say("/skip") == [f"这条诉求已经提交过了，编号 {public_id.group(0)}。"]
    assert await _state(world) is None
    # Another problem staff describe is another appeal, once however often they send it.
    for _ in range(2):
        second = await _staff_says(world, f"/file {conv} 东门路灯不亮")
    assert public_id.group(0) not in second[0] and "已经登记过" in second[0], second
    assert [a.description for a in await _appeals(world)][1:] == ["东门路灯不亮"]
