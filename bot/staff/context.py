"""What every console page shares: one request's context (staff member, session, runtime), the
templates and their notices, and the communities a page may cover."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from bot.db.models import Community
from bot.db.repository.console import ConsoleRepository
from bot.db.repository.roles import RoleRepository
from bot.db.session import commit
from bot.dialog.slots import mask_personal
from bot.roles import audit
from bot.runtime import Runtime
from bot.staff import queries
from bot.staff.auth import SESSION_COOKIE, ConsoleAuth, StaffUser

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

NOTICES = {
    "taken": "已接入：机器人在这个对话里不再回答，居民已收到提示。",
    "replied": "已发送给居民。",
    "reply_failed": "消息没能送达居民（平台拒收或未连接），已记录在对话里。",
    "noted": "已添加内部备注（居民看不到）。",
    "released": "已结束人工服务，机器人继续回答，居民已收到提示。",
    "filed": "已登记为诉求 {appeal}，居民已收到诉求编号。",
    "file_already": "这个对话已经登记过诉求 {appeal}，没有重复登记。",
    "canned_added": "已添加快捷回复。",
    "canned_deleted": "已删除快捷回复。",
    "handed_back": "已退回社区重新派单。",
}

ERRORS = {
    "taken_by_other": "这个对话已由其他同事接入。",
    "not_held": "您还没有接入这个对话，请先接入。",
    "not_open": "这个对话当前没有进行中的人工服务。",
    "reply_usage": "回复内容不能为空。",
    "note_usage": "备注内容不能为空。",
    "file_nothing": "对话里还没有可登记的内容，请填写诉求描述。",
    "canned_invalid": "请填写标题和内容。",
}


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), enable_async=False
    )
    env.filters["category"] = queries.category_label
    env.filters["party"] = queries.party_label
    env.filters["status"] = queries.status_label
    env.filters["platform"] = queries.platform_label
    env.filters["chat_type"] = queries.chat_type_label
    env.filters["event_kind"] = queries.event_kind_label
    env.filters["masked"] = mask_personal
    env.filters["action"] = queries.action_label
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}
    return env


class StaffOnly(Exception):
    """A page for community staff, asked for by a handler's person: their appeals instead (GET), else 403."""


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

    async def record_view(self, target_type: str, target_id: str | int, community_id: int | None) -> None:
        """Audit that the staff member opened one appeal's or conversation's page (``<type>.view``), and
        commit it with the request's transaction."""
        self.audit(
            f"{target_type}.view", target_type=target_type, target_id=target_id, community_id=community_id
        )
        await self.commit()


class Console:
    """What all routes share: the runtime, its console auth (made again when the runtime changes), the
    templates."""

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
    async def ctx(self, request: Request, *, staff_only: bool = True) -> AsyncIterator[Ctx]:
        """The request's context. Pages are for community staff unless ``staff_only`` is False (the
        appeal pages, which a handler's person sees for their handlers' appeals)."""
        rt = self.get_runtime()
        async with rt.db.unit_of_work() as uow:
            user = await self.auth().user(uow.session, request.cookies.get(SESSION_COOKIE))
            if staff_only and not user.is_staff:
                raise StaffOnly
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
            "notice": _notice(request),
            "error": ERRORS.get(request.query_params.get("error", "")),
            **values,
        }
        return self.templates.TemplateResponse(request, name, context, status_code=status_code)


def _notice(request: Request) -> str | None:
    """The notice named by ``?done=``; one about an appeal names it (``?appeal=``, an id's characters)."""
    notice = NOTICES.get(request.query_params.get("done", ""))
    if notice is None or "{appeal}" not in notice:
        return notice
    appeal = request.query_params.get("appeal", "")
    return notice.format(appeal=appeal if _APPEAL_ID.fullmatch(appeal) else "")


_APPEAL_ID = re.compile(r"[A-Za-z0-9-]{1,40}")


# --- which communities a page covers ---------------------------------------------------------------------
async def community_scope(c: Ctx, code: str | None) -> tuple[list[int], int | None]:
    """The community ids a page covers: all the user's, or the one named by ``?community=`` (404 if
    it is not theirs)."""
    if not code:
        return list(c.user.community_ids), None
    community = await RoleRepository(c.session).community_by_code(code)
    if community is None or not c.user.serves(community.id):
        raise HTTPException(404, "no such community")
    return [community.id], community.id


async def communities_of(c: Ctx) -> list[Community]:
    """The communities the staff member serves, by code (for the pages' community pickers)."""
    return await ConsoleRepository(c.session).communities(list(c.user.community_ids))
