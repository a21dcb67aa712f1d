"""End to end: the Telegram connector in polling mode against ``telegram-test-api`` (npm), a Bot API
emulator running as a local server. Residents are emulated through its client API; the bot's messages
are read back from it.

The emulator differs from Telegram in a few ways, adapted here in the test's request class and nowhere
in the product: its ``getMe`` lacks ``is_bot``, the bot's message dates are in milliseconds, callback
queries lack ``chat_instance``, ``editMessageReplyMarkup`` answers ``null`` instead of the message or
``true``, and unknown methods (``setMyCommands``) answer ``{"message": ...}`` with HTTP 500.

Needs Node.js and npm; the package is installed on first use under ``$HUIYIN_NODE_DIR`` (default
``~/.cache/huiyin/node``) with ``npm install --prefix``, and found there by later runs and by CI.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from telegram.request import HTTPXRequest

from bot.app import create_app
from bot.runtime import Runtime
from bot.settings import Settings
from integrations import telegram
from integrations.backend.reference import free_port
from tests.conftest import make_settings
from tests.outages import stop_processes

NODE_DIR = Path(os.environ.get("HUIYIN_NODE_DIR", Path.home() / ".cache" / "huiyin" / "node"))
NODE_PACKAGE = "telegram-test-api@4.2.1"
TOKEN = "1234567890:e2eTestTokenForHuiyin"
LAUNCH = """
const TelegramServer = require('telegram-test-api');
const server = new TelegramServer({port: Number(process.argv[1]), host: '127.0.0.1', storeTimeout: 120});
server.start().then(() => console.log('ready'));
process.on('SIGTERM', () => server.stop().then(() => process.exit(0)));
"""

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="Node.js/npm are not installed: the telegram-test-api end-to-end test cannot run",
)


class TelegramTestApiRequest(HTTPXRequest):
    """PTB's own HTTP layer, with the emulator's answers brought to the Bot API's format."""

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        code, body = await super().do_request(url, method, *args, **kwargs)
        try:
            payload = json.loads(body)
        except ValueError:
            return code, body
        if isinstance(payload, dict) and "ok" not in payload and "message" in payload:
            payload = {"ok": False, "error_code": code, "description": payload["message"]}
        elif url.endswith("/getMe"):
            payload["result"].setdefault("is_bot", True)
        elif url.endswith("/editMessageReplyMarkup") and payload.get("result") is None:
            payload["result"] = True
        return code, json.dumps(_seconds(payload)).encode()


def _seconds(value: Any) -> Any:
    """Dates in milliseconds → seconds; callback queries get the chat_instance Telegram always sends."""
    if isinstance(value, list):
        return [_seconds(v) for v in value]
    if isinstance(value, dict):
        fixed = {k: _seconds(v) for k, v in value.items()}
        if isinstance(fixed.get("date"), int) and fixed["date"] > 10**11:
            fixed["date"] //= 1000
        if "callback_query" in fixed:
            fixed["callback_query"].setdefault("chat_instance", "telegram-test-api")
        return fixed
    return value


@pytest.fixture
def emulator() -> Iterator[str]:
    if not (NODE_DIR / "node_modules" / "telegram-test-api").is_dir():
        # First run on this machine: install it where later runs (and CI) find it cached.
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(NODE_DIR),
                NODE_PACKAGE,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.fail(
                f"could not install {NODE_PACKAGE} under {NODE_DIR} "
                f"(npm install --prefix {NODE_DIR} {NODE_PACKAGE}): {done.stderr[-500:]}"
            )
    port = free_port()
    process = subprocess.Popen(
        ["node", "-e", LAUNCH, str(port)], cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 20)
        line = process.stdout.readline().decode().strip() if ready else "(no answer in 20 s)"
        assert line == "ready", f"telegram-test-api did not start: {line}"
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_processes([process], timeout_s=5)


