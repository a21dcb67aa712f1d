"""The staff console in Debian's Chromium against a real `huiyin serve`: log in, see a waiting
conversation, take it over, reply (the resident receives it through the REST channel), add a note (the
resident does not), file an appeal from it, release (the bot answers again) — watching the page update
without reloads.

The resident speaks through the REST channel (`POST /webhooks/rest/webhook`) and reads what the bot
sends on its own from the REST mailbox (`GET /webhooks/rest/inbox`), as the web chat page does.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.chromium import launched_chromium
from tests.web.conftest import page  # noqa: F401 - the shared page fixture, on the browser below
from tests.web.webchat_servers import Served, embedded_env, required_huiyin_command, running_huiyin

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, as in tests/web — but for this module only: a sync Playwright left running for
    the whole session would leave an event loop running under the async tests that come after."""
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`huiyin serve` on the embedded defaults, with a community and a staff login made by `huiyin admin`."""
    tmp_path = tmp_path_factory.mktemp("huiyin-console")
    command = required_huiyin_command()
    env = embedded_env(tmp_path / "data")
    for args, stdin in (
        (["admin", "add-community", "demo"], None),
        (
            ["admin", "add-staff", "lina", "--name", "李娜", "--community", "demo", "--password-stdin"],
            PASSWORD,
        ),
    ):
        done = subprocess.run(
            [command, *args], cwd=tmp_path, env=env, input=stdin, text=True, capture_output=True
        )
        assert done.returncode == 0, done.stderr
    with running_huiyin(tmp_path, env) as served:
        yield served


class Resident:
    """A resident on the REST channel: says things, and reads the mailbox of proactive messages."""

    def __init__(self, base: str, sender: str, name: str) -> None:
        self.base, self.sender, self.name = base, sender, name
        self.n = 0

    def say(self, text: str) -> list[str]:
        self.n += 1
        body = {
            "sender": self.sender,
            "message": text,
            "metadata": {"user_name": self.name, "message_id": f"{self.sender}-{self.n}"},
        }
        request = urllib.request.Request(
            self.base + "/webhooks/rest/webhook",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=20) as resp:
            return [r["text"] for r in json.loads(resp.read())]

    def inbox(self) -> list[str]:
        with urllib.request.urlopen(
            f"{self.base}/webhooks/rest/inbox?sender={self.sender}", timeout=10
        ) as resp:
            return [r["text"] for r in json.loads(resp.read())]

    def wait_inbox(self, pg: Any, contains: str, timeout_s: float = 10) -> list[str]:
        """Poll the mailbox until a message containing ``contains`` arrives (returns all it got)."""
        got: list[str] = []
        for _ in range(int(timeout_s * 4)):
            got += self.inbox()
            if any(contains in t for t in got):
                return got
            pg.wait_for_timeout(250)
        raise AssertionError(f"no message with {contains!r} reached {self.sender}; got {got}")


def test_staff_take_over_reply_note_release_in_the_browser(page: Any, console_server: Served) -> None:  # noqa: F811
    base = console_server.base
    wang = Resident(base, "web-wang", "王阿姨")
    queued = wang.say("3栋2单元楼道灯坏了，晚上黑漆漆的")
    assert queued, "the bot should answer the first message"
    assert any("转接" in t for t in wang.say("转人工")), "asking for a person should queue the conversation"

    # Log in: the console sends an anonymous visitor to its login form first.
    page.goto(base + "/staff/queue")
    assert "/staff/login" in page.url
    page.fill('input[name="username"]', "lina")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url("**/staff/queue")

    # The waiting conversation is in the queue, with its summary.
    item = page.locator("li.item.waiting").first
    item.wait_for()
    assert "王阿姨" in item.inner_text() and "3栋2单元" in item.inner_text()
    item.locator("a").click()
    page.wait_for_url("**/staff/conversations/*")

    # Take it over: the resident is told a person joined.
    page.click('[data-testid="take"]')
    page.locator('[data-testid="state"][data-status="active"]').wait_for()
    wang.wait_inbox(page, "李娜")

    # The bot is silent now; the resident's message appears in the open page without a reload.
    assert wang.say("楼道灯还一直闪，好吓人") == []
    page.locator('[data-testid="transcript"]', has_text="楼道灯还一直闪").wait_for(timeout=10_000)

    # Reply: the resident receives it, signed with the staff member's name.
    page.fill('[data-testid="reply-text"]', "王阿姨您好，已经通知物业电工今天下午上门。")
    page.click('[data-testid="send-reply"]')
    page.locator(".flash.ok", has_text="已发送").wait_for()
    got = wang.wait_inbox(page, "物业电工今天下午上门")
    assert any("李娜" in t and "物业电工" in t for t in got), got

    # An internal note: shown to staff, never to the resident.
    page.fill('[data-testid="note-text"]', "居民独居，下午再电话确认一次")
    page.click('[data-testid="add-note"]')
    page.locator('[data-testid="notes"]', has_text="居民独居").wait_for()

    # File the appeal from the conversation: the button opens a confirmation step first.
    assert not page.locator('[data-testid="file-confirm"]').is_visible()
    page.click('[data-testid="file-appeal"] summary')
    page.click('[data-testid="file-confirm"]')
    flash = page.locator(".flash.ok", has_text="已登记为诉求 HY-")
    flash.wait_for()
    public_id = flash.inner_text().split("已登记为诉求 ", 1)[1].split("，", 1)[0]
    got = wang.wait_inbox(page, public_id)
    assert any("李娜已为您登记诉求" in t for t in got), got

    # Release (after saying yes to the question): the resident is told, and the bot answers again (the
    # form's appeal is filed: not offered).
    page.once("dialog", lambda dialog: dialog.accept())
    page.click('[data-testid="release"]')
    page.locator('[data-testid="state"][data-status="bot"]').wait_for()
    got = wang.wait_inbox(page, "已结束本次服务")
    assert not any("独居" in t or "要继续登记" in t for t in got), got
    assert wang.say("下水道堵了找谁") != []

    # The dashboard draws its charts (server-side SVG) under the same strict CSP.
    page.goto(base + "/staff/dashboard")
    page.locator('[data-testid="chart-days"] rect').first.wait_for(state="attached")
    assert page.problems == [], page.problems
