"""The case desk in the staff console: staff accept, assign, report progress, finish and return an
appeal from its page (the resident hears each step); a handler's login sees and acts on only the
appeals assigned to its handler, and everything else answers 404 like an appeal that does not exist;
the list filters by handler, and the dashboard shows the desk's times and rates."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy import select, update

from bot.db.models import Appeal, AppealStatus, StaffAccount, utcnow
from bot.db.repository.cases import CaseRepository
from bot.roles import create_staff_account
from bot.staff.queries.dashboard import case_times
from integrations.backend.forwarder import Forwarder
from tests.staff.conftest import PASSWORD, World, csrf_of, login

ACTIONS = ("accept", "assign", "progress", "done", "return")


async def _file(world: World, who: str = "res-wang", text: str = "3栋2单元楼道灯坏了好几天了") -> str:
    replies: list[str] = []
    for step in (text, "跳过", "13812345678", "/confirm"):
        replies = await world.say(step, who=who)
    found = re.search(r"HY-\d{8}-\d{4}", " ".join(replies))
    assert found, replies
    return found.group()


async def _deliver(world: World) -> None:
    await Forwarder(world.rt.db, world.rt.settings, outbound=world.rt.outbound).drain(10)


async def _appeal(world: World, public_id: str) -> Appeal:
    async with world.rt.db.unit_of_work() as uow:
        found = await uow.session.scalar(select(Appeal).where(Appeal.public_id == public_id))
        assert found is not None
        return found


async def _handler_login(world: World, username: str = "zhou", code: str = "property") -> StaffAccount:
    """A login of the property company's clerk: no staff grant, only membership of the handler."""
    async with world.rt.db.unit_of_work() as uow:
        handlers = await world.rt.dispatcher.services.cases.handlers(uow.session, world.demo.id)
        handler = next(h for h in handlers if h.code == code)
        account = await create_staff_account(
            uow.session, username, PASSWORD, "周师傅", [], handler_login=True
        )
        await CaseRepository(uow.session).add_member(handler.id, account.person_id)
        await uow.commit()
        return account


async def _post(console: httpx.AsyncClient, public_id: str, action: str, **data: str) -> httpx.Response:
    page = await console.get(f"/staff/appeals/{public_id}")
    assert page.status_code == 200, page.text
    return await console.post(
        f"/staff/appeals/{public_id}/{action}", data={"csrf": csrf_of(page.text), **data}
    )


