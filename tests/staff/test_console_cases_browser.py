"""The case desk in Debian's Chromium against a real `huiyin serve` (embedded defaults, its forwarder on):
staff accept, assign to the property company, report progress and finish a resident's appeal from its
page, at a desktop width and at a phone's — the page shows each new status, the buttons fit the phone's
screen, and the resident's REST mailbox receives every step. A handler's login sees only its appeals.

The resident files the appeal through the REST channel (`POST /webhooks/rest/webhook`) and reads the
notifications from the REST mailbox (`GET /webhooks/rest/inbox`), delivered by the forwarder of the
same server.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.staff.test_console_browser import Resident
from tests.web.chromium import launched_chromium
from tests.web.webchat_servers import Served, embedded_env, required_huiyin_command, running_huiyin

PASSWORD = "correct horse battery"
APPEAL_ID = re.compile(r"HY-\d{8}-\d{4}")
HANDLER_LOGIN = ["admin", "add-handler-member", "demo", "property", "--new-login", "zhou", "--name", "周师傅"]
PROPERTY = "幸福里物业服务中心"  # the demo community's property company (kb/communities/demo.yml)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def case_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`huiyin serve` with a community, a staff login and a login of the property company's clerk, all
    made by `huiyin admin`."""
    tmp_path = tmp_path_factory.mktemp("huiyin-cases")
    command = required_huiyin_command()
    env = embedded_env(tmp_path / "data")
    for args, stdin in (
        (["admin", "add-community", "demo"], None),
        (
            ["admin", "add-staff", "lina", "--name", "李娜", "--community", "demo", "--password-stdin"],
            PASSWORD,
        ),
        (
            [*HANDLER_LOGIN, "--password-stdin"],
            PASSWORD,
        ),
    ):
        done = subprocess.run(
            [command, *args], cwd=tmp_path, env=env, input=stdin, text=True, capture_output=True
        )
        assert done.returncode == 0, done.stderr
    with running_huiyin(tmp_path, env) as served:
        yield served


def _page(browser: Any, width: int) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 800}, locale="zh-CN")
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    pg.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    asked: list[str] = []

    def confirm(dialog: Any) -> None:  # 办结 and 退回 ask first
        asked.append(dialog.message)
        dialog.accept()

    pg.on("dialog", confirm)
    pg.problems = problems
    pg.asked = asked
    return pg


def _file(resident: Resident, text: str) -> str:
    replies: list[str] = []
    for step in (text, "跳过", "13812345678", "/confirm"):
        replies = resident.say(step)
    found = next((m for r in replies if (m := APPEAL_ID.search(r))), None)
    assert found, replies
    return found.group(0)


def _log_in(pg: Any, base: str, username: str, target: str) -> None:
    pg.goto(base + target)
    assert "/staff/login" in pg.url
    pg.fill('input[name="username"]', username)
    pg.fill('input[name="password"]', PASSWORD)
    pg.click('button[type="submit"]')
    pg.wait_for_url("**" + target)


def _within_screen(pg: Any, testid: str, width: int) -> None:
    """The button is visible and entirely on the screen, with nothing to scroll sideways to reach it."""
    button = pg.locator(f'[data-testid="{testid}"]')
    assert button.is_visible(), testid
    box = button.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (testid, box)
    desk = pg.locator('[data-testid="case-desk"]')
    assert pg.evaluate("(el) => el.scrollWidth <= el.clientWidth", desk.element_handle()), (
        "the desk overflows"
    )


def _step(pg: Any, testid: str, status: str, label: str, width: int) -> None:
    _within_screen(pg, testid, width)
    pg.click(f'[data-testid="{testid}"]')
    pg.locator(f'[data-testid="case-desk"][data-status="{status}"]').wait_for()
    assert label in pg.locator("h1").inner_text()
    pg.locator(".flash.ok").wait_for()


@pytest.mark.parametrize(("width", "building"), [(1280, "3"), (390, "6")])
def test_staff_move_an_appeal_to_resolved_in_the_browser(
    browser: Any, case_server: Served, width: int, building: str
) -> None:
    base = case_server.base
    resident = Resident(base, f"web-case-{width}", "王阿姨")
    public_id = _file(resident, f"{building}栋2单元楼道灯坏了好几天了")
    pg = _page(browser, width)
    try:
        _log_in(pg, base, "lina", f"/staff/appeals/{public_id}")
        assert pg.locator('[data-testid="case-desk"]').get_attribute("data-status") == "submitted"

        _step(pg, "accept", "accepted", "已受理", width)
        assert pg.asked == [], "受理 asks nothing"
        resident.wait_inbox(pg, "已受理")

        selected = pg.locator('[data-testid="assign-handler"] option:checked').inner_text()
        assert PROPERTY in selected and "建议" in selected, "the KB's suggestion is preselected"
        pg.select_option('[data-testid="assign-handler"]', "property")
        _step(pg, "assign", "assigned", "已派单", width)
        assert PROPERTY in pg.locator('[data-testid="case-handler"]').inner_text()
        resident.wait_inbox(pg, PROPERTY)

        pg.fill('[data-testid="progress-text"]', "师傅明天上午上门更换灯管")
        _step(pg, "progress", "in_progress", "处理中", width)
        resident.wait_inbox(pg, "师傅明天上午上门更换灯管")

        pg.fill('[data-testid="done-text"]', f"已更换{building}栋2单元楼道灯管")
        _step(pg, "done", "resolved", "已办结", width)
        assert any("确定办结" in q for q in pg.asked), "办结 asks for confirmation"
        assert pg.locator('[data-testid="case-actions"]').count() == 0
        resident.wait_inbox(pg, f"已更换{building}栋2单元楼道灯管")

        history = pg.locator('[data-testid="history"]').inner_text()
        assert "派单" in history and "状态变更" in history
        assert pg.problems == [], pg.problems
    finally:
        pg.context.close()


def test_a_handler_login_sees_only_its_appeal(browser: Any, case_server: Served) -> None:
    base = case_server.base
    theirs = _file(Resident(base, "web-case-h1", "刘先生"), "8栋1单元楼道灯坏了好几天了")
    other = _file(Resident(base, "web-case-h2", "陈女士"), "9栋3单元门口垃圾堆了三天没人清理")
    staff = _page(browser, 1280)
    try:
        _log_in(staff, base, "lina", f"/staff/appeals/{theirs}")
        staff.select_option('[data-testid="assign-handler"]', "property")
        staff.click('[data-testid="assign"]')
        staff.locator('[data-testid="case-desk"][data-status="assigned"]').wait_for()
    finally:
        staff.context.close()

    pg = _page(browser, 390)
    try:
        _log_in(pg, base, "zhou", "/staff/appeals")
        listing = pg.locator("table.grid").inner_text()
        assert theirs in listing and other not in listing
        assert pg.locator("header nav").inner_text().split() == ["诉求"], "only their appeals in the nav"

        pg.click(f"text={theirs}")
        pg.wait_for_url(f"**/staff/appeals/{theirs}")
        assert pg.locator('[data-testid="assign"]').count() == 0, "a handler's person does not assign"
        assert "退回社区" in pg.locator('[data-testid="return"]').inner_text()
        pg.fill('[data-testid="progress-text"]', "已安排电工")
        _step(pg, "progress", "in_progress", "处理中", 390)

        answer = pg.goto(f"{base}/staff/appeals/{other}")
        assert answer is not None and answer.status == 404
        answer = pg.goto(f"{base}/staff/queue")
        assert answer is not None and pg.url.endswith("/staff/appeals")
    finally:
        pg.context.close()
