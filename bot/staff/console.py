"""The staff console: a small server-rendered web app mounted at ``/staff`` (see docs/staff.md).

Pages are Jinja2 templates; live parts (the queue, a transcript, the dashboard) refresh themselves with
htmx polling of ``…/live`` fragments; actions are plain HTML forms (POST, then redirect back), so every
page also works without JavaScript. Nothing here is reachable without a session, every POST checks the
session's CSRF token, and every read is limited to the communities the staff member serves: anything
else answers 404, exactly like something that does not exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import structlog
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from bot.db.models import (
    AppealStatus,
    CannedReply,
    Community,
    Conversation,
    HandoffStatus,
    TranscriptMessage,
    utcnow,
)
from bot.db.session import commit
from bot.handoff.desk import HandoffDesk, HandoffError
from bot.roles import account_by_username, audit, staff_name
from bot.runtime import Runtime
from bot.settings import Settings
from bot.staff import queries
from bot.staff.auth import LOGIN_COOKIE, SESSION_COOKIE, ConsoleAuth, CsrfFailed, NotAuthenticated, StaffUser
from bot.staff.proxies import client_address

log = structlog.get_logger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
TRANSCRIPT_LIMIT = 300

# The console's own scripts and styles only: no inline code, no framing, forms post only to us.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

NOTICES = {
    "taken": "已接入：机器人在这个对话里不再回答，居民已收到提示。",
    "replied": "已发送给居民。",
    "reply_failed": "消息没能送达居民（平台拒收或未连接），已记录在对话里。",
    "noted": "已添加内部备注（居民看不到）。",
    "released": "已结束人工服务，机器人继续回答，居民已收到提示。",
    "canned_added": "已添加快捷回复。",
    "canned_deleted": "已删除快捷回复。",
}
# Too many attempts, from this address or for this name: no word on which, nor on whether the name exists.
LOGIN_REFUSED = "登录尝试次数过多，请稍后再试。"

ERRORS = {
    "taken_by_other": "这个对话已由其他同事接入。",
    "not_held": "您还没有接入这个对话，请先接入。",
    "not_open": "这个对话当前没有进行中的人工服务。",
    "reply_usage": "回复内容不能为空。",
    "note_usage": "备注内容不能为空。",
    "canned_invalid": "请填写标题和内容。",
}


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), enable_async=False
    )
    env.filters["category"] = queries.category_label
    env.filters["party"] = queries.party_label
    env.filters["status"] = queries.status_label
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}
    return env


@dataclass(slots=True)
class Ctx:
    """One request's staff member, database session and runtime."""

    request: Request
    user: StaffUser
    session: AsyncSession
    rt: Runtime
    console: Console

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.rt.settings.timezone)

    async def commit(self) -> None:
        await commit(self.session)

    def audit(
        self,
        action: str,
        *,
        target_type: str,
        target_id: str | int,
        community_id: int | None,
        **detail: object,
    ) -> None:
        """Audit an action of the logged-in staff member (``detail`` as keywords), in this request's
        transaction (see :func:`bot.roles.audit`): it is recorded when the request commits."""
        audit(
            self.session,
            actor_person_id=self.user.person_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            community_id=community_id,
            detail=detail,
        )


