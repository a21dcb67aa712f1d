"""The staff console on a phone (390 px, a touch screen honouring the viewport meta tag) and on a desktop
(1280 px), in Debian's Chromium against a real `huiyin serve`.

On each of login, queue, appeal list, appeal page, conversation page and dashboard: the page does not
scroll sideways, its main action buttons are visible and clickable, every control is at least 40 px high,
no text is under 15 px, and nothing it shows is developer text (:mod:`tests.staff.console_words`). Then,
as a secretary would on the phone: take a conversation over from the queue's 接入 button, reply, and
release it — the release asks first, and nothing happens when the question is declined; deleting a
canned reply asks the same way.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.staff.console_words import developer_text
from tests.staff.test_console_browser import PASSWORD, Resident
from tests.web.chromium import launched_chromium
from tests.web.webchat_servers import Served, embedded_env, required_huiyin_command, running_huiyin

PHONE, DESKTOP = 390, 1280

# What a page shows (text, and the attributes a browser shows), and how it is laid out.
MEASURE = """() => {
  const shown = el => {
    const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none';
  };
  const label = el => el.tagName + ' ' + (el.textContent || el.name || '').trim().slice(0, 24);
  const smallText = [], smallTargets = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('option') || !shown(el)) continue;
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (own && parseFloat(getComputedStyle(el).fontSize) < 15) smallText.push(label(el));
  }
  const targets = 'button, a.button, input:not([type=hidden]), select, textarea, header a, .item-head > a, a.id';
  for (const el of document.querySelectorAll(targets)) {
    if (shown(el) && el.getBoundingClientRect().height < 40) smallTargets.push(label(el));
  }
  // Table cells squeezed to a few characters wide: the table should have become cards.
  const narrowCells = [...document.querySelectorAll('td')]
    .filter(td => shown(td) && td.textContent.trim() && td.getBoundingClientRect().width < 64).map(label);
  const attrs = ['title', 'placeholder', 'aria-label', 'data-confirm', 'alt'];
  const said = [...document.querySelectorAll('*')].flatMap(el => attrs.map(a => el.getAttribute(a) || ''));
  return {
    scrollWidth: document.scrollingElement.scrollWidth,
    innerWidth: window.innerWidth,
    smallText, smallTargets, narrowCells,
    text: document.body.innerText + '\\n' + said.filter(Boolean).join('\\n'),
  };
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    """`huiyin serve` (embedded defaults) with a community, lina's login, an appeal filed through the REST
    channel, and a history on it that names every kind of actor; and the path of its SQLite database."""
    tmp_path = tmp_path_factory.mktemp("huiyin-console-phone")
    command = required_huiyin_command()
    env = embedded_env(tmp_path / "data")
    for args, stdin in (
        (["admin", "add-community", "demo"], None),
        (["admin", "add-staff", "lina", "--name", "李娜", "--community", "demo", "--password-stdin"], PASSWORD),
    ):  # fmt: skip
        done = subprocess.run(
            [command, *args], cwd=tmp_path, env=env, input=stdin, text=True, capture_output=True
        )
        assert done.returncode == 0, done.stderr
    database = tmp_path / "data" / "huiyin.db"
    with running_huiyin(tmp_path, env) as server:
        zhang = Resident(server.base, "web-zhang", "张大爷")
        long_text = "3栋2单元楼道灯坏了一个多星期，晚上上下楼黑漆漆的，老人小孩都不敢出门，物业说报修了但一直没人来修，麻烦尽快安排"
        replies: list[str] = []
        for text in (long_text, "跳过", "不留电话", "确认提交"):
            replies = zhang.say(text)
        assert re.search(r"HY-\d{8}-\d{4}", " ".join(replies)), replies
        with sqlite3.connect(database) as db:
            (staff,) = db.execute("SELECT person_id FROM staff_account WHERE username = 'lina'").fetchone()
            appeal, reporter, at = db.execute(
                "SELECT a.id, a.reporter_id, e.created_at FROM appeal a JOIN appeal_event e ON e.appeal_id = a.id"
            ).fetchone()
            for kind, actor, note, payload, moves in (
                ("status", "backend", "已受理，转物业", {"backend_status": "ACCEPTED"}, ("submitted", "accepted")),
                ("note", f"staff:{staff}", "已电话联系居民，约好下午上门", {}, (None, None)),
                ("rating", f"resident:{reporter}", "", {"rating": "satisfied"}, (None, None)),
                ("flag", "huiyin", "", {"reason": "overdue", "extra": [1]}, (None, None)),
            ):  # fmt: skip
                db.execute(
                    "INSERT INTO appeal_event (appeal_id, kind, status_from, status_to, note, actor, payload,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (appeal, kind, *moves, note, actor, json.dumps(payload), at),
                )
        yield server, database


