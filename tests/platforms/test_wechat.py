"""The WeChat Official Account through wechatpy: recorded callback XML (per WeChat's docs), signed and, in
safe mode (the fixtures' configuration), encrypted with wechatpy's crypto; passive replies read back with
wechatpy; customer-service messages sent to a local fake API server. Plaintext mode is the same account
without its AES key (the ``plaintext`` fixture)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis.exceptions
from wechatpy import parse_message

from bot.message import IncomingMessage, Platform, Reply
from bot.runtime import Runtime
from integrations.wechat.channel import WeChatChannel
from tests.platforms.conftest import (
    WX_TOKEN,
    inbound_rows,
    inbound_transcript,
    load,
    sign,
    slow_down_core,
    wechat_decrypt,
    wechat_encrypted,
    wechat_query,
)
from tests.platforms.fake_api import FakeAPI

URL = "/webhooks/wechat/webhook"
OPENID = "oRmM-6XBp0jNnGdBvtq5tYb2jHsM"


def channel(client: httpx.AsyncClient) -> WeChatChannel:
    wx: WeChatChannel = client.app.state.wechat  # type: ignore[attr-defined]
    return wx


@pytest.fixture
def plaintext(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    """The account in plaintext mode (明文模式): as if HUIYIN_WECHAT_AES_KEY were not set."""
    monkeypatch.setattr(channel(client), "crypto", None)
    return client


async def post(client: httpx.AsyncClient, xml: str, **query: str) -> httpx.Response:
    """Post ``xml`` as WeChat does: encrypted in safe mode, as it is in plaintext mode."""
    if channel(client).crypto is None:
        return await client.post(URL, params={**wechat_query(), **query}, content=xml.encode())
    signed, body = wechat_encrypted(xml)
    return await client.post(URL, params={**signed, **query}, content=body.encode())


def reply_content(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/xml"), response.text
    text = response.text
    if "<Encrypt>" in text:
        text = wechat_decrypt(text, {})
    reply = parse_message(text)  # a reply parses like a message: wechatpy reads it back
    assert reply.type == "text" and reply.target == OPENID
    return str(reply.content)


def text_xml(content: str, msg_id: int) -> str:
    return (
        load("wechat_text.xml")
        .replace("3栋2单元楼道灯坏了好几天了", content)
        .replace("24921376589463251", str(msg_id))
    )


async def test_url_verification(client: httpx.AsyncClient) -> None:
    query = {**wechat_query(), "echostr": "3972818726185603317"}
    r = await client.get(URL, params=query)
    assert r.status_code == 200 and r.text == "3972818726185603317"
    query["signature"] = "0" * 40
    assert (await client.get(URL, params=query)).status_code == 403
    stale = {**wechat_query(timestamp=str(int(time.time()) - 3600)), "echostr": "3972818726185603317"}
    assert (await client.get(URL, params=stale)).status_code == 403, "a captured verification is stale"


@pytest.mark.parametrize("mode", ["safe", "plaintext"])
async def test_a_message_gets_a_passive_reply_and_numbered_options_answer_by_number(
    client: httpx.AsyncClient, fake_api: FakeAPI, request: pytest.FixtureRequest, mode: str
) -> None:
    if mode == "plaintext":
        request.getfixturevalue("plaintext")
    r = await post(client, load("wechat_text.xml"))
    assert r.status_code == 200
    first = reply_content(r)
    assert "照片" in first and "\n1. 没有照片，跳过" in first, "buttons become numbered options"
    r = await post(client, text_xml("１", 24921376589463299))  # a full-width digit is still 1
    assert "电话" in reply_content(r), "the number chose the skip button; the form goes on"
    assert fake_api.to("/custom/send") == [], "answered passively, no API call"


async def test_safe_mode_message_is_decrypted_and_the_reply_encrypted(client: httpx.AsyncClient) -> None:
    query, body = wechat_encrypted(load("wechat_text.xml"))
    r = await client.post(URL, params=query, content=body.encode())
    assert r.status_code == 200
    assert "<Encrypt>" in r.text and "照片" not in r.text
    reply = parse_message(wechat_decrypt(r.text, query))
    assert reply.target == OPENID and "照片" in reply.content


async def test_forged_signatures_are_refused_and_nothing_is_processed(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    r = await post(client, load("wechat_text.xml"), signature="f" * 40)
    assert r.status_code == 403
    query, body = wechat_encrypted(load("wechat_text.xml"))
    query["msg_signature"] = sign("not-the-token", query["timestamp"], query["nonce"], "x")
    assert (await client.post(URL, params=query, content=body.encode())).status_code == 403
    # Encrypted with another account's key: the signature is right (same token), the AppID is not.
    from wechatpy.crypto import WeChatCrypto

    other = WeChatCrypto(WX_TOKEN, "B" * 43, "wx0000000000000000")
    encrypted = other.encrypt_message(load("wechat_text.xml"), "42", query["timestamp"])
    encrypt = encrypted.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    query["msg_signature"] = sign(WX_TOKEN, query["timestamp"], query["nonce"], encrypt)
    r = await client.post(
        URL, params=query, content=f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
    )
    assert r.status_code in {400, 403}
    assert await inbound_rows(runtime) == 0


@pytest.mark.parametrize("mode", ["safe", "plaintext"])
async def test_malformed_and_hostile_xml_is_refused_fast(
    client: httpx.AsyncClient, runtime: Runtime, request: pytest.FixtureRequest, mode: str
) -> None:
    """In safe mode the envelope must be parsed to check ``msg_signature`` over its ``<Encrypt>``: these
    bodies are what an attacker with a signed query string can post, parsed before anything is trusted."""
    if mode == "plaintext":
        request.getfixturevalue("plaintext")
    signed = wechat_encrypted(load("wechat_text.xml"))[0] if mode == "safe" else {}

    async def post_raw(body: str) -> httpx.Response:
        return await client.post(URL, params={**wechat_query(), **signed}, content=body.encode())

    assert (await post_raw("<xml><MsgType>text</MsgType>")).status_code == 400
    assert (await post_raw("not xml at all")).status_code == 400
    if mode == "plaintext":
        assert (await post_raw("<xml><ToUserName>a</ToUserName></xml>")).status_code == 400
    t = time.perf_counter()
    r = await post_raw(load("wechat_billion_laughs.xml"))
    assert r.status_code == 400 and time.perf_counter() - t < 0.5
    deep = "<xml>" + "<a>" * 9000 + "</a>" * 9000 + "</xml>"
    r = await post_raw(deep)
    assert r.status_code == 400 and "nests deeper" in r.json()["detail"]
    big = load("wechat_text.xml").replace("3栋2单元", "灯" * 30_000)
    t = time.perf_counter()
    r = await post_raw(big)
    assert r.status_code == 413 and time.perf_counter() - t < 0.5
    assert await inbound_rows(runtime) == 0


@pytest.mark.parametrize(
    "stamp",
    [
        -365 * 24 * 3600,  # a year old: a captured request
        -310,
        310,  # a clock (or a forger) in the future
        "",
        "12ab",
        "１２３",  # full-width digits are not a timestamp
        "-5",
    ],
)
async def test_a_stale_missing_or_malformed_timestamp_is_refused_unprocessed(
    client: httpx.AsyncClient, runtime: Runtime, stamp: int | str
) -> None:
    """The signatures are right (they sign whatever timestamp came); only the timestamp is wrong."""
    if isinstance(stamp, int):
        stamp = str(int(time.time()) + stamp)
    query, body = wechat_encrypted(load("wechat_text.xml"), timestamp=stamp)
    if not stamp:
        del query["timestamp"]
    r = await client.post(URL, params=query, content=body.encode())
    assert r.status_code == 403 and "timestamp" in r.json()["detail"]
    assert await inbound_rows(runtime) == 0


async def test_the_freshness_window_is_a_setting_and_allows_small_skew(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    for skew in (-250, 250):
        xml = text_xml("楼道灯坏了", 24921376589460000 + skew)
        query, body = wechat_encrypted(xml, timestamp=str(int(time.time()) + skew))
        assert (await client.post(URL, params=query, content=body.encode())).status_code == 200
    channel(client).max_age_s = 60  # HUIYIN_SIGNATURE_MAX_AGE_S=60
    query, body = wechat_encrypted(load("wechat_text.xml"), timestamp=str(int(time.time()) - 120))
    assert (await client.post(URL, params=query, content=body.encode())).status_code == 403


async def test_in_safe_mode_a_plaintext_callback_is_refused_whatever_its_url_signature(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """``signature`` covers timestamp and nonce, not the body: one captured query string would let anyone
    post as any OpenID. With the AES key set, only a body signed by ``msg_signature`` is believed."""
    forged = load("wechat_text.xml").replace("oRmM-6XBp0jNnGdBvtq5tYb2jHsM", "oVictim-OpenID")
    r = await client.post(URL, params=wechat_query(), content=forged.encode())
    assert r.status_code == 403 and "encrypt" in r.json()["detail"]
    query, body = wechat_encrypted(load("wechat_text.xml"))
    without_type = {k: v for k, v in query.items() if k != "encrypt_type"}
    assert (await client.post(URL, params=without_type, content=body.encode())).status_code == 403
    without_sig = {k: v for k, v in query.items() if k != "msg_signature"}
    assert (await client.post(URL, params=without_sig, content=body.encode())).status_code == 403
    # Compatible mode's body without its <Encrypt>: the plaintext copy is never read.
    r = await client.post(URL, params=query, content=forged.encode())
    assert r.status_code == 403
    assert await inbound_rows(runtime) == 0


async def test_in_plaintext_mode_a_signed_query_carries_one_body_only(
    plaintext: httpx.AsyncClient, runtime: Runtime
) -> None:
    query = wechat_query()
    first = await plaintext.post(URL, params=query, content=load("wechat_text.xml").encode())
    assert "照片" in reply_content(first)
    forged = text_xml("我要投诉物业", 24921376589469999).replace(OPENID, "oVictim-OpenID")
    r = await plaintext.post(URL, params=query, content=forged.encode())
    assert r.status_code == 403 and "nonce" in r.json()["detail"]
    # The same request again (WeChat retrying it) is still answered, once: the core's dedup.
    again = await plaintext.post(URL, params=query, content=load("wechat_text.xml").encode())
    assert again.status_code == 200 and again.text == "success"
    assert [text for text, _ in await inbound_transcript(runtime)] == ["3栋2单元楼道灯坏了好几天了"]


async def test_retries_of_one_msgid_have_one_effect_and_one_answer(
    client: httpx.AsyncClient, runtime: Runtime, fake_api: FakeAPI
) -> None:
    first = await post(client, load("wechat_text.xml"))
    assert "照片" in reply_content(first)
    for _ in range(3):
        again = await post(client, load("wechat_text.xml"))
        assert again.text == "success"
    assert await inbound_rows(runtime) == 1
    assert fake_api.to("/custom/send") == []


async def test_a_retry_after_redis_lost_its_data_gets_the_first_answer_and_has_no_second_effect(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    first = await post(client, load("wechat_text.xml"))
    assert "照片" in reply_content(first)
    await runtime.store.redis.flushdb()  # a restart of the in-process Redis, or a Redis that lost its data
    again = await post(client, load("wechat_text.xml"))
    assert again.status_code == 200 and reply_content(again) == reply_content(first)
    assert await inbound_rows(runtime) == 1


async def test_a_slow_answer_misses_the_window_and_goes_through_the_customer_service_api(
    client: httpx.AsyncClient, runtime: Runtime, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    wx = channel(client)
    wx.deadline_s = 0.2
    handle = slow_down_core(runtime, monkeypatch)
    t = time.perf_counter()
    r = await post(client, load("wechat_text.xml"))
    # Not answered at the deadline: "success" would make WeChat forget the message before the core has
    # stored it. Answered once it has, with the replies going out through the API.
    assert r.text == "success" and time.perf_counter() - t >= 1.0
    [token] = await fake_api.wait_for("/cgi-bin/stable_token")
    assert token.data == {
        "grant_type": "client_credential",
        "appid": "wx5823bf96d3bd56c7",
        "secret": "wx-app-secret",
    }
    [custom] = await fake_api.wait_for("/custom/send")
    assert custom.query == {"access_token": "WX-ACCESS-1"}
    assert custom.data["touser"] == OPENID and custom.data["msgtype"] == "text"
    assert "照片" in custom.data["text"]["content"] and "1. 没有照片，跳过" in custom.data["text"]["content"]
    assert "\\u" not in custom.body.decode(), "Chinese is sent as UTF-8, not escaped"
    # WeChat retries (our "success" got lost): the retry must not deliver a second time.
    r = await post(client, load("wechat_text.xml"))
    assert r.text == "success"
    await wx.window.drain()
    assert len(fake_api.to("/custom/send")) == 1
    # The number typed next still answers the options the late message offered.
    monkeypatch.setattr(runtime.dispatcher, "handle", handle)
    r = await post(client, text_xml("1", 24921376589463300))
    assert "电话" in reply_content(r)


async def test_a_late_reply_the_api_refuses_is_queued_and_retried(
    client: httpx.AsyncClient, runtime: Runtime, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply that missed the passive window and then failed at the customer-service API is not lost:
    it goes to the notice queue, whose job retries it through the same API."""
    from bot.handoff.notices import deliver_pending
    from bot.state import Keys

    refusals = [{"errcode": 45015, "errmsg": "response out of time limit"}]
    fake_api.on(
        "/cgi-bin/message/custom/send",
        lambda call: refusals.pop() if refusals else {"errcode": 0, "errmsg": "ok"},
    )
    wx = channel(client)
    wx.deadline_s = 0.2
    slow_down_core(runtime, monkeypatch)
    r = await post(client, load("wechat_text.xml"))
    assert r.text == "success"
    await fake_api.wait_for("/custom/send")
    await wx.window.drain()
    queued = await runtime.store.redis.lrange(Keys.NOTICES, 0, -1)
    assert len(queued) == 1 and "照片" in str(queued[0]) and OPENID in str(queued[0])
    assert await deliver_pending(runtime.store.redis, runtime.outbound) == 1
    [_, retried] = await fake_api.wait_for("/custom/send", count=2)
    assert retried.data["touser"] == OPENID and "1. 没有照片，跳过" in retried.data["text"]["content"]
    assert await runtime.store.redis.llen(Keys.NOTICES) == 0