class Console:
    def __init__(self, get_runtime: Callable[[], Runtime]) -> None:
        self.get_runtime = get_runtime
        self.templates = Jinja2Templates(env=_environment())
        self._auth: tuple[Runtime, ConsoleAuth] | None = None

    def auth(self) -> ConsoleAuth:
        rt = self.get_runtime()
        if self._auth is None or self._auth[0] is not rt:
            self._auth = (rt, ConsoleAuth(rt.settings, rt.store.redis))
        return self._auth[1]

    @asynccontextmanager
    async def ctx(self, request: Request) -> AsyncIterator[Ctx]:
        rt = self.get_runtime()
        async with rt.db.unit_of_work() as uow:
            user = await self.auth().user(uow.session, request.cookies.get(SESSION_COOKIE))
            yield Ctx(request, user, uow.session, rt, self)

    async def form(self, c: Ctx) -> FormData:
        """The POSTed form, after checking its CSRF token (403 without it)."""
        form = await c.request.form()
        token = form.get("csrf") or c.request.headers.get("x-csrf-token")
        self.auth().check_csrf(c.user, token if isinstance(token, str) else None)
        return form

    def render(
        self, c: Ctx | None, request: Request, name: str, status_code: int = 200, **values: Any
    ) -> HTMLResponse:
        tz = ZoneInfo(self.get_runtime().settings.timezone)

        def local(value: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
            return value.astimezone(tz).strftime(fmt) if value else ""

        context = {
            "base": request.scope.get("root_path", ""),
            "user": c.user if c else None,
            "csrf": c.user.csrf if c else "",
            "local": local,
            "notice": NOTICES.get(request.query_params.get("done", "")),
            "error": ERRORS.get(request.query_params.get("error", "")),
            **values,
        }
        return self.templates.TemplateResponse(request, name, context, status_code=status_code)


def create_console(get_runtime: Callable[[], Runtime]) -> FastAPI:
    """The console as an ASGI app; mount it at ``/staff`` (bot/app.py does)."""
    console = Console(get_runtime)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(NotAuthenticated)
    async def not_authenticated(request: Request, exc: NotAuthenticated) -> Response:
        base = request.scope.get("root_path", "")
        login = f"{base}/login"
        if request.method == "GET" and "hx-request" not in request.headers:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{login}?next={quote(target)}", status_code=303)
        return Response("login required", status_code=401, headers={"HX-Redirect": login})

    @app.exception_handler(CsrfFailed)
    async def csrf_failed(request: Request, exc: CsrfFailed) -> Response:
        # Most often a form left open past its token's life: say so, in the staff's words.
        return Response("页面已过期，请刷新后重试。", status_code=403, media_type="text/plain; charset=utf-8")

    _auth_routes(app, console)
    _queue_routes(app, console)
    _conversation_routes(app, console)
    _appeal_routes(app, console)
    _other_routes(app, console)
    return app


def _cookie_args(rt: Runtime, base: str) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "lax",
        "secure": rt.settings.staff_cookie_secure,
        "path": base or "/",
    }


def _client(request: Request, settings: Settings) -> str:
    """The client's address, through trusted proxies only (see bot/staff/proxies.py)."""
    return client_address(
        request.client.host if request.client else None,
        request.headers.getlist("x-forwarded-for"),
        settings.trusted_proxies,
    )