@pytest.fixture(params=[DESKTOP, PHONE], ids=["desktop-1280", "phone-390"])
def screen(request: pytest.FixtureRequest, browser: Any) -> Iterator[Any]:
    """A page at the width: the phone one is a touch screen that honours the page's viewport meta tag."""
    width = request.param
    phone = width == PHONE
    context = browser.new_context(
        viewport={"width": width, "height": 844 if phone else 800},
        is_mobile=phone,
        has_touch=phone,
        device_scale_factor=3 if phone else 1,
        locale="zh-CN",
    )
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    pg.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    pg.problems = problems
    pg.width = width
    yield pg
    context.close()


def check_layout(pg: Any, name: str) -> str:
    """The page fits the screen, is readable and tappable, and speaks to staff; returns its shown text."""
    pg.wait_for_load_state("load")
    got = pg.evaluate(MEASURE)
    assert got["innerWidth"] == pg.width, (name, got["innerWidth"], "the viewport meta tag is missing")
    assert got["scrollWidth"] <= pg.width, (name, "scrolls sideways", got["scrollWidth"])
    assert got["smallText"] == [], (name, "text under 15 px", got["smallText"][:8])
    assert got["smallTargets"] == [], (name, "controls under 40 px high", got["smallTargets"][:8])
    if pg.width == PHONE:  # a desktop table may give a short column little room
        assert got["narrowCells"] == [], (name, "table cells squeezed", got["narrowCells"][:8])
    assert developer_text(got["text"]) == [], (name, developer_text(got["text"]))
    return str(got["text"])


def tappable(pg: Any, selector: str) -> None:
    """The control is on the page, visible, and a click would land on it (nothing covers it)."""
    control = pg.locator(selector).first
    assert control.is_visible(), selector
    control.scroll_into_view_if_needed()
    box = control.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= pg.width, (selector, box)
    control.click(trial=True)


def log_in(pg: Any, base: str) -> None:
    pg.goto(base + "/staff/login")
    check_layout(pg, "login")
    tappable(pg, 'button[type="submit"]')
    pg.fill('input[name="username"]', "lina")
    pg.fill('input[name="password"]', PASSWORD)
    pg.click('button[type="submit"]')
    pg.wait_for_url("**/staff/queue")