async def test_voice_image_location_and_events(client: httpx.AsyncClient, runtime: Runtime) -> None:
    words = runtime.dispatcher.words
    r = await post(client, load("wechat_voice.xml"))
    assert r.status_code == 200 and reply_content(r), "the Recognition transcript is understood"
    r = await post(client, load("wechat_voice_no_recognition.xml"))
    assert reply_content(r) == words.get("unsupported_attachment")
    r = await post(client, load("wechat_video.xml"))
    assert "目前支持文字、图片和位置" in reply_content(r)
    await post(client, load("wechat_image.xml"))
    await post(client, load("wechat_location.xml"))
    r = await post(client, load("wechat_subscribe.xml"))
    assert reply_content(r) == words.get("greet", bot_name=runtime.settings.bot_name)
    r = await post(client, load("wechat_unsubscribe.xml"))
    assert r.text == "success"
    rows = await inbound_transcript(runtime)
    texts = [t for t, _ in rows]
    payloads: list[dict[str, Any]] = [p for _, p in rows if p]
    assert texts[0] == "下水道堵了找谁"
    kinds = [a["kind"] for p in payloads for a in p["attachments"]]
    assert kinds == ["voice", "photo", "location"]
    photo = payloads[1]["attachments"][0]
    assert photo["file_id"].startswith("Zhm9KQ") and photo["url"].startswith("http://mmbiz.qpic.cn/")
    place = payloads[2]["attachments"][0]
    assert (place["latitude"], place["longitude"], place["label"]) == (
        31.230416,
        121.473701,
        "上海市黄浦区幸福里小区3号楼",
    )