# --- login -----------------------------------------------------------------------------------------------
def _auth_routes(app: FastAPI, console: Console) -> None:
    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> Response:
        return _login_form(console, request)

    @app.post("/login")
    async def login(request: Request) -> Response:
        rt = console.get_runtime()
        auth = console.auth()
        form = await request.form()
        token = form.get("csrf")
        auth.check_login_token(request.cookies.get(LOGIN_COOKIE), token if isinstance(token, str) else None)
        username = str(form.get("username") or "").strip().lower()[:64]
        password = str(form.get("password") or "")
        client = _client(request, rt.settings)
        # Counted before anything else, and answered alike whether the name exists or not.
        if not await auth.admit_login(client, username):
            return _login_form(console, request, error=LOGIN_REFUSED, status_code=429)
        async with rt.db.unit_of_work() as uow:
            found = await account_by_username(uow.session, username) if username else None
            account_id, password_hash = (found.id, found.password_hash) if found else (None, None)
        # Checked between two units of work: a login waiting for its turn holds no database connection.
        matched = await auth.check_password(password_hash, password)
        async with rt.db.unit_of_work() as uow:
            account = await auth.may_log_in(uow.session, account_id) if matched else None
            if account is None:
                audit(
                    uow.session,
                    actor_person_id=None,
                    action="console.login_failed",
                    target_type="staff",
                    target_id=username or "-",
                    community_id=None,
                    detail={"client": client},
                )
                await uow.commit()
                return _login_form(console, request, error="用户名或密码不正确。", status_code=401)
            await auth.login_succeeded(client, username)
            account.last_login_at = utcnow()
            cookie, _csrf = await auth.start_session(account)
            audit(
                uow.session,
                actor_person_id=account.person_id,
                action="console.login",
                target_type="staff",
                target_id=account.id,
                community_id=None,
                detail={"client": client},
            )
            await uow.commit()
        base = request.scope.get("root_path", "")
        nxt = str(form.get("next") or "")
        # Only back into the console: never an open redirect to another site.
        target = nxt if nxt.startswith(f"{base}/") and not nxt.startswith("//") else f"{base}/queue"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, cookie, max_age=auth.session_seconds, **_cookie_args(rt, base))
        response.delete_cookie(LOGIN_COOKIE, path=base or "/")
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        async with console.ctx(request) as c:
            await console.form(c)
            await console.auth().end_session(c.user.session_id, c.user.account_id)
            c.audit("console.logout", target_type="staff", target_id=c.user.account_id, community_id=None)
            await c.commit()
        base = request.scope.get("root_path", "")
        response = RedirectResponse(f"{base}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=base or "/")
        return response


def _login_form(
    console: Console, request: Request, *, error: str | None = None, status_code: int = 200
) -> Response:
    cookie, token = console.auth().login_token()
    base = request.scope.get("root_path", "")
    response = console.render(
        None,
        request,
        "login.html",
        status_code=status_code,
        login_token=token,
        login_error=error,
        next=request.query_params.get("next", ""),
    )
    response.set_cookie(LOGIN_COOKIE, cookie, max_age=3600, **_cookie_args(console.get_runtime(), base))
    return response


# --- the queue -------------------------------------------------------------------------------------------
def _queue_routes(app: FastAPI, console: Console) -> None:
    @app.get("/")
    async def home(request: Request) -> Response:
        async with console.ctx(request):
            pass
        return RedirectResponse(f"{request.scope.get('root_path', '')}/queue", status_code=303)

    @app.get("/queue", response_class=HTMLResponse)
    async def queue_page(request: Request) -> Response:
        async with console.ctx(request) as c:
            return console.render(c, request, "queue.html", **await _queue_values(c))

    @app.get("/queue/live", response_class=HTMLResponse)
    async def queue_live(request: Request) -> Response:
        async with console.ctx(request) as c:
            return console.render(c, request, "_queue.html", **await _queue_values(c))


async def _queue_values(c: Ctx) -> dict[str, Any]:
    desk = c.rt.dispatcher.handoff
    items = await desk.queue(c.session, c.user.community_ids)
    return {
        "waiting": [i for i in items if i.handoff.status == HandoffStatus.WAITING.value],
        "active": [i for i in items if i.handoff.status == HandoffStatus.ACTIVE.value],
        "recent": await queries.recent_conversations(c.session, c.user.community_ids),
        "reasons": _reasons(desk),
    }


def _reasons(desk: HandoffDesk) -> dict[str, str]:
    """The wording of each reason a conversation was handed to staff, by reason key."""
    return {
        r: desk.words.get(f"staff.reasons.{r}") for r in ("asked", "not_understood", "emergency", "staff")
    }


# --- one conversation ------------------------------------------------------------------------------------
async def _conversation(c: Ctx, conversation_id: int) -> Conversation:
    conv = await c.session.get(Conversation, conversation_id)
    if conv is None or not c.user.serves(conv.community_id):
        raise HTTPException(404, "no such conversation")
    return conv


def _conversation_routes(app: FastAPI, console: Console) -> None:
    @app.get("/conversations/{conversation_id}", response_class=HTMLResponse)
    async def conversation_page(request: Request, conversation_id: int) -> Response:
        async with console.ctx(request) as c:
            conv = await _conversation(c, conversation_id)
            values = await _conversation_values(c, conv)
            desk = c.rt.dispatcher.handoff
            values["canned"] = await desk.canned(c.session, conv.community_id)
            c.audit(
                "conversation.view",
                target_type="conversation",
                target_id=conv.id,
                community_id=conv.community_id,
            )
            await c.commit()
            return console.render(c, request, "conversation.html", **values)

    @app.get("/conversations/{conversation_id}/live", response_class=HTMLResponse)
    async def conversation_live(request: Request, conversation_id: int) -> Response:
        async with console.ctx(request) as c:
            conv = await _conversation(c, conversation_id)
            return console.render(
                c, request, "_conversation_live.html", **await _conversation_values(c, conv)
            )

    async def act(request: Request, conversation_id: int, action: str) -> Response:
        base = request.scope.get("root_path", "")
        back = f"{base}/conversations/{conversation_id}"
        rt = console.get_runtime()
        desk = rt.dispatcher.handoff
        async with console.ctx(request) as c:
            conv = await _conversation(c, conversation_id)
            form = await console.form(c)
            try:
                if action == "take":
                    outcome = await desk.take(c.session, conv.id, c.user.person_id, via="console")
                elif action == "release":
                    outcome = await desk.release(c.session, conv.id, c.user.person_id, via="console")
                elif action == "note":
                    outcome = await desk.note(
                        c.session, conv.id, c.user.person_id, str(form.get("text") or "")
                    )
                else:
                    text, canned_id = str(form.get("text") or ""), None
                    if (chosen := str(form.get("canned") or "")).isdigit() and not text.strip():
                        canned = await c.session.get(CannedReply, int(chosen))
                        if canned is None or canned.community_id != conv.community_id:
                            raise HTTPException(404, "no such canned reply")
                        text, canned_id = canned.text, canned.id
                    outcome = await desk.reply(
                        c.session, conv.id, c.user.person_id, text, canned_id=canned_id
                    )
            except HandoffError as exc:
                return RedirectResponse(f"{back}?{urlencode({'error': exc.key})}", status_code=303)
            await c.commit()
        failed = await desk.send(outcome.notices, rt.outbound)
        done = {"take": "taken", "release": "released", "note": "noted", "reply": "replied"}[action]
        if failed and action == "reply":
            done = "reply_failed"
        return RedirectResponse(f"{back}?done={done}", status_code=303)

    for action in ("take", "reply", "note", "release"):

        async def endpoint(request: Request, conversation_id: int, _action: str = action) -> Response:
            return await act(request, conversation_id, _action)

        app.add_api_route(f"/conversations/{{conversation_id}}/{action}", endpoint, methods=["POST"])


async def _conversation_values(c: Ctx, conv: Conversation) -> dict[str, Any]:
    desk = c.rt.dispatcher.handoff
    rows = await c.session.execute(
        select(TranscriptMessage)
        .where(TranscriptMessage.conversation_id == conv.id)
        .order_by(TranscriptMessage.id.desc())
        .limit(TRANSCRIPT_LIMIT)
    )
    transcript = list(reversed(list(rows.scalars())))
    authors = {m.author_person_id for m in transcript if m.author == "staff" and m.author_person_id}
    staff_names = {pid: await staff_name(c.session, pid) for pid in authors}
    handoff = await desk.open_handoff(c.session, conv.id)
    holder = await staff_name(c.session, handoff.holder_id) if handoff and handoff.holder_id else None
    community = await c.session.get(Community, conv.community_id)
    return {
        "conv": conv,
        "address": await desk.address(c.session, conv.id),
        "summary": await desk.summary(c.session, conv.id),
        "transcript": transcript,
        "staff_names": staff_names,
        "notes": await desk.notes(c.session, conv.id),
        "handoff": handoff,
        "holder": holder,
        "mine": bool(handoff and handoff.holder_id == c.user.person_id),
        "community": community,
        "reasons": _reasons(desk),
    }


# --- appeals ---------------------------------------------------------------------------------------------
async def _scope(c: Ctx, code: str | None) -> tuple[list[int], int | None]:
    """The community ids a page covers: all the user's, or the one named by ``?community=`` (404 if
    it is not theirs)."""
    if not code:
        return list(c.user.community_ids), None
    community = (await c.session.execute(select(Community).where(Community.code == code))).scalars().first()
    if community is None or not c.user.serves(community.id):
        raise HTTPException(404, "no such community")
    return [community.id], community.id


def _filters(request: Request, community_id: int | None) -> queries.AppealFilters:
    q = request.query_params
    page = q.get("page", "1")
    return queries.AppealFilters(
        status=q.get("status", "")[:20],
        building=q.get("building", "")[:16],
        category=q.get("category", "")[:64],
        party=q.get("party", "")[:32],
        q=q.get("q", "")[:100],
        community_id=community_id,
        page=int(page) if page.isdigit() else 1,
    )


async def _communities_of(c: Ctx) -> list[Community]:
    rows = await c.session.execute(
        select(Community).where(Community.id.in_(list(c.user.community_ids))).order_by(Community.code)
    )
    return list(rows.scalars())


def _appeal_routes(app: FastAPI, console: Console) -> None:
    @app.get("/appeals", response_class=HTMLResponse)
    async def appeals_page(request: Request) -> Response:
        async with console.ctx(request) as c:
            ids, community_id = await _scope(c, request.query_params.get("community"))
            filters = _filters(request, community_id)
            page = await queries.appeals(c.session, ids, filters)
            return console.render(
                c,
                request,
                "appeals.html",
                page=page,
                filters=filters,
                communities=await _communities_of(c),
                community_code=request.query_params.get("community", ""),
                statuses=[(s.value, s.label) for s in AppealStatus],
                place=queries.appeal_place,
                csv_query=request.url.query,
            )

    @app.get("/appeals.csv")
    async def appeals_csv(request: Request) -> Response:
        async with console.ctx(request) as c:
            ids, community_id = await _scope(c, request.query_params.get("community"))
            filters = _filters(request, community_id)
            text, count = await queries.appeals_csv(c.session, ids, filters, c.tz)
            for community in ids:
                c.audit(
                    "appeals.export",
                    target_type="community",
                    target_id=community,
                    community_id=community,
                    rows=count,
                    filters=filters.query_string(),
                )
            await c.commit()
        stamp = datetime.now(ZoneInfo(console.get_runtime().settings.timezone)).strftime("%Y%m%d-%H%M")
        return Response(
            text.encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="appeals-{stamp}.csv"'},
        )

    @app.get("/appeals/{public_id}", response_class=HTMLResponse)
    async def appeal_page(request: Request, public_id: str) -> Response:
        async with console.ctx(request) as c:
            appeal = await queries.appeal_in_scope(c.session, c.user.community_ids, public_id[:32])
            if appeal is None:
                raise HTTPException(404, "no such appeal")
            events = await queries.appeal_events(c.session, appeal.id)
            names = await queries.people(
                c.session, {appeal.reporter_id} | ({appeal.relayed_by_id} if appeal.relayed_by_id else set())
            )
            c.audit(
                "appeal.view",
                target_type="appeal",
                target_id=appeal.public_id,
                community_id=appeal.community_id,
            )
            await c.commit()
            return console.render(
                c,
                request,
                "appeal.html",
                appeal=appeal,
                events=events,
                reporter=names.get(appeal.reporter_id),
                leader=names.get(appeal.relayed_by_id) if appeal.relayed_by_id else None,
                community=await c.session.get(Community, appeal.community_id),
                place=queries.appeal_place(appeal),
            )


# --- dashboard, canned replies, audit --------------------------------------------------------------------
CHART_W, CHART_H, CHART_PAD = 720, 180, 24


def _chart(days: list[tuple[str, int]], top: int) -> list[dict[str, Any]]:
    """Bar geometry for the appeals-per-day SVG (drawn by the template with presentation attributes)."""
    slot = (CHART_W - 2 * CHART_PAD) / max(1, len(days))
    bars = []
    for i, (label, count) in enumerate(days):
        height = 0 if top == 0 else (CHART_H - CHART_PAD) * count / top
        bars.append(
            {
                "x": round(CHART_PAD + i * slot + slot * 0.15, 1),
                "y": round(CHART_H - CHART_PAD - height, 1),
                "w": round(slot * 0.7, 1),
                "h": round(height, 1),
                "label": label,
                "count": count,
                "show_label": i % 5 == 0 or i == len(days) - 1,
                "cx": round(CHART_PAD + i * slot + slot / 2, 1),
            }
        )
    return bars


def _other_routes(app: FastAPI, console: Console) -> None:
    async def dashboard_values(c: Ctx, request: Request) -> dict[str, Any]:
        ids, _ = await _scope(c, request.query_params.get("community"))
        board = await queries.dashboard(c.session, ids, c.tz)
        return {
            "board": board,
            "bars": _chart(board.days, board.max_day),
            "chart": {"w": CHART_W, "h": CHART_H, "pad": CHART_PAD},
            "communities": await _communities_of(c),
            "community_code": request.query_params.get("community", ""),
            "place": queries.appeal_place,
        }

    @app.get("/dashboard", response_class=HTMLResponse)
    async def dashboard_page(request: Request) -> Response:
        async with console.ctx(request) as c:
            return console.render(c, request, "dashboard.html", **await dashboard_values(c, request))

    @app.get("/dashboard/live", response_class=HTMLResponse)
    async def dashboard_live(request: Request) -> Response:
        async with console.ctx(request) as c:
            return console.render(c, request, "_dashboard.html", **await dashboard_values(c, request))

    @app.get("/canned", response_class=HTMLResponse)
    async def canned_page(request: Request) -> Response:
        async with console.ctx(request) as c:
            rows = await c.session.execute(
                select(CannedReply, Community)
                .join(Community, Community.id == CannedReply.community_id)
                .where(CannedReply.community_id.in_(list(c.user.community_ids)))
                .order_by(Community.code, CannedReply.id)
            )
            return console.render(
                c, request, "canned.html", replies=rows.all(), communities=await _communities_of(c)
            )

    @app.post("/canned")
    async def canned_add(request: Request) -> Response:
        base = request.scope.get("root_path", "")
        async with console.ctx(request) as c:
            form = await console.form(c)
            ids, community_id = await _scope(c, str(form.get("community") or ""))
            title, text = (
                str(form.get("title") or "").strip()[:100],
                str(form.get("text") or "").strip()[:2000],
            )
            if community_id is None and len(ids) == 1:
                community_id = ids[0]
            if not title or not text or community_id is None:
                return RedirectResponse(f"{base}/canned?error=canned_invalid", status_code=303)
            reply = CannedReply(
                community_id=community_id, title=title, text=text, created_by_id=c.user.person_id
            )
            c.session.add(reply)
            await c.session.flush()
            c.audit(
                "canned.create",
                target_type="canned_reply",
                target_id=reply.id,
                community_id=community_id,
                title=title,
            )
            await c.commit()
        return RedirectResponse(f"{base}/canned?done=canned_added", status_code=303)

    @app.post("/canned/{canned_id}/delete")
    async def canned_delete(request: Request, canned_id: int) -> Response:
        base = request.scope.get("root_path", "")
        async with console.ctx(request) as c:
            await console.form(c)
            reply = await c.session.get(CannedReply, canned_id)
            if reply is None or not c.user.serves(reply.community_id):
                raise HTTPException(404, "no such canned reply")
            c.audit(
                "canned.delete",
                target_type="canned_reply",
                target_id=reply.id,
                community_id=reply.community_id,
                title=reply.title,
            )
            await c.session.delete(reply)
            await c.commit()
        return RedirectResponse(f"{base}/canned?done=canned_deleted", status_code=303)

    @app.get("/audit", response_class=HTMLResponse)
    async def audit_page(request: Request) -> Response:
        async with console.ctx(request) as c:
            entries = await queries.audit_entries(c.session, c.user.community_ids)
            return console.render(c, request, "audit.html", entries=entries)


__all__ = ["create_console"]