async def _follow(console: httpx.AsyncClient, response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    page = await console.get(response.headers["location"])
    assert page.status_code == 200
    return page.text


def _status_of(html: str) -> str:
    found = re.search(r'data-testid="case-desk" data-status="([a-z_]+)"', html)
    assert found, "no case desk on the page"
    return found.group(1)


# --- staff -----------------------------------------------------------------------------------------------
async def test_no_action_without_login(world: World, console: httpx.AsyncClient) -> None:
    public_id = await _file(world)
    for action in ACTIONS:
        answer = await console.post(f"/staff/appeals/{public_id}/{action}", data={"csrf": "x", "text": "x"})
        assert answer.status_code == 401, action
    assert (await _appeal(world, public_id)).status == AppealStatus.SUBMITTED.value


async def test_staff_move_an_appeal_from_submitted_to_resolved(
    world: World, console: httpx.AsyncClient
) -> None:
    public_id = await _file(world)
    await login(console, "lina")
    page = (await console.get(f"/staff/appeals/{public_id}")).text
    assert 'data-testid="accept"' in page and 'data-testid="assign"' in page
    assert "未派单" in page
    # The KB's first contact for a corridor light is the property company: preselected, marked 建议.
    assert re.search(r'<option value="property" selected>[^<]*（建议）</option>', page), page
    assert 'value="city"' not in page, "no city backend here: no 市民生诉求平台 to choose"
    assert "不予受理" in page and 'data-confirm="确定办结' in page and 'data-confirm="确定不予受理' in page

    page = await _follow(console, await _post(console, public_id, "accept"))
    assert f"已受理 {public_id}" in page and _status_of(page) == "accepted"
    assert 'data-testid="accept"' not in page, "accepted once: no second 受理"
    await _deliver(world)
    assert "已受理" in world.sender.to("res-wang")[-1]

    page = await _follow(console, await _post(console, public_id, "assign", handler="property", text=""))
    assert f"已将 {public_id} 派给" in page and _status_of(page) == "assigned"
    assert re.search(r'data-testid="case-handler">[^<]*物业', page), page
    assert (await _appeal(world, public_id)).handler_id is not None

    page = await _follow(
        console, await _post(console, public_id, "progress", text="师傅明天上午上门更换灯管")
    )
    assert "已记录" in page and _status_of(page) == "in_progress"
    await _deliver(world)
    assert "师傅明天上午上门更换灯管" in world.sender.to("res-wang")[-1]

    page = await _follow(console, await _post(console, public_id, "done", text="已更换3栋2单元楼道灯管"))
    assert f"已办结 {public_id}" in page and _status_of(page) == "resolved"
    assert 'data-testid="case-actions"' not in page, "a resolved appeal offers no more actions"
    assert "已办结）" in page, "the resolution time is shown"
    await _deliver(world)
    assert "已更换3栋2单元楼道灯管" in world.sender.to("res-wang")[-1]
    # The history reads the new kinds in Chinese, not their codes.
    history = page.split('data-testid="history"', 1)[1]
    assert "状态变更" in history and "<td>status</td>" not in history


async def test_the_core_refusals_read_in_chinese(world: World, console: httpx.AsyncClient) -> None:
    public_id = await _file(world)
    await login(console, "lina")
    page = await _follow(console, await _post(console, public_id, "progress", text="   "))
    assert "请写上进展" in page and 'role="alert"' in page and _status_of(page) == "submitted"
    page = await _follow(console, await _post(console, public_id, "assign", handler="nobody"))
    assert "没有找到处理单位「nobody」" in page and "物业" in page
    await _follow(console, await _post(console, public_id, "done", text="已处理"))
    page = await _follow(console, await _post(console, public_id, "progress", text="再看看"))
    assert f"诉求 {public_id} 已是「已办结」，不能再处理。" in page
    # Only the core's refusals are read back from the address, not any wording one could link to.
    crafted = (await console.get(f"/staff/appeals/{public_id}?error=case.handler_assigned")).text
    assert 'role="alert"' not in crafted and "新派单" not in crafted
    # Without the session's CSRF token nothing happens.
    refused = await console.post(f"/staff/appeals/{public_id}/accept", data={"text": ""})
    assert refused.status_code == 403


async def test_staff_return_is_a_rejection_the_resident_reads(
    world: World, console: httpx.AsyncClient
) -> None:
    public_id = await _file(world)
    await login(console, "lina")
    page = await _follow(console, await _post(console, public_id, "return", text="属于开发商保修范围"))
    assert "不予受理" in page and _status_of(page) == "rejected"
    await _deliver(world)
    assert "属于开发商保修范围" in world.sender.to("res-wang")[-1]


async def test_deadlines_are_shown_and_missed_ones_marked(world: World, console: httpx.AsyncClient) -> None:
    public_id = await _file(world)
    await login(console, "lina")
    page = (await console.get(f"/staff/appeals/{public_id}")).text
    assert 'data-testid="first-overdue"' not in page and 'data-testid="resolution-overdue"' not in page
    assert re.search(r'data-testid="case-resolution-due">\d{4}-\d\d-\d\d \d\d:\d\d 前', page), page
    async with world.rt.db.unit_of_work() as uow:
        past = utcnow() - timedelta(hours=1)
        await uow.session.execute(
            update(Appeal)
            .where(Appeal.public_id == public_id)
            .values(first_response_due_at=past, resolution_due_at=past)
        )
        await uow.commit()
    page = (await console.get(f"/staff/appeals/{public_id}")).text
    assert 'data-testid="first-overdue"' in page and 'data-testid="resolution-overdue"' in page


async def test_the_list_filters_by_handler_and_names_it(world: World, console: httpx.AsyncClient) -> None:
    assigned = await _file(world, who="res-wang")
    other = await _file(world, who="res-li", text="5栋门口垃圾没人清理")
    await login(console, "lina")
    await _post(console, assigned, "assign", handler="property")
    listing = (await console.get("/staff/appeals")).text
    assert assigned in listing and other in listing and 'data-testid="handler-filter"' in listing
    handler_id = (await _appeal(world, assigned)).handler_id
    filtered = (await console.get(f"/staff/appeals?handler={handler_id}")).text
    assert assigned in filtered and other not in filtered
    assert re.search(r'data-testid="appeal-handler">[^<]*物业', filtered)
    rows = list(csv.reader(io.StringIO((await console.get(f"/staff/appeals.csv?handler={handler_id}")).text)))
    assert [r[0] for r in rows[1:]] == [assigned] and "物业" in rows[1][rows[0].index("处理单位")]


# --- a handler's login -----------------------------------------------------------------------------------
async def test_a_handler_login_sees_and_acts_on_only_its_appeals(
    world: World, console: httpx.AsyncClient
) -> None:
    mine = await _file(world, who="res-wang")
    not_mine = await _file(world, who="res-li", text="5栋门口垃圾没人清理")
    await _handler_login(world)
    await login(console, "lina")
    await _post(console, mine, "assign", handler="property")
    await console.post("/staff/logout", data={"csrf": csrf_of((await console.get("/staff/appeals")).text)})

    logged_in = await login(console, "zhou")
    assert logged_in.status_code == 303, "a handler's person may log in without any staff grant"
    listing = (await console.get("/staff/appeals")).text
    assert mine in listing and not_mine not in listing
    for entry in ("对话队列", "看板", "快捷回复", "操作记录"):
        assert entry not in listing, f"the nav offers {entry} to a handler's person"
    rows = list(csv.reader(io.StringIO((await console.get("/staff/appeals.csv")).text)))
    assert [r[0] for r in rows[1:]] == [mine]

    # Not theirs, or not there at all: the same 404, for the page and for every action.
    csrf = csrf_of(listing)
    for public_id in (not_mine, "HY-20200101-0001"):
        assert (await console.get(f"/staff/appeals/{public_id}")).status_code == 404
        for action in ACTIONS:
            answer = await console.post(
                f"/staff/appeals/{public_id}/{action}",
                data={"csrf": csrf, "text": "x", "handler": "property"},
            )
            assert answer.status_code == 404, (public_id, action)
    assert (await _appeal(world, not_mine)).status == AppealStatus.SUBMITTED.value

    # The staff's pages are not theirs: pages send them to their appeals, the rest answers 403.
    for path in ("/staff/queue", "/staff/dashboard", "/staff/canned", "/staff/audit", "/staff/"):
        answer = await console.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/staff/appeals", path
    assert (await console.get("/staff/dashboard/live", headers={"HX-Request": "true"})).status_code == 403
    assert (await console.post("/staff/conversations/1/take", data={"csrf": csrf})).status_code == 403

    # Their own appeal: no 派单, 退回 reads 退回社区; progress and finish work.
    page = (await console.get(f"/staff/appeals/{mine}")).text
    assert 'data-testid="assign"' not in page and "退回社区" in page and "不予受理" not in page
    forged = await _post(console, mine, "assign", handler="office")
    assert "只有社区工作人员可以派单" in await _follow(console, forged)
    page = await _follow(console, await _post(console, mine, "progress", text="明天上午上门"))
    assert _status_of(page) == "in_progress"
    assert "处理单位 周师傅" in page, "the history says it was the handler's person, not community staff"
    await _deliver(world)
    assert "明天上午上门" in world.sender.to("res-wang")[-1]


async def test_a_handler_hands_an_appeal_back_and_no_longer_sees_it(
    world: World, console: httpx.AsyncClient
) -> None:
    public_id = await _file(world)
    await _handler_login(world)
    await login(console, "lina")
    await _post(console, public_id, "assign", handler="property")
    console.cookies.clear()
    await login(console, "zhou")
    back = await _post(console, public_id, "return", text="属于开发商保修范围")
    assert back.status_code == 303 and back.headers["location"] == "/staff/appeals?done=handed_back"
    assert "已退回社区重新派单" in (await console.get(back.headers["location"])).text
    assert (await console.get(f"/staff/appeals/{public_id}")).status_code == 404
    appeal = await _appeal(world, public_id)
    assert appeal.handler_id is None and appeal.status == AppealStatus.ASSIGNED.value
    # Staff see it again, returned, with the event in Chinese.
    console.cookies.clear()
    await login(console, "lina")
    page = (await console.get(f"/staff/appeals/{public_id}")).text
    assert "退回社区" in page.split('data-testid="history"', 1)[1] and "属于开发商保修范围" in page


async def test_a_handler_login_without_handlers_is_refused(world: World, console: httpx.AsyncClient) -> None:
    async with world.rt.db.unit_of_work() as uow:
        await create_staff_account(uow.session, "nobody", PASSWORD, "无名", [], handler_login=True)
        await uow.commit()
    assert (await login(console, "nobody")).status_code == 401


# --- the dashboard ---------------------------------------------------------------------------------------
def test_case_times_medians_averages_and_rates() -> None:
    now = utcnow()
    t0 = now - timedelta(days=4)

    def row(first_h: float | None, done_h: float | None, rating: str | None = None) -> SimpleNamespace:
        return SimpleNamespace(
            created_at=t0,
            first_response_due_at=t0 + timedelta(hours=24),
            first_responded_at=t0 + timedelta(hours=first_h) if first_h is not None else None,
            resolution_due_at=t0 + timedelta(hours=72),
            resolved_at=t0 + timedelta(hours=done_h) if done_h is not None else None,
            rating=rating,
        )

    times = case_times(
        [row(2, 10, "satisfied"), row(4, 80, "basic"), row(30, None), row(None, None, None)], now
    )
    assert (times.first_response.median_h, times.first_response.average_h) == (4, 12)
    assert (times.resolution.median_h, times.resolution.average_h) == (45, 45)
    # First response: two on time, one late, one never answered and past due (4 days ago + 24 h).
    assert (times.first_response_on_time.hits, times.first_response_on_time.total) == (2, 4)
    # Resolution: due at 72 h, now is 96 h later: one on time, one late, two past due unresolved.
    assert (times.resolution_on_time.hits, times.resolution_on_time.total) == (1, 4)
    assert times.satisfaction.percent == 100 and times.satisfaction.total == 2
    unsatisfied = case_times([row(1, 2, "satisfied"), row(1, 2, "unsatisfied")], now)
    assert unsatisfied.satisfaction.percent == 50
    assert case_times([], now).first_response.median_h is None


async def test_the_dashboard_shows_the_case_desk_figures(world: World, console: httpx.AsyncClient) -> None:
    public_id = await _file(world)
    await login(console, "lina")
    board = (await console.get("/staff/dashboard")).text
    assert "办理时效" in board and "满意率" in board
    assert re.search(r'data-testid="kpi-first-response">暂无', board)
    await _post(console, public_id, "accept")
    await _post(console, public_id, "done", text="已更换灯管")
    async with world.rt.db.unit_of_work() as uow:
        await uow.session.execute(update(Appeal).where(Appeal.public_id == public_id).values(rating="basic"))
        await uow.commit()
    board = (await console.get("/staff/dashboard")).text
    assert re.search(r'data-testid="kpi-first-response">0\.0 / 0\.0 小时', board), board
    assert re.search(r'data-testid="kpi-resolution-on-time">100%<small>（1/1）', board)
    assert re.search(r'data-testid="kpi-satisfaction">100%<small>（1/1）', board)


async def test_with_a_city_backend_staff_may_send_an_appeal_to_the_city(
    world: World, console: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    public_id = await _file(world)
    # A case backend is configured from here on (filed before it, the appeal stayed with the community).
    monkeypatch.setattr(type(world.rt.settings), "backend_kind", lambda self, code=None: "webhook")
    await login(console, "lina")
    page = (await console.get(f"/staff/appeals/{public_id}")).text
    assert re.search(r'<option value="city" ?>市民生诉求平台</option>', page), page
    page = await _follow(console, await _post(console, public_id, "assign", handler="city"))
    assert "已将" in page and "转交市民生诉求平台" in page and _status_of(page) == "assigned"
    assert (await _appeal(world, public_id)).destination == "city"
