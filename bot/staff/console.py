"""The staff console: a small server-rendered web app mounted at ``/staff`` (see docs/staff.md).

Pages are Jinja2 templates; live parts (the queue, a transcript, the dashboard) refresh themselves with
htmx polling of ``…/live`` fragments; actions are plain HTML forms (POST, then redirect back), so every
page also works without JavaScript. Nothing here is reachable without a session, every POST checks the
session's CSRF token, and every read is limited to the communities the staff member serves: anything
else answers 404, exactly like something that does not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from bot.runtime import Runtime
from bot.staff.auth import CsrfFailed, NotAuthenticated
from bot.staff.context import STATIC, Console, Ctx, StaffOnly
from bot.staff.routes import appeals, canned, conversations, dashboard, login
from bot.staff.routes.login import LOGIN_REFUSED

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

# What a page that cannot be shown says, by status: in staff's words, never the framework's JSON.
ERROR_PAGES = {
    404: "没有找到这个页面：它不存在，或者不属于您负责的社区。",
    405: "这个地址不能直接打开，请从页面上的按钮操作。",
}
ERROR_PAGE_OTHER = "出了点问题，请返回上一页重试。"


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
        login_url = f"{base}/login"
        if request.method == "GET" and "hx-request" not in request.headers:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{login_url}?next={quote(target)}", status_code=303)
        return Response("login required", status_code=401, headers={"HX-Redirect": login_url})

    @app.exception_handler(StaffOnly)
    async def staff_only(request: Request, exc: StaffOnly) -> Response:
        # A handler's person: the appeals assigned to their handlers are all there is for them.
        if request.method == "GET" and "hx-request" not in request.headers:
            return RedirectResponse(f"{request.scope.get('root_path', '')}/appeals", status_code=303)
        return Response("仅限社区工作人员使用。", status_code=403, media_type="text/plain; charset=utf-8")

    @app.exception_handler(CsrfFailed)
    async def csrf_failed(request: Request, exc: CsrfFailed) -> Response:
        # Most often a form left open past its token's life: say so, in the staff's words.
        return Response("页面已过期，请刷新后重试。", status_code=403, media_type="text/plain; charset=utf-8")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = ERROR_PAGES.get(exc.status_code, ERROR_PAGE_OTHER)
        return console.render(None, request, "error.html", status_code=exc.status_code, message=message)

    @app.exception_handler(RequestValidationError)
    async def malformed_address(request: Request, exc: RequestValidationError) -> Response:
        # A path or form value of the wrong kind (/conversations/abc): as if the page did not exist.
        return console.render(None, request, "error.html", status_code=404, message=ERROR_PAGES[404])

    login.add_routes(app, console)
    conversations.add_queue_routes(app, console)
    conversations.add_conversation_routes(app, console)
    appeals.add_routes(app, console)
    dashboard.add_routes(app, console)
    canned.add_routes(app, console)
    return app


__all__ = ["LOGIN_REFUSED", "Console", "Ctx", "create_console"]