@pytest.fixture
def settings(tmp_path: Path, emulator: str) -> Settings:
    return make_settings(
        tmp_path,
        telegram_token=TOKEN,
        telegram_mode="polling",
        telegram_api_base=emulator,
        telegram_rate_per_s=0,
        telegram_group_rate_per_min=0,
    )


class Resident:
    """A person in a chat, speaking through the emulator's client API."""

    def __init__(self, http: httpx.AsyncClient, user_id: int, name: str, chat: dict[str, Any]) -> None:
        self.http, self.chat = http, chat
        self.user = {"id": user_id, "is_bot": False, "first_name": name}

    async def say(self, text: str, **extra: Any) -> None:
        message = {
            "botToken": TOKEN,
            "from": self.user,
            "chat": self.chat,
            "date": int(time.time()),
            "text": text,
        }
        message.update(extra)
        route = (
            "/sendCommand"
            if "entities" in extra and extra["entities"][0]["type"] == "bot_command"
            else "/sendMessage"
        )
        assert (await self.http.post(route, json=message)).json()["ok"]

    async def press(self, bot_message: dict[str, Any], callback_data: str) -> None:
        origin = {
            "message_id": bot_message["messageId"],
            "date": int(time.time()),
            "chat": self.chat,
            "text": "",
        }
        query = {"botToken": TOKEN, "from": self.user, "message": origin, "data": callback_data}
        assert (await self.http.post("/sendCallback", json=query)).json()["ok"]

    async def bot_messages(self, count: int = 1, within_s: float = 10.0) -> list[dict[str, Any]]:
        """The bot's next ``count`` messages in this chat."""
        found: list[dict[str, Any]] = []
        until = time.monotonic() + within_s
        while len(found) < count:
            assert time.monotonic() < until, f"the bot sent {len(found)} of {count} messages: {found}"
            r = await self.http.post("/getUpdates", json={"token": TOKEN, "chatId": self.chat["id"]})
            found += r.json()["result"]
            if len(found) < count:
                await asyncio.sleep(0.05)
        return found


@pytest.fixture
async def bot(runtime: Runtime) -> AsyncIterator[None]:
    app = create_app(runtime=runtime)
    app.state.runtime = runtime
    connector = await telegram.setup(
        app,
        runtime,
        request=TelegramTestApiRequest(),
        get_updates_request=TelegramTestApiRequest(),
        poll_interval=0.05,  # the emulator answers getUpdates at once instead of long polling
    )
    assert connector is not None and connector.bot.username == "TestNameBot"
    yield


async def test_polling_private_and_group_chats_commands_and_buttons(bot: None, emulator: str) -> None:
    async with httpx.AsyncClient(base_url=emulator, timeout=10) as http:
        wang = Resident(http, 100, "王阿姨", {"id": 100, "type": "private", "first_name": "王阿姨"})
        await wang.say("/start", entities=[{"offset": 0, "length": 6, "type": "bot_command"}])
        [welcome] = await wang.bot_messages()
        assert "社区助手" in welcome["message"]["text"]

        await wang.say("3栋2单元楼道灯坏了好几天了")
        [ask_photo] = await wang.bot_messages()
        assert "照片" in ask_photo["message"]["text"]
        [[skip]] = ask_photo["message"]["reply_markup"]["inline_keyboard"]
        await wang.press(ask_photo, skip["callback_data"])
        [ask_phone] = await wang.bot_messages()
        assert "电话" in ask_phone["message"]["text"]

        group = {"id": -200, "type": "group", "title": "幸福里3栋业主群"}
        li = Resident(http, 101, "李先生", group)
        await li.say("今天天气不错")  # chatter: not addressed, no answer
        await li.say("@TestNameBot 楼道漏水找谁", entities=[{"offset": 0, "length": 12, "type": "mention"}])
        [answer] = await li.bot_messages()
        assert answer["message"]["text"].startswith("@李先生 ")
        await asyncio.sleep(0.3)
        assert (await http.post("/getUpdates", json={"token": TOKEN, "chatId": -200})).json()["result"] == []
