"""WeCom through wechatpy's enterprise crypto: the self-built app's encrypted XML callbacks, the intelligent
robot's encrypted JSON callbacks (recorded per WeCom's docs), the app message API, response_url and the
staff group robot, all against a local fake API server."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from wechatpy.enterprise import parse_message
from wechatpy.enterprise.crypto import WeChatCrypto as EnterpriseCrypto

from bot.db.models import PlatformIdentity
from bot.message import Platform, Reply
from bot.runtime import Runtime
from integrations.wecom.channel import WeComChannel
from integrations.wecom.notify import StaffGroupRobot
from tests.platforms.conftest import (
    ROBOT_AES_KEY,
    ROBOT_TOKEN,
    WECOM_AES_KEY,
    WECOM_CORP,
    WECOM_TOKEN,
    inbound_rows,
    inbound_transcript,
    load,
    load_json,
    robot_decrypt,
    robot_encrypted,
    sign,
    slow_down_core,
    wecom_app_decrypt,
    wecom_app_encrypted,
)
from tests.platforms.fake_api import FakeAPI

URL = "/webhooks/wecom/webhook"
CHAT = "wrkSFfCgAAxr0Lm3YbFsZ9wRw0pT1E7A"


def channel(client: httpx.AsyncClient) -> WeComChannel:
    wecom: WeComChannel = client.app.state.wecom  # type: ignore[attr-defined]
    return wecom


async def app_text_reply(client: httpx.AsyncClient, content: str, msg_id: str) -> Any:
    """Post the recorded app text message with ``content`` and ``msg_id`` (encrypted and signed, as WeCom
    does); returns the passive reply, decrypted and parsed by wechatpy."""
    xml = (
        load("wecom_app_text.xml")
        .replace("3栋2单元楼道灯坏了好几天了", content)
        .replace("7436201458916352010", msg_id)
    )
    query, body = wecom_app_encrypted(xml)
    response = await client.post(URL, params=query, content=body.encode())
    return parse_message(wecom_app_decrypt(response.text))


def robot_payload(name: str, fake_api: FakeAPI, **changes: Any) -> dict[str, Any]:
    payload = load_json(name)
    if payload.get("response_url") == "RESPONSE_URL":
        payload["response_url"] = f"{fake_api.url}/cgi-bin/aibot/response?response_code=RC{time.time_ns()}"
    payload.update(changes)
    return payload


async def post_robot(client: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
    query, body = robot_encrypted(payload)
    return await client.post(URL, params=query, content=body)


def stream_text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    reply = robot_decrypt(response.json())
    assert reply["msgtype"] == "stream" and reply["stream"]["finish"] is True
    return str(reply["stream"]["content"])


async def test_url_verification_for_the_app_and_the_robot(client: httpx.AsyncClient) -> None:
    for token, key, receive_id in (
        (WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP),
        (ROBOT_TOKEN, ROBOT_AES_KEY, ""),
    ):
        crypto = EnterpriseCrypto(token, key, receive_id)
        timestamp, nonce = str(int(time.time())), "1372623149"
        encrypted = crypto.encrypt_message("echo-4231783921", nonce, timestamp)
        echostr = encrypted.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
        query = {
            "msg_signature": sign(token, timestamp, nonce, echostr),
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": echostr,
        }
        r = await client.get(URL, params=query)
        assert r.status_code == 200 and r.text == "echo-4231783921"
        query["msg_signature"] = "0" * 40
        assert (await client.get(URL, params=query)).status_code == 403


async def test_app_message_gets_an_encrypted_passive_reply(
    client: httpx.AsyncClient, fake_api: FakeAPI
) -> None:
    query, body = wecom_app_encrypted(load("wecom_app_text.xml"))
    r = await client.post(URL, params=query, content=body.encode())
    assert r.status_code == 200 and "<Encrypt>" in r.text
    reply = parse_message(wecom_app_decrypt(r.text))
    assert reply.target == "WangXiuYing" and reply.agent == 1000002
    assert "照片" in reply.content and "1. 没有照片，跳过" in reply.content
    # The resident answers "1": the numbered option's payload reaches the core.
    reply = await app_text_reply(client, "1", "7436201458916352011")
    assert "电话" in reply.content
    assert fake_api.to("/message/send") == []


async def test_app_events_that_need_no_answer_get_an_empty_one(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    query, body = wecom_app_encrypted(load("wecom_app_enter_agent.xml"))
    r = await client.post(URL, params=query, content=body.encode())
    assert r.status_code == 200 and r.content == b""
    assert await inbound_rows(runtime) == 0


async def test_forged_malformed_and_hostile_callbacks_are_refused(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    query, body = wecom_app_encrypted(load("wecom_app_text.xml"))
    forged = {**query, "msg_signature": "a" * 40}
    assert (await client.post(URL, params=forged, content=body.encode())).status_code == 403
    assert (await client.post(URL, content=body.encode())).status_code == 403, "no signature at all"
    assert (await client.post(URL, params=query, content=b"<xml><Encrypt>")).status_code == 400
    bomb = load("wechat_billion_laughs.xml")
    t = time.perf_counter()
    assert (await client.post(URL, params=query, content=bomb.encode())).status_code == 400
    assert time.perf_counter() - t < 0.5
    rquery, rbody = robot_encrypted(load_json("wecom_robot_group_text.json"))
    assert (
        await client.post(URL, params={**rquery, "msg_signature": "b" * 40}, content=rbody)
    ).status_code == 403
    assert (await client.post(URL, params=rquery, content=b"{broken json")).status_code == 400
    assert (await client.post(URL, params=rquery, content=b'{"no_encrypt": 1}')).status_code == 400
    assert (await client.post(URL, params=rquery, content=b"plain words")).status_code == 400
    big = b'{"encrypt": "' + b"A" * 70_000 + b'"}'
    assert (await client.post(URL, params=rquery, content=big)).status_code == 413
    assert await inbound_rows(runtime) == 0


async def test_app_reply_that_misses_the_deadline_goes_through_the_app_message_api(
    client: httpx.AsyncClient, runtime: Runtime, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    wecom = channel(client)
    wecom.deadline_s = 0.2
    slow_down_core(runtime, monkeypatch)
    query, body = wecom_app_encrypted(load("wecom_app_text.xml"))
    t = time.perf_counter()
    r = await client.post(URL, params=query, content=body.encode())
    # Answered (empty) once the message is handled, not at the deadline; the replies go through the API.
    assert r.status_code == 200 and r.content == b"" and time.perf_counter() - t >= 1.0
    [token] = await fake_api.wait_for("/cgi-bin/gettoken")
    assert token.query == {"corpid": WECOM_CORP, "corpsecret": "wecom-app-secret"}
    [send] = await fake_api.wait_for("/cgi-bin/message/send")
    assert send.query == {"access_token": "WW-ACCESS-1"}
    assert send.data["touser"] == "WangXiuYing" and send.data["agentid"] == 1000002
    assert send.data["msgtype"] == "text" and "照片" in send.data["text"]["content"]


async def test_robot_group_mention_gets_a_stream_reply_and_private_questions_go_through_the_app(
    client: httpx.AsyncClient, runtime: Runtime, fake_api: FakeAPI
) -> None:
    r = await post_robot(client, robot_payload("wecom_robot_group_text.json", fake_api))
    first = stream_text(r)
    assert "照片" in first and "1. 没有照片，跳过" in first
    text, _payload = (await inbound_transcript(runtime))[0]
    assert text == "3栋2单元楼道灯坏了好几天了", "the leading @mention is the robot's own"

    r = await post_robot(
        client,
        robot_payload("wecom_robot_group_text.json", fake_api, msgid="m-2", text={"content": "@回音 1"}),
    )
    in_group = stream_text(r)
    assert "电话" not in in_group or "私" in in_group, "the phone question is not asked in the group"
    [private] = await fake_api.wait_for("/cgi-bin/message/send")
    assert private.data["touser"] == "WangXiuYing" and "电话" in private.data["text"]["content"]

    # The resident answers in the app's private chat: the same person, the same dialog.
    reply = await app_text_reply(client, "13812345678", "7436201458916352012")
    assert "确认" in reply.content or "提交" in reply.content
    async with runtime.db.unit_of_work() as uow:
        people = (
            await uow.session.scalars(
                select(PlatformIdentity.external_id).where(PlatformIdentity.platform == "wecom")
            )
        ).all()
    assert people == ["WangXiuYing"]


async def test_robot_voice_mixed_unsupported_and_welcome(
    client: httpx.AsyncClient, fake_api: FakeAPI, runtime: Runtime
) -> None:
    assert stream_text(await post_robot(client, robot_payload("wecom_robot_single_voice.json", fake_api)))
    assert stream_text(await post_robot(client, robot_payload("wecom_robot_group_mixed.json", fake_api)))
    r = await post_robot(client, robot_payload("wecom_robot_single_file.json", fake_api))
    assert stream_text(r) == runtime.dispatcher.words.get("unsupported_attachment")
    r = await post_robot(client, robot_payload("wecom_robot_enter_chat.json", fake_api))
    welcome = robot_decrypt(r.json())
    assert welcome == {
        "msgtype": "text",
        "text": {"content": runtime.dispatcher.words.get("greet", bot_name="回音")},
    }
    rows = await inbound_transcript(runtime)
    assert rows[0][0] == "下水道堵了找谁" and rows[0][1]["attachments"][0]["kind"] == "voice"
    assert rows[1][0] == "楼下垃圾好几天没人清了"
    assert rows[1][1]["attachments"][0]["url"].startswith("https://ww-aibot-img-")


async def test_robot_reply_that_misses_the_deadline_goes_to_response_url(
    client: httpx.AsyncClient, runtime: Runtime, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel(client).deadline_s = 0.2
    slow_down_core(runtime, monkeypatch)
    payload = robot_payload("wecom_robot_single_voice.json", fake_api)
    r = await post_robot(client, payload)
    assert r.status_code == 200 and r.content == b""
    [late] = await fake_api.wait_for("/cgi-bin/aibot/response")
    assert late.query["response_code"] == payload["response_url"].rsplit("=", 1)[1]
    assert late.data["msgtype"] == "markdown" and late.data["markdown"]["content"]
    # The same callback again (WeCom retried): nothing is delivered twice.
    await post_robot(client, payload)
    await channel(client).window.drain()
    assert len(fake_api.to("/cgi-bin/aibot/response")) == 1


async def test_staff_group_robot_and_the_app_sender(
    client: httpx.AsyncClient, fake_api: FakeAPI, runtime: Runtime
) -> None:
    staff: StaffGroupRobot = client.app.state.wecom_staff  # type: ignore[attr-defined]
    await staff.notify("新诉求 HY-20261122-0001：3栋2单元楼道灯坏了", mention_all=True)
    [posted] = fake_api.to("/cgi-bin/webhook/send")
    assert posted.query == {"key": "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"}
    assert posted.data == {
        "msgtype": "text",
        "text": {"content": "新诉求 HY-20261122-0001：3栋2单元楼道灯坏了", "mentioned_list": ["@all"]},
    }
    note = Reply("您的诉求已受理。", chat_id="WangXiuYing", recipient_id="WangXiuYing")
    assert await runtime.outbound.deliver(Platform.WECOM, [note]) == []
    group_note = Reply("群通知", chat_id=CHAT, recipient_id="WangXiuYing")
    assert await runtime.outbound.deliver(Platform.WECOM, [group_note]) == [group_note], (
        "robots cannot start a group message"
    )
    assert json.loads(fake_api.to("/cgi-bin/message/send")[-1].body)["text"]["content"] == "您的诉求已受理。"
