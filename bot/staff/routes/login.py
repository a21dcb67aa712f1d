"""Console routes: the login form, logging in and out."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.db.models import utcnow
from bot.roles import account_by_username, audit
from bot.runtime import Runtime
from bot.settings import Settings
from bot.staff.auth import LOGIN_COOKIE, SESSION_COOKIE
from bot.staff.context import Console
from bot.staff.proxies import client_address

# Too many attempts, from this address or for this name: no word on which, nor on whether the name exists.
LOGIN_REFUSED = "登录尝试次数过多，请稍后再试。"


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
def add_routes(app: FastAPI, console: Console) -> None:
    """``/login`` (GET, POST) and ``/logout``."""

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
        async with console.ctx(request, staff_only=False) as c:
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
