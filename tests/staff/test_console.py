"""The staff console over HTTP: login, sessions, CSRF, per-community access (ID guessing included),
the pages and the CSV export, and the audit trail of every action."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from bot.db.models import Appeal, AuditEntry, CannedReply, HandoffNote, StaffAccount, utcnow
from tests.staff.conftest import World, csrf_of, login

GET_PAGES = ["/staff/", "/staff/queue", "/staff/queue/live", "/staff/appeals", "/staff/appeals.csv",
             "/staff/dashboard", "/staff/dashboard/live", "/staff/canned", "/staff/audit",
             "/staff/conversations/1", "/staff/conversations/1/live", "/staff/appeals/HY-20260101-0001"]  # fmt: skip
POSTS = ["/staff/conversations/1/take", "/staff/conversations/1/reply", "/staff/conversations/1/note",
         "/staff/conversations/1/release", "/staff/conversations/1/file", "/staff/canned",
         "/staff/canned/1/delete", "/staff/logout"]  # fmt: skip


async def _appeal(world: World, who: str, text: str = "3栋2单元楼道灯坏了") -> str:
    """File a real appeal through the dialog (private chat), returning its public id."""
    for message in (text, "跳过", "不留电话", "确认提交"):
        replies = await world.say(message, who=who, name="居民" + who[-1])
    found = re.search(r"HY-\d{8}-\d{4}", " ".join(replies))
    assert found, replies
    return found.group()


async def _move_to(world: World, public_id: str, community_id: int) -> None:
    async with world.rt.db.unit_of_work() as uow:
        await uow.session.execute(
            update(Appeal).where(Appeal.public_id == public_id).values(community_id=community_id)
        )
        await uow.commit()


# --- logging in ------------------------------------------------------------------------------------------
async def test_no_page_or_action_without_login(console: httpx.AsyncClient) -> None:
    for path in GET_PAGES:
        response = await console.get(path)
        assert response.status_code == 303 and "/staff/login" in response.headers["location"], path
        htmx = await console.get(path, headers={"HX-Request": "true"})
        assert htmx.status_code == 401 and htmx.headers["HX-Redirect"] == "/staff/login", path
    for path in POSTS:
        response = await console.post(path, data={"text": "x", "csrf": "x"})
        assert response.status_code == 401, path
    # No API schema or docs of the console either.
    for path in ("/staff/openapi.json", "/staff/docs"):
        assert (await console.get(path)).status_code == 404


async def test_login_logout_and_wrong_passwords(world: World, console: httpx.AsyncClient) -> None:
    bad = await login(console, "lina", "wrong password!")
    assert bad.status_code == 401 and "用户名或密码不正确" in bad.text
    unknown = await login(console, "nobody", "whatever pass")
    assert unknown.status_code == 401
    ok = await login(console, "lina")
    assert ok.status_code == 303 and ok.headers["location"] == "/staff/queue"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Path=/staff" in cookie
    page = await console.get("/staff/queue")
    assert page.status_code == 200 and "李娜" in page.text
    for name, value in {"x-frame-options": "DENY", "x-content-type-options": "nosniff"}.items():
        assert page.headers[name] == value
    assert "script-src 'self'" in page.headers["content-security-policy"]
    logout = await console.post("/staff/logout", data={"csrf": csrf_of(page.text)})
    assert logout.status_code == 303
    # The old cookie is dead server-side too.
    console.cookies.set("hy_staff", cookie.split(";")[0].split("=", 1)[1], path="/staff")
    assert (await console.get("/staff/queue")).status_code == 303
    async with world.rt.db.unit_of_work() as uow:
        actions = list(
            (await uow.session.execute(select(AuditEntry.action).order_by(AuditEntry.id))).scalars()
        )
    assert (
        actions.count("console.login_failed") == 2
        and "console.login" in actions
        and "console.logout" in actions
    )


async def test_login_needs_the_login_form_token(console: httpx.AsyncClient, world: World) -> None:
    response = await console.post(
        "/staff/login", data={"username": "lina", "password": "correct horse battery"}
    )
    assert response.status_code == 403


async def test_repeated_failures_lock_the_login_for_a_while(world: World, console: httpx.AsyncClient) -> None:
    for _ in range(world.rt.settings.staff_login_max_failures):
        assert (await login(console, "lina", "wrong password!")).status_code == 401
    # Even the right password is refused now.
    assert (await login(console, "lina")).status_code == 429


async def test_only_console_paths_after_login(console: httpx.AsyncClient, world: World) -> None:
    page = await console.get("/staff/login", params={"next": "//evil.example/x"})
    token = csrf_of(page.text)
    response = await console.post(
        "/staff/login",
        data={
            "username": "lina",
            "password": "correct horse battery",
            "csrf": token,
            "next": "https://evil.example/",
        },
    )
    assert response.headers["location"] == "/staff/queue"


async def test_a_deactivated_account_loses_its_session(world: World, console: httpx.AsyncClient) -> None:
    await login(console, "lina")
    assert (await console.get("/staff/queue")).status_code == 200
    async with world.rt.db.unit_of_work() as uow:
        await uow.session.execute(
            update(StaffAccount).where(StaffAccount.username == "lina").values(active=False)
        )
        await uow.commit()
    assert (await console.get("/staff/queue")).status_code == 303


async def test_a_forged_session_cookie_is_refused(console: httpx.AsyncClient, world: World) -> None:
    console.cookies.set("hy_staff", "abc.def.ghi", path="/staff")
    assert (await console.get("/staff/queue")).status_code == 303


# --- CSRF ------------------------------------------------------------------------------------------------
async def test_every_post_needs_the_csrf_token(world: World, console: httpx.AsyncClient) -> None:
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    await login(console, "lina")
    for path in [p.replace("/1/", f"/{conv}/") for p in POSTS]:
        for data in ({"text": "hi"}, {"text": "hi", "csrf": "not-the-token"}):
            response = await console.post(path, data=data)
            assert response.status_code == 403, (path, data)
    handoff = await world.handoff(conv)
    assert handoff is not None and handoff.status == "waiting"
    assert world.sender.sent == []


# --- the queue and a conversation --------------------------------------------------------------------
async def test_take_reply_note_release_from_the_console(world: World, console: httpx.AsyncClient) -> None:
    await world.say("3栋2单元楼道灯坏了好几天")
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    await login(console, "lina")
    queue = await console.get("/staff/queue/live")
    assert f'data-conversation="{conv}"' in queue.text and "3栋2单元" in queue.text
    page = await console.get(f"/staff/conversations/{conv}")
    token = csrf_of(page.text)
    taken = await console.post(f"/staff/conversations/{conv}/take", data={"csrf": token})
    assert taken.status_code == 303 and taken.headers["location"].endswith("?done=taken")
    assert "李娜" in world.sender.to("res-wang")[-1]
    sent = await console.post(
        f"/staff/conversations/{conv}/reply", data={"csrf": token, "text": "马上安排电工"}
    )
    assert sent.headers["location"].endswith("?done=replied")
    assert world.sender.to("res-wang")[-1].startswith("马上安排电工")
    noted = await console.post(
        f"/staff/conversations/{conv}/note", data={"csrf": token, "text": "内部：物业已派单"}
    )
    assert noted.headers["location"].endswith("?done=noted")
    assert not any("物业已派单" in r.text for r in world.sender.sent)
    live = await console.get(f"/staff/conversations/{conv}/live")
    assert (
        "马上安排电工" in live.text
        and "内部：物业已派单" in live.text
        and 'data-status="active"' in live.text
    )
    released = await console.post(f"/staff/conversations/{conv}/release", data={"csrf": token})
    assert released.headers["location"].endswith("?done=released")
    # The resident had begun the form: after the goodbye, it is offered back.
    goodbye, offer = world.sender.to("res-wang")[-2:]
    assert "李娜已结束本次服务" in goodbye and "要继续登记刚才的问题吗" in offer
    async with world.rt.db.unit_of_work() as uow:
        actions = list(
            (
                await uow.session.execute(
                    select(AuditEntry.action)
                    .where(AuditEntry.target_type == "conversation", AuditEntry.target_id == str(conv))
                    .order_by(AuditEntry.id)
                )
            ).scalars()
        )
    assert actions == [
        "conversation.view",
        "handoff.take",
        "handoff.reply",
        "handoff.note",
        "handoff.release",
    ]


async def test_a_canned_reply_from_the_console(world: World, console: httpx.AsyncClient) -> None:
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    await login(console, "lina")
    token = csrf_of((await console.get("/staff/canned")).text)
    await console.post("/staff/canned", data={"csrf": token, "title": "上门", "text": "师傅今天下午上门。"})
    async with world.rt.db.unit_of_work() as uow:
        canned = (await uow.session.execute(select(CannedReply))).scalars().one()
    await console.post(f"/staff/conversations/{conv}/take", data={"csrf": token})
    await console.post(
        f"/staff/conversations/{conv}/reply", data={"csrf": token, "text": "", "canned": str(canned.id)}
    )
    assert world.sender.to("res-wang")[-1].startswith("师傅今天下午上门。")


async def test_staff_see_and_touch_only_their_communities_conversations(
    world: World, console: httpx.AsyncClient
) -> None:
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    await login(console, "zhao")  # staff of the other community
    page = await console.get("/staff/queue/live")
    assert f'data-conversation="{conv}"' not in page.text and "王阿姨" not in page.text
    token = csrf_of((await console.get("/staff/queue")).text)
    for guess in (conv, conv + 1, 999999):  # theirs, the next one, one that does not exist: all alike
        assert (await console.get(f"/staff/conversations/{guess}")).status_code == 404
        assert (await console.get(f"/staff/conversations/{guess}/live")).status_code == 404
        for action in ("take", "reply", "note", "release"):
            response = await console.post(
                f"/staff/conversations/{guess}/{action}", data={"csrf": token, "text": "越权"}
            )
            assert response.status_code == 404, (guess, action)
    handoff = await world.handoff(conv)
    assert handoff is not None and handoff.status == "waiting"
    assert world.sender.sent == []
    async with world.rt.db.unit_of_work() as uow:
        assert (await uow.session.execute(select(HandoffNote))).first() is None


async def test_canned_replies_of_another_community_are_out_of_reach(
    world: World, console: httpx.AsyncClient
) -> None:
    async with world.rt.db.unit_of_work() as uow:
        theirs = CannedReply(community_id=world.demo.id, title="内部", text="幸福里专用")
        uow.session.add(theirs)
        await uow.commit()
    await world.say("转人工", who="res-old", name="老园居民")
    await login(console, "zhao")
    page = await console.get("/staff/canned")
    assert "幸福里专用" not in page.text
    token = csrf_of(page.text)
    assert (await console.post(f"/staff/canned/{theirs.id}/delete", data={"csrf": token})).status_code == 404
    assert (
        await console.post(
            "/staff/canned", data={"csrf": token, "community": "demo", "title": "x", "text": "y"}
        )
    ).status_code == 404
    async with world.rt.db.unit_of_work() as uow:
        assert (await uow.session.get(CannedReply, theirs.id)) is not None


# --- appeals, CSV, dashboard -----------------------------------------------------------------------------
async def test_appeals_list_detail_and_csv_are_per_community(
    world: World, console: httpx.AsyncClient
) -> None:
    ours = await _appeal(world, "res-a")
    theirs = await _appeal(world, "res-b", "小区东门的路灯坏了")
    await _move_to(world, theirs, world.other.id)
    await login(console, "lina")

    listing = await console.get("/staff/appeals")
    assert ours in listing.text and theirs not in listing.text
    detail = await console.get(f"/staff/appeals/{ours}")
    assert detail.status_code == 200 and "状态记录" in detail.text and "已提交" in detail.text
    # Guessing: another community's appeal, the next number, garbage — all 404.
    nxt = ours[:-4] + f"{int(ours[-4:]) + 7:04d}"
    for guess in (theirs, nxt, "HY-00000000-0000", "../../etc/passwd"):
        assert (await console.get(f"/staff/appeals/{guess}")).status_code == 404, guess
    for path in ("/staff/appeals", "/staff/appeals.csv", "/staff/dashboard", "/staff/dashboard/live"):
        assert (await console.get(path, params={"community": "laoyuan"})).status_code == 404, path
        assert (await console.get(path, params={"community": "nope"})).status_code == 404, path

    exported = await console.get("/staff/appeals.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][0] == "编号" and [r[0] for r in rows[1:]] == [ours]
    filtered = await console.get("/staff/appeals.csv", params={"status": "resolved"})
    assert len(list(csv.reader(io.StringIO(filtered.content.decode("utf-8-sig"))))) == 1
    async with world.rt.db.unit_of_work() as uow:
        actions = set((await uow.session.execute(select(AuditEntry.action))).scalars())
    assert {"appeal.view", "appeals.export"} <= actions


async def test_appeal_filters(world: World, console: httpx.AsyncClient) -> None:
    lamp = await _appeal(world, "res-a")
    leak = await _appeal(world, "res-c", "5栋1单元楼上漏水到我家")
    await login(console, "lina")
    by_building = await console.get("/staff/appeals", params={"building": "5"})
    assert leak in by_building.text and lamp not in by_building.text
    by_text = await console.get("/staff/appeals", params={"q": "漏水"})
    assert leak in by_text.text and lamp not in by_text.text
    async with world.rt.db.unit_of_work() as uow:
        party = await uow.session.scalar(select(Appeal.responsible_party).where(Appeal.public_id == lamp))
        category = await uow.session.scalar(select(Appeal.category).where(Appeal.public_id == lamp))
    if party:
        assert lamp in (await console.get("/staff/appeals", params={"party": party})).text
    if category:
        assert lamp in (await console.get("/staff/appeals", params={"category": category})).text
    assert lamp not in (await console.get("/staff/appeals", params={"status": "resolved"})).text


async def test_csv_cells_cannot_become_formulas(world: World, console: httpx.AsyncClient) -> None:
    public_id = await _appeal(world, "res-a")
    async with world.rt.db.unit_of_work() as uow:
        await uow.session.execute(
            update(Appeal).where(Appeal.public_id == public_id).values(description='=HYPERLINK("http://x")')
        )
        await uow.commit()
    await login(console, "lina")
    rows = list(
        csv.reader(io.StringIO((await console.get("/staff/appeals.csv")).content.decode("utf-8-sig")))
    )
    assert rows[1][9].startswith("'=")


async def test_dashboard_counts_and_overdue(world: World, console: httpx.AsyncClient) -> None:
    late = await _appeal(world, "res-a")
    await _appeal(world, "res-c", "5栋1单元楼上漏水到我家")
    async with world.rt.db.unit_of_work() as uow:
        await uow.session.execute(
            update(Appeal)
            .where(Appeal.public_id == late)
            .values(first_response_due_at=utcnow() - timedelta(hours=1))
        )
        await uow.commit()
    await login(console, "lina")
    board = await console.get("/staff/dashboard")
    assert board.status_code == 200
    assert re.search(r'data-testid="kpi-open">2<', board.text)
    assert re.search(r'data-testid="kpi-overdue">1<', board.text)
    assert late in board.text and "<svg" in board.text and "<rect" in board.text
    overdue = await console.get("/staff/appeals", params={"status": "overdue"})
    assert late in overdue.text


@pytest.mark.parametrize("path", ["/staff/audit"])
async def test_the_audit_page_shows_only_own_communities(
    world: World, console: httpx.AsyncClient, path: str
) -> None:
    await world.say("转人工")
    conv = await world.conversation_of("res-wang")
    await login(console, "lina")
    token = csrf_of((await console.get("/staff/queue")).text)
    await console.post(f"/staff/conversations/{conv}/take", data={"csrf": token})
    assert "接入对话" in (await console.get(path)).text
    console.cookies.clear()
    await login(console, "zhao")
    assert "接入对话" not in (await console.get(path)).text


# --- residents' side: nobody reads another resident's appeal ------------------------------------------
async def test_a_resident_cannot_read_anothers_appeal_by_guessing_its_id(world: World) -> None:
    public_id = await _appeal(world, "res-a", "3栋2单元楼道的声控灯坏了，我家电话13812345678")
    for text in (f"{public_id} 进度怎么样", f"查一下 {public_id}", f"/status {public_id}", "我的诉求进度"):
        replies = " ".join(await world.say(text, who="res-snoop", name="好奇的人"))
        assert public_id not in replies and "声控" not in replies and "13812345678" not in replies, (
            text,
            replies,
        )