def test_every_page_fits_the_screen_and_speaks_to_staff(screen: Any, served: tuple[Served, Path]) -> None:
    server, _ = served
    base = server.base
    resident = Resident(base, f"web-wait-{screen.width}", f"王阿姨{screen.width}")
    resident.say("5栋电梯停了，我家老人下不了楼")
    resident.say("转人工")
    log_in(screen, base)

    item = screen.locator("li.item.waiting", has_text=resident.name)
    item.wait_for()
    conversation = item.get_attribute("data-conversation")
    text = check_layout(screen, "queue")
    assert "网页聊天" in text and "等待接入" in text
    tappable(screen, f'[data-testid="take-{conversation}"]')
    tappable(screen, "header nav a >> nth=-1")  # the navigation fits: its last link is on screen

    screen.goto(base + "/staff/appeals")
    check_layout(screen, "appeal list")
    for selector in ('[data-testid="filter"]', '[data-testid="csv"]', "a.id"):
        tappable(screen, selector)

    screen.click("a.id")
    screen.wait_for_url("**/staff/appeals/HY-*")
    text = check_layout(screen, "appeal page")
    for words in (
        "工作人员 李娜",
        "居民 张大爷",
        "市平台",
        "回音（系统）",
        "评价：满意",
        "首次答复超期",
        "网页聊天",
    ):
        assert words in text, words
    # The case desk's facts are on the page (its actions on a phone: test_console_cases_browser.py).
    assert screen.locator('[data-testid="case-desk"]').is_visible()

    screen.goto(f"{base}/staff/conversations/{conversation}")
    check_layout(screen, "conversation page")
    tappable(screen, '[data-testid="take"]')
    tappable(screen, '[data-testid="release"]')

    screen.goto(base + "/staff/dashboard")
    screen.locator('[data-testid="chart-days"]').wait_for()
    check_layout(screen, "dashboard")
    assert screen.problems == [], screen.problems


def test_take_reply_and_a_confirmed_release_on_a_phone(browser: Any, served: tuple[Served, Path]) -> None:
    server, _ = served
    base = server.base
    context = browser.new_context(
        viewport={"width": PHONE, "height": 844}, is_mobile=True, has_touch=True, locale="zh-CN"
    )
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    pg.width = PHONE
    try:
        li = Resident(base, "web-li-phone", "李奶奶")
        li.say("楼下有人一直按喇叭")
        li.say("转人工")
        log_in(pg, base)

        # 接入 straight from the queue: the conversation page opens, held by the staff member.
        item = pg.locator("li.item.waiting", has_text="李奶奶")
        item.locator("button", has_text="接入").click()
        pg.wait_for_url("**/staff/conversations/*")
        pg.locator('[data-testid="state"][data-status="active"]').wait_for()
        li.wait_inbox(pg, "李娜")
        check_layout(pg, "conversation held")
        for selector in ('[data-testid="send-reply"]', '[data-testid="add-note"]', '[data-testid="release"]'):
            tappable(pg, selector)

        pg.fill('[data-testid="reply-text"]', "您好，已联系保安去看看。")
        pg.click('[data-testid="send-reply"]')
        pg.locator(".flash.ok", has_text="已发送").wait_for()

        # Releasing asks first; declined, the conversation stays held.
        asked: list[str] = []

        def decline(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.dismiss()

        pg.once("dialog", decline)
        pg.click('[data-testid="release"]')
        pg.wait_for_timeout(500)
        assert asked and "交还机器人" in asked[0], asked
        assert developer_text(asked[0]) == []
        pg.reload()
        assert pg.locator('[data-testid="state"]').get_attribute("data-status") == "active"

        pg.once("dialog", lambda dialog: dialog.accept())
        pg.click('[data-testid="release"]')
        pg.locator('[data-testid="state"][data-status="bot"]').wait_for()
        li.wait_inbox(pg, "已结束本次服务")

        # Deleting a canned reply asks the same way.
        pg.goto(base + "/staff/canned")
        pg.fill('input[name="title"]', "稍等")
        pg.fill('textarea[name="text"]', "请稍等，马上为您处理。")
        pg.click("form.stack button")
        pg.locator(".flash.ok", has_text="已添加").wait_for()
        check_layout(pg, "canned replies")
        asked.clear()
        pg.once("dialog", decline)
        pg.click('[data-testid="delete-canned"]')
        pg.wait_for_timeout(500)
        assert asked and "稍等" in asked[0] and pg.locator('[data-testid="delete-canned"]').count() == 1
        pg.once("dialog", lambda dialog: dialog.accept())
        pg.click('[data-testid="delete-canned"]')
        pg.locator(".flash.ok", has_text="已删除").wait_for()
        assert pg.locator('[data-testid="delete-canned"]').count() == 0

        pg.goto(base + "/staff/audit")
        text = check_layout(pg, "audit log")
        assert "接入对话" in text and "删除快捷回复" in text
    finally:
        context.close()