async def test_access_token_is_cached_and_renewed_when_wechat_says_it_expired(
    client: httpx.AsyncClient, fake_api: FakeAPI, runtime: Runtime
) -> None:
    answers: Iterator[dict[str, Any]] = iter(
        [{"errcode": 0}, {"errcode": 42001, "errmsg": "access_token expired"}, {"errcode": 0}]
    )
    fake_api.on("/cgi-bin/message/custom/send", lambda c: next(answers))
    note = Reply("您的诉求已受理。", chat_id=OPENID, recipient_id=OPENID)
    assert await runtime.outbound.deliver(Platform.WECHAT, [note, note]) == []
    assert len(fake_api.to("/cgi-bin/stable_token")) == 2, "fetched once, then again after 42001"
    assert len(fake_api.to("/custom/send")) == 3
    fake_api.on(
        "/cgi-bin/message/custom/send", lambda c: {"errcode": 45015, "errmsg": "response out of time limit"}
    )
    assert await runtime.outbound.deliver(Platform.WECHAT, [note]) == [note], (
        "48-hour rule: reported, not raised"
    )


async def test_a_bug_in_the_core_still_answers_wechat(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(message: IncomingMessage) -> list[Reply]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(runtime.dispatcher, "handle", broken)
    r = await post(client, load("wechat_text.xml"))
    assert r.status_code == 200 and r.text == "success", "a retry would meet the same bug"


async def test_an_outage_after_the_passive_window_is_still_answered_503(
    client: httpx.AsyncClient, runtime: Runtime, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The core fails only after the deadline: answering success at the deadline would have lost the
    message. WeChat hears back once the outcome is known, and the failure makes it deliver again."""
    channel(client).deadline_s = 0.2

    async def slow_then_down(message: IncomingMessage) -> list[Reply]:
        await asyncio.sleep(0.5)
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    monkeypatch.setattr(runtime.dispatcher, "handle", slow_then_down)
    r = await post(client, load("wechat_text.xml"))
    assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
    await channel(client).window.drain()
    assert fake_api.to("/custom/send") == [], "nothing to deliver late"
