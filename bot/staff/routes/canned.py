"""Console routes: the community's canned replies, listed, added and deleted."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.db.models import CannedReply
from bot.db.repository.console import ConsoleRepository
from bot.staff.context import Console, communities_of, community_scope


def add_routes(app: FastAPI, console: Console) -> None:
    """``/canned``: the list, adding one (POST) and deleting one."""

    @app.get("/canned", response_class=HTMLResponse)
    async def canned_page(request: Request) -> Response:
        async with console.ctx(request) as c:
            replies = await ConsoleRepository(c.session).canned_replies(list(c.user.community_ids))
            return console.render(
                c, request, "canned.html", replies=replies, communities=await communities_of(c)
            )

    @app.post("/canned")
    async def canned_add(request: Request) -> Response:
        base = request.scope.get("root_path", "")
        async with console.ctx(request) as c:
            form = await console.form(c)
            ids, community_id = await community_scope(c, str(form.get("community") or ""))
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
