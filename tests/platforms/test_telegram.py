"""Telegram through python-telegram-bot: recorded Update JSON posted to the real webhook, replies sent to a
local fake Bot API server, and the tests assert exactly what was sent."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.db.models import PlatformIdentity, TranscriptMessage
from bot.message import Platform, Reply, Target
from bot.runtime import Runtime
from tests.platforms.conftest import (
    TG_SECRET,
    TelegramFake,
    inbound_rows,
    inbound_transcript,
    load_json,
    slow_down_core,
)
from tests.platforms.fake_api import Call, FakeAPI

URL = "/webhooks/telegram/webhook"
WANG = 5012345678
LI = 5098765432
GROUP = -1001987654321


async def post(
    client: httpx.AsyncClient, update: dict[str, Any], secret: str | None = TG_SECRET
) -> httpx.Response:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    return await client.post(URL, json=update, headers=headers)


def sent(api: FakeAPI) -> list[Call]:
    return api.to("/sendMessage")


def buttons(call: Call) -> list[dict[str, str]]:
    markup = call.json_field("reply_markup") or {}
    return [b for row in markup.get("inline_keyboard", []) for b in row]


def callback(
    data: str, *, user: int = WANG, chat: int = WANG, query_id: str = "2156370184620155431"
) -> dict[str, Any]:
    update = load_json("telegram_callback_query.json")
    update["callback_query"]["data"] = data
    update["callback_query"]["id"] = query_id
    update["callback_query"]["from"]["id"] = user
    if chat < 0:
        update["callback_query"]["message"]["chat"] = {
            "id": chat,
            "title": "幸福里3栋业主群",
            "type": "supergroup",
        }
    return update


async def test_private_text_is_answered_with_an_inline_keyboard_and_a_button_press_continues(
    client: httpx.AsyncClient, fake_api: FakeAPI
) -> None:
    r = await post(client, load_json("telegram_private_text.json"))
    assert r.status_code == 200
    [ask_photo] = sent(fake_api)
    assert ask_photo.data["chat_id"] == str(WANG)
    assert "照片" in ask_photo.data["text"]
    [skip] = buttons(ask_photo)
    assert "跳过" in skip["text"]
    assert skip["callback_data"].startswith("b:") and len(skip["callback_data"].encode()) <= 64

    r = await post(client, callback(skip["callback_data"]))
    assert r.status_code == 200
    assert len(fake_api.to("/answerCallbackQuery")) == 1, "the button's spinner is stopped"
    assert len(fake_api.to("/editMessageReplyMarkup")) == 1, "a choice is made once: keyboard removed"
    ask_contact = sent(fake_api)[-1]
    assert ask_contact.data["chat_id"] == str(WANG) and "电话" in ask_contact.data["text"]


async def test_forged_or_missing_secret_is_refused_and_nothing_is_processed(
    client: httpx.AsyncClient, fake_api: FakeAPI, runtime: Runtime
) -> None:
    for secret in ("wrong-secret", None, ""):
        r = await post(client, load_json("telegram_private_text.json"), secret=secret)
        assert r.status_code == 403
    assert sent(fake_api) == []
    assert await inbound_rows(runtime) == 0


async def test_bad_bodies_are_refused(client: httpx.AsyncClient, fake_api: FakeAPI) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Type": "application/json"}
    r = await client.post(URL, content=b"{not json", headers=headers)
    assert r.status_code == 400
    r = await client.post(URL, json=["not", "an", "update"], headers=headers)
    assert r.status_code == 400
    r = await client.post(URL, json={"message": {"text": "no update_id"}}, headers=headers)
    assert r.status_code == 400
    r = await client.post(
        URL, json={"update_id": 1, "message": {"text": "no chat, no date"}}, headers=headers
    )
    assert r.status_code == 400
    t = time.perf_counter()
    r = await client.post(URL, content=b'{"update_id": 1, "x": "' + b"a" * 70_000 + b'"}', headers=headers)
    assert r.status_code == 413 and time.perf_counter() - t < 1
    assert sent(fake_api) == []


async def test_group_chatter_is_ignored_and_service_messages_too(
    client: httpx.AsyncClient, fake_api: FakeAPI
) -> None:
    assert (await post(client, load_json("telegram_group_chatter.json"))).status_code == 200
    assert (await post(client, load_json("telegram_group_new_member.json"))).status_code == 200
    assert sent(fake_api) == []


async def test_group_mention_is_detected_case_insensitively_and_the_answer_quotes_the_resident(
    client: httpx.AsyncClient, fake_api: FakeAPI, runtime: Runtime
) -> None:
    update = load_json("telegram_group_mention.json")
    assert (await post(client, update)).status_code == 200
    [answer] = sent(fake_api)
    assert answer.data["chat_id"] == str(GROUP)
    assert answer.json_field("reply_parameters")["message_id"] == update["message"]["message_id"]
    assert answer.data["text"].startswith("@秀英 王 "), "the core names the resident it answers"
    async with runtime.db.unit_of_work() as uow:
        row = await uow.session.scalar(select(TranscriptMessage).where(TranscriptMessage.direction == "in"))
        assert row is not None and row.text == "3栋2单元楼道灯坏了好几天了", (
            "the bot's own mention is removed"
        )


async def test_reply_to_the_bot_in_a_group_addresses_it(client: httpx.AsyncClient, fake_api: FakeAPI) -> None:
    assert (await post(client, load_json("telegram_group_reply_to_bot.json"))).status_code == 200
    [answer] = sent(fake_api)
    assert answer.data["chat_id"] == str(GROUP)


async def test_commands_for_this_bot_are_handled_and_for_other_bots_ignored(
    client: httpx.AsyncClient, fake_api: FakeAPI, runtime: Runtime
) -> None:
    assert (await post(client, load_json("telegram_group_command_other_bot.json"))).status_code == 200
    assert sent(fake_api) == []
    assert (await post(client, load_json("telegram_group_command.json"))).status_code == 200
    assert sent(fake_api), "/report@huiyin_test_bot starts the appeal dialog"
    texts = [text for text, _payload in await inbound_transcript(runtime)]
    assert texts == ["/report 5栋1单元门口的路灯不亮"]


async def test_start_and_help_commands_in_private(
    client: httpx.AsyncClient, fake_api: FakeAPI, runtime: Runtime
) -> None:
    update = load_json("telegram_private_text.json")
    update["message"]["text"] = "/start"
    update["message"]["entities"] = [{"offset": 0, "length": 6, "type": "bot_command"}]
    await post(client, update)
    help_text = runtime.dispatcher.words.get("help", bot_name=runtime.settings.bot_name)
    # A first private contact: the help, with the privacy notice under it.
    first = sent(fake_api)[-1].data["text"]
    assert first.startswith(help_text) and "隐私说明" in first


async def test_group_form_moves_private_and_a_blocked_private_chat_gets_a_deep_link_hint(
    client: httpx.AsyncClient, fake_api: FakeAPI, tg_fake: TelegramFake
) -> None:
    await post(client, load_json("telegram_group_mention.json"))
    [ask_photo] = sent(fake_api)
    [skip] = buttons(ask_photo)
    tg_fake.blocked.add(WANG)
    r = await post(client, callback(skip["callback_data"], chat=GROUP, query_id="77"))
    assert r.status_code == 200
    calls = sent(fake_api)[1:]
    to_wang = [c for c in calls if c.data["chat_id"] == str(WANG)]
    to_group = [c for c in calls if c.data["chat_id"] == str(GROUP)]
    assert to_wang, "the contact question went to the resident privately (and Telegram refused it)"
    assert all("电话" not in c.data["text"] or "私聊" in c.data["text"] for c in to_group)
    hint = next(c for c in to_group if "私聊" in c.data["text"] and buttons(c) and "url" in buttons(c)[0])
    assert buttons(hint)[0]["url"] == "https://t.me/huiyin_test_bot?start=continue"


async def test_a_neighbour_cannot_press_someone_elses_button(
    client: httpx.AsyncClient, fake_api: FakeAPI
) -> None:
    await post(client, load_json("telegram_group_mention.json"))
    [skip] = buttons(sent(fake_api)[0])
    await post(client, callback(skip["callback_data"], user=LI, chat=GROUP, query_id="88"))
    [answer] = fake_api.to("/answerCallbackQuery")
    assert "其他居民" in answer.data["text"]
    assert len(sent(fake_api)) == 1 and fake_api.to("/editMessageReplyMarkup") == []


async def test_an_expired_button_is_answered_politely(client: httpx.AsyncClient, fake_api: FakeAPI) -> None:
    await post(client, callback("b:doesnotexist"))
    [answer] = fake_api.to("/answerCallbackQuery")
    assert "过期" in answer.data["text"]
    assert sent(fake_api) == []


async def test_in_a_group_form_the_last_question_asks_for_a_reply(
    client: httpx.AsyncClient, fake_api: FakeAPI
) -> None:
    # Without a description the form asks for one, with no buttons: a selective ForceReply opens a reply
    # to the bot in the resident's client, so privacy mode delivers their answer.
    update = load_json("telegram_group_command.json")
    update["message"]["text"] = "/report@huiyin_test_bot"
    await post(client, update)
    question = sent(fake_api)[-1]
    assert question.json_field("reply_markup") == {"force_reply": True, "selective": True}
    assert question.json_field("reply_parameters")["message_id"] == update["message"]["message_id"]


async def test_photo_is_downloaded_and_its_file_id_kept(
    client: httpx.AsyncClient, fake_api: FakeAPI, runtime: Runtime
) -> None:
    await post(client, load_json("telegram_private_text.json"))
    await post(client, load_json("telegram_private_photo.json"))
    [get_file] = fake_api.to("/getFile")
    assert get_file.data["file_id"] == "AgACAgUAAxkBAAIBZ2kmLarge", "the largest size is kept"
    stored = Path(runtime.settings.data_dir) / "media" / "telegram" / "AQADlarge.jpg"
    assert stored.read_bytes().startswith(b"\xff\xd8")
    async with runtime.db.unit_of_work() as uow:
        payloads = (
            await uow.session.scalars(
                select(TranscriptMessage.payload).where(TranscriptMessage.direction == "in")
            )
        ).all()
    photo = next(p for p in payloads if p)["attachments"][0]
    assert photo["kind"] == "photo" and photo["file_id"] == "AgACAgUAAxkBAAIBZ2kmLarge"
    assert photo["url"] == stored.resolve().as_uri()
    assert "电话" in sent(fake_api)[-1].data["text"], "the photo step is done; the form goes on"


async def test_location_reaches_the_core(
    client: httpx.AsyncClient, fake_api: FakeAPI, runtime: Runtime
) -> None:
    await post(client, load_json("telegram_private_location.json"))
    async with runtime.db.unit_of_work() as uow:
        payload = await uow.session.scalar(
            select(TranscriptMessage.payload).where(TranscriptMessage.direction == "in")
        )
    assert payload == {"attachments": [{"kind": "location", "latitude": 31.230416, "longitude": 121.473701}]}


async def test_unsupported_messages_get_a_polite_reply_in_private_only(
    client: httpx.AsyncClient, fake_api: FakeAPI, runtime: Runtime
) -> None:
    await post(client, load_json("telegram_private_sticker.json"))
    [reply] = sent(fake_api)
    assert reply.data["text"] == runtime.dispatcher.words.get("unsupported_attachment")
    assert "目前支持文字、图片和位置" in reply.data["text"]
    group_sticker = load_json("telegram_private_sticker.json")
    group_sticker["message"]["chat"] = {"id": GROUP, "title": "幸福里3栋业主群", "type": "supergroup"}
    await post(client, group_sticker)
    assert len(sent(fake_api)) == 1, "a sticker in a group is not addressed to the bot"


async def test_a_redelivered_update_has_no_second_effect(
    client: httpx.AsyncClient, fake_api: FakeAPI, runtime: Runtime
) -> None:
    update = load_json("telegram_private_text.json")
    for _ in range(3):
        assert (await post(client, update)).status_code == 200
    assert len(sent(fake_api)) == 1
    assert await inbound_rows(runtime) == 1


async def test_a_resident_is_one_person_across_group_and_private_chats(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await post(client, load_json("telegram_group_mention.json"))
    await post(client, load_json("telegram_private_location.json"))
    async with runtime.db.unit_of_work() as uow:
        ids = (
            await uow.session.scalars(
                select(PlatformIdentity.external_id).where(PlatformIdentity.platform == "telegram")
            )
        ).all()
    assert ids == [str(WANG)]


async def test_the_sender_delivers_proactive_replies_and_reports_refusals(
    client: httpx.AsyncClient, fake_api: FakeAPI, tg_fake: TelegramFake, runtime: Runtime
) -> None:
    note = Reply("您的诉求 HY-20261122-0001 已受理。", chat_id=str(WANG), recipient_id=str(WANG))
    assert await runtime.outbound.deliver(Platform.TELEGRAM, [note]) == []
    assert sent(fake_api)[-1].data == {"chat_id": str(WANG), "text": note.text}
    tg_fake.blocked.add(LI)
    private = Reply("请留电话", chat_id=str(LI), recipient_id=str(LI), target=Target.PRIVATE)
    assert await runtime.outbound.deliver(Platform.TELEGRAM, [private]) == [private]


@pytest.mark.parametrize("secret", [None, "has spaces", "x" * 257])
async def test_setup_refuses_a_webhook_without_a_usable_secret(runtime: Runtime, secret: str | None) -> None:
    from pydantic import SecretStr

    from bot.app import create_app
    from integrations import telegram

    runtime.settings.telegram_secret = SecretStr(secret) if secret is not None else None
    with pytest.raises(ValueError, match="HUIYIN_TELEGRAM_SECRET"):
        await telegram.setup(create_app(runtime=runtime), runtime)


async def test_an_unaddressed_photo_in_a_group_is_not_downloaded(
    client: httpx.AsyncClient, fake_api: FakeAPI
) -> None:
    update = load_json("telegram_private_photo.json")
    update["message"]["chat"] = {"id": GROUP, "title": "幸福里3栋业主群", "type": "supergroup"}
    assert (await post(client, update)).status_code == 200
    assert fake_api.to("/getFile") == [] and sent(fake_api) == []


async def test_concurrent_redeliveries_of_an_update_send_its_replies_once(
    client: httpx.AsyncClient, fake_api: FakeAPI, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram sends an update again when the first delivery was slow to answer: the copies that arrive
    while the first is still being handled must not send its replies a second and third time."""
    slow_down_core(runtime, monkeypatch, delay_s=0.3)
    update = load_json("telegram_private_text.json")
    answers = await asyncio.gather(*(post(client, update) for _ in range(3)))
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len(sent(fake_api)) == 1
    assert await inbound_rows(runtime) == 1
