"""Every console page in staff's words: no platform, actor, action or status codes, no JSON or reprs.

The pages are rendered through the test client over data that has every kind of code in it (appeal events
of each kind and actor, with payload keys the console does not know; audit entries of console, chat and
command-line actions, and one the console has never heard of), and their shown text is scanned
(:mod:`tests.staff.console_words`). The browser test does the same on what Chromium shows.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select

from bot.db.models import Appeal, AppealEvent, utcnow
from bot.roles import audit
from bot.staff.queries import actor_label, event_detail
from bot.staff.queries.labels import audit_detail
from tests.staff.conftest import World, csrf_of, login
from tests.staff.console_words import developer_text, shown_text
from tests.staff.test_console import _appeal


async def _seed(world: World, console: httpx.AsyncClient) -> dict[str, str]:
    """A waiting conversation, one lina holds (replied, noted), an appeal with a full history, canned
    replies added and deleted, an export, and audit entries from chat, the command line and the unknown."""
    await world.say("3栋2单元楼道灯坏了好几天")
    await world.say("转人工")
    waiting = await world.conversation_of("res-wang")
    await world.say("转人工", who="res-li", name="李大爷")
    held = await world.conversation_of("res-li")
    public_id = await _appeal(world, "res-a")
    await world.say("5栋门口的垃圾没人收", who="res-zhou", name="周阿姨")

    await login(console, "lina")
    token = csrf_of((await console.get("/staff/queue")).text)
    await console.post(f"/staff/conversations/{held}/take", data={"csrf": token})
    await console.post(f"/staff/conversations/{held}/reply", data={"csrf": token, "text": "马上安排"})
    await console.post(f"/staff/conversations/{held}/note", data={"csrf": token, "text": "独居老人"})
    for title in ("上门", "稍等"):
        await console.post("/staff/canned", data={"csrf": token, "title": title, "text": f"{title}。"})
    canned_page = await console.get("/staff/canned")
    first = canned_page.text.split("/delete")[0].rsplit("/canned/", 1)[1]
    await console.post(f"/staff/canned/{first}/delete", data={"csrf": token})
    await console.get("/staff/appeals.csv", params={"status": "submitted", "building": "3"})

    async with world.rt.db.unit_of_work() as uow:
        s = uow.session
        appeal = (await s.execute(select(Appeal).where(Appeal.public_id == public_id))).scalars().one()
        reporter, lina = appeal.reporter_id, world.lina.person_id
        due = (utcnow() - timedelta(hours=1)).isoformat()
        for kind, actor, note, payload, moves in (
            ("status", "backend", "已受理，转物业", {"backend_status": "ACCEPTED", "updated": "x"}, ("submitted", "accepted")),
            ("note", f"staff:{lina}", "已电话联系居民", {}, None),
            ("forwarded", "backend", "", {"backend_id": "SZ-2026-88", "token": "tok-1"}, None),
            ("supporter", f"resident:{reporter}", "", {"supporters": 2, "kind": "supporter"}, None),
            ("overdue", "huiyin", "", {"due_at": due}, None),
            ("flag", "huiyin", "", {"reason": "delivery_failed"}, None),
            ("rating", f"resident:{reporter}", "", {"rating": "unsatisfied", "reopen": True}, None),
            ("status", f"leader:{lina}", "", {}, ("accepted", "mystery_state")),
            ("mystery", "somebody", "", {"weird": {"x": [1, None]}}, None),
        ):  # fmt: skip
            s.add(
                AppealEvent(
                    appeal_id=appeal.id,
                    kind=kind,
                    actor=actor,
                    note=note,
                    payload=payload,
                    status_from=moves[0] if moves else None,
                    status_to=moves[1] if moves else None,
                )
            )
        for actor, action, detail in (
            (lina, "chat.bind_staff", {"platform": "telegram", "chat": "-100123", "via": "chat"}),
            (None, "staff.grant", {"via": "cli"}),
            (lina, "handoff.release", {"via": "chat", "handoff": 7, "was": "waiting"}),
            (None, "handoff.auto_release", {"via": "auto", "handoff": 8, "was": "active"}),
            (
                lina,
                "invite.redeem",
                {"role": "building_leader", "buildings": ["3", "5"], "code": "ABCD-****"},
            ),
            (lina, "appeal.frobnicate", {"foo": {"bar": None}, "raw": "True"}),
        ):
            audit(
                s,
                actor_person_id=actor,
                action=action,
                target_type="chat",
                target_id=1,
                community_id=world.demo.id,
                detail=detail,
            )
        await uow.commit()
    return {"waiting": str(waiting), "held": str(held), "appeal": public_id}


async def test_no_page_shows_developer_text(world: World, console: httpx.AsyncClient) -> None:
    ids = await _seed(world, console)
    pages = {
        "/staff/queue": ["等待接入", "网页聊天", "接入"],
        "/staff/queue/live": ["李娜 接入中"],
        f"/staff/conversations/{ids['waiting']}": ["接入对话", "网页聊天"],
        f"/staff/conversations/{ids['held']}": ["结束人工服务", "独居老人"],
        f"/staff/conversations/{ids['held']}/live": ["马上安排"],
        "/staff/appeals": [ids["appeal"], "已受理"],
        "/staff/appeals?status=overdue": ["诉求"],
        f"/staff/appeals/{ids['appeal']}": [
            "工作人员 李娜",
            "楼长 李娜",
            "市平台",
            "回音（系统）",
            "居民 居民a",
            "已转市平台",
            "市平台编号 SZ-2026-88",
            "共 2 人反映",
            "评价：不满意",
            "未能送达市平台",
            "答复期限",
            "已提交 → 已受理",
            "已受理 → 其他",
        ],
        "/staff/dashboard": ["超期未答复", "最多一天"],
        "/staff/dashboard/live": ["分类排行"],
        "/staff/canned": ["稍等", "删除后不能恢复"],
        "/staff/audit": [
            "接入对话",
            "回复居民",
            "添加内部备注",
            "删除快捷回复",
            "导出诉求",
            "设为工作群",
            "Telegram",
            "在聊天中",
            "系统管理员",
            "回音（系统）",
            "自动结束人工服务",
            "长时间无人回复",
            "移出等待队列",
            "交还机器人",
            "身份：楼长",
            "楼栋：3栋、5栋",
            "筛选：已提交、3栋",
            "「上门」",
            "其他",
        ],
    }
    for path, expected in pages.items():
        response = await console.get(path)
        assert response.status_code == 200, path
        text = shown_text(response.text)
        assert developer_text(text) == [], (path, developer_text(text))
        for words in expected:
            assert words in text, (path, words)
    console.cookies.clear()
    login_page = shown_text((await console.get("/staff/login")).text)
    assert developer_text(login_page) == [] and "工作人员登录" in login_page


async def test_the_scan_finds_codes_in_a_page() -> None:
    """The scan itself: what the pages used to show is caught."""
    for shown in (
        "rest", "staff:3", "resident:12", "handoff.take", "appeals.export", "chat.bind_staff", "backend",
        "huiyin", '{"via": "console"}', "None", "submitted", "canned_reply", "<Appeal object at 0x7f>",
        "supporter", "wecom",
    ):  # fmt: skip
        assert developer_text(f"操作 {shown} 完成"), shown
    assert developer_text("工作人员 李娜 · Telegram · 用 /reply 12 回复") == []
    assert shown_text('<p title="staff:3">好</p><script>var x = {}</script>') == "staff:3\n好"


def test_codes_read_in_chinese() -> None:
    names = {3: "李娜", 12: "张三"}
    assert actor_label("staff:3", names) == "工作人员 李娜"
    assert actor_label("resident:12", names) == "居民 张三"
    assert actor_label("resident:99", names) == "居民"
    assert actor_label("backend", names) == "市平台"
    assert actor_label("huiyin", names) == actor_label("bot", names) == "回音（系统）"
    assert actor_label("robot:1", names) == "其他"
    assert audit_detail("handoff.reply", {"via": "console", "chars": 12, "canned": 4, "secret": "x"}) == [
        "在工作台",
        "12 字",
        "使用快捷回复",
    ]
    assert audit_detail("appeals.export", {"rows": 3, "filters": "status=overdue&q=漏水"}) == [
        "3 条",
        "筛选：超期未答复、搜索“漏水”",
    ]
    from zoneinfo import ZoneInfo

    shanghai = ZoneInfo("Asia/Shanghai")
    assert event_detail({"due_at": "2026-01-01T00:00:00+00:00", "token": "t"}, shanghai) == [
        "答复期限 01-01 08:00"
    ]
    assert event_detail({"backend_status": "DONE", "x": {"y": 1}}, shanghai) == []


async def test_pages_that_cannot_be_shown_say_so_in_chinese(world: World, console: httpx.AsyncClient) -> None:
    await login(console, "lina")
    for path, status in (
        ("/staff/appeals/HY-00000000-0000", 404),
        ("/staff/conversations/999999", 404),
        ("/staff/conversations/abc", 404),
        ("/staff/nowhere", 404),
        ("/staff/conversations/1/take", 405),
    ):
        response = await console.get(path)
        assert response.status_code == status, path
        text = shown_text(response.text)
        assert "无法打开这个页面" in text and developer_text(text) == [], (path, text)
