"""What the webhooks parse before they trust a body is bounded: deeply nested JSON is refused with 400
(never a RecursionError's 500), and lone UTF-16 surrogates, valid JSON escapes that no database can store,
become U+FFFD so that the message is still handled and nothing is lost silently."""

from __future__ import annotations

import json
from typing import Any

import httpx

from bot.runtime import Runtime
from tests.platforms.conftest import (
    TG_SECRET,
    inbound_rows,
    inbound_transcript,
    load_json,
    robot_decrypt,
    robot_encrypted,
)
from tests.platforms.fake_api import FakeAPI

TG_URL = "/webhooks/telegram/webhook"
WECOM_URL = "/webhooks/wecom/webhook"
TG_HEADERS = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Type": "application/json"}
# 20,000 levels in 40 KB: within the size limit, far past Python's recursion limit.
DEEP = b'{"update_id": 1, "message": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"


def escaped(payload: dict[str, Any], text: str) -> bytes:
    """``payload`` as JSON with ``text``'s escape written where "TEXT" is: the wire form of a string
    holding a lone surrogate (``json.dumps`` would write one too, but only as an escape)."""
    return json.dumps(payload, ensure_ascii=False).replace('"TEXT"', f'"{text}"').encode()


async def test_telegram_deep_json_is_refused_with_400(client: httpx.AsyncClient, fake_api: FakeAPI) -> None:
    r = await client.post(TG_URL, content=DEEP, headers=TG_HEADERS)
    assert r.status_code == 400 and "nests deeper" in r.json()["detail"]
    # Deep but mostly strings with brackets in them: strings do not count.
    update = load_json("telegram_private_text.json")
    update["message"]["text"] = "[[[[{{{{" * 100
    assert (await client.post(TG_URL, json=update, headers=TG_HEADERS)).status_code == 200
    # A deep structure where Telegram's schema allows nesting (a reply to a reply to ...).
    nested: dict[str, Any] = load_json("telegram_private_text.json")["message"]
    for _ in range(40):
        nested = {**load_json("telegram_private_text.json")["message"], "reply_to_message": nested}
    r = await client.post(TG_URL, json={"update_id": 9, "message": nested}, headers=TG_HEADERS)
    assert r.status_code == 400


async def test_telegram_lone_surrogates_become_replacement_characters_and_the_message_is_handled(
    client: httpx.AsyncClient, runtime: Runtime, fake_api: FakeAPI
) -> None:
    update = load_json("telegram_private_text.json")
    update["message"]["text"] = "TEXT"
    body = escaped(update, "3栋楼道灯坏了\\ud800 \\udc00好几天了 \\ud83d\\ude00")
    r = await client.post(TG_URL, content=body, headers=TG_HEADERS)
    assert r.status_code == 200, r.text
    [(text, _)] = await inbound_transcript(runtime)
    assert text == "3栋楼道灯坏了\ufffd \ufffd好几天了 😀", "a valid pair stays the emoji it is"
    assert fake_api.to("/sendMessage"), "answered"


async def test_the_robot_envelope_is_parsed_bounded_before_its_signature_is_checked(
    client: httpx.AsyncClient, runtime: Runtime, fake_api: FakeAPI
) -> None:
    query, _ = robot_encrypted(load_json("wecom_robot_group_text.json"))
    forged = {**query, "msg_signature": "f" * 40}
    for body in (DEEP, b'{"encrypt": "x", "more": ' + b"[" * 500 + b"]" * 500 + b"}"):
        r = await client.post(WECOM_URL, params=forged, content=body)
        assert r.status_code == 400 and "nests deeper" in r.json()["detail"]
    # The decrypted message is bounded too (only WeCom can sign one, but a bug there is no 500 here).
    query, body = robot_encrypted('{"msgid": "m-deep", "x": ' + "[" * 5000 + "]" * 5000 + "}")
    assert (await client.post(WECOM_URL, params=query, content=body)).status_code == 400
    assert await inbound_rows(runtime) == 0


async def test_robot_lone_surrogates_become_replacement_characters(
    client: httpx.AsyncClient, runtime: Runtime, fake_api: FakeAPI
) -> None:
    """A WeCom message cut in the middle of an emoji carries half a surrogate pair."""
    payload = load_json("wecom_robot_group_text.json")
    payload["response_url"] = f"{fake_api.url}/cgi-bin/aibot/response?response_code=RC2"
    payload["text"] = {"content": "TEXT"}
    plain = escaped(payload, "@回音 3栋2单元楼道灯坏了\\ud83d").decode()
    query, body = robot_encrypted(plain)
    r = await client.post(WECOM_URL, params=query, content=body)
    assert r.status_code == 200, r.text
    assert robot_decrypt(r.json())["stream"]["content"]
    [(text, _)] = await inbound_transcript(runtime)
    assert text == "3栋2单元楼道灯坏了\ufffd"
