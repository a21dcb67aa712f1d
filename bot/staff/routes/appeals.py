"""Console routes: the appeal list with filters, its CSV export, one appeal, and the case desk's
actions on it (受理, 派单, 进展, 办结, 退回) through :class:`bot.cases.desk.CaseDesk`.

Community staff see and act on every appeal of their communities; a handler's person only on the
appeals assigned to their handlers (and cannot assign). Anything else answers 404, like an appeal that
does not exist, for the page and for every action.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.cases.access import case_actor
from bot.cases.desk import CaseDesk, CaseError
from bot.db.models import Appeal, AppealStatus, Community
from bot.dialog.slots import mask_personal
from bot.staff import queries
from bot.staff.context import Console, Ctx, communities_of, community_scope
from kb.model import HandlerKind

CASE_ACTIONS = ("accept", "assign", "progress", "done", "return")
# The core's answer to staff in chat, reused as the console's notice after each action.
CASE_NOTICES = {
    "accept": "accepted",
    "assign": "assigned",
    "to_city": "to_city",
    "progress": "progressed",
    "done": "done",
    "rejected": "rejected",
}
# The core's refusals (CaseError keys) the page reads back as its error notice.
CASE_REFUSALS = frozenset(
    {
        "unknown_id",
        "staff_only",
        "already_past",
        "not_open",
        "already_assigned",
        "already_city",
        "no_city",
        "unknown_handler",
        "assign_usage",
        "progress_usage",
        "done_usage",
        "return_usage",
    }
)


def _filters(request: Request, community_id: int | None) -> queries.AppealFilters:
    q = request.query_params
    page = q.get("page", "1")
    return queries.AppealFilters(
        status=q.get("status", "")[:20],
        building=q.get("building", "")[:16],
        category=q.get("category", "")[:64],
        party=q.get("party", "")[:32],
        q=q.get("q", "")[:100],
        handler=q.get("handler", "")[:12],
        community_id=community_id,
        page=int(page) if page.isdigit() else 1,
    )


def add_routes(app: FastAPI, console: Console) -> None:
    """``/appeals``, ``/appeals.csv`` and ``/appeals/{public_id}``."""

    @app.get("/appeals", response_class=HTMLResponse)
    async def appeals_page(request: Request) -> Response:
        async with console.ctx(request, staff_only=False) as c:
            ids, community_id = await community_scope(c, request.query_params.get("community"))
            filters = _filters(request, community_id)
            page = await queries.appeals(c.session, ids, filters, c.user.handler_ids)
            return console.render(
                c,
                request,
                "appeals.html",
                page=page,
                filters=filters,
                communities=await communities_of(c),
                community_code=request.query_params.get("community", ""),
                statuses=[(s.value, s.label) for s in AppealStatus],
                place=queries.appeal_place,
                csv_query=request.url.query,
            )

    @app.get("/appeals.csv")
    async def appeals_csv(request: Request) -> Response:
        async with console.ctx(request, staff_only=False) as c:
            ids, community_id = await community_scope(c, request.query_params.get("community"))
            filters = _filters(request, community_id)
            text, count = await queries.appeals_csv(c.session, ids, filters, c.tz, c.user.handler_ids)
            if not ids:  # a handler's person: the export is audited against their handlers' communities
                ids = await queries.handler_communities(c.session, c.user.handler_ids)
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
        async with console.ctx(request, staff_only=False) as c:
            appeal = await _appeal(c, public_id)
            events = await queries.appeal_events(c.session, appeal.id)
            names = await queries.people(
                c.session, {appeal.reporter_id} | ({appeal.relayed_by_id} if appeal.relayed_by_id else set())
            )
            actors = await queries.actor_names(c.session, [e.actor for e in events])
            history = [
                (e, queries.actor_label(e.actor, actors), queries.event_detail(e.payload, c.tz))
                for e in events
            ]
            values = await _case_values(c, appeal)
            hidden = queries.contact_hidden(appeal, c.user.community_ids, values["handler"])
            reporter = names.get(appeal.reporter_id)
            leader = names.get(appeal.relayed_by_id) if appeal.relayed_by_id else None
            if appeal.contact_phone and not hidden:
                # Who saw a resident's phone number, and when, is kept with the staff's other actions.
                c.audit(
                    "appeal.phone_view",
                    target_type="appeal",
                    target_id=appeal.public_id,
                    community_id=appeal.community_id,
                )
            await c.record_view("appeal", appeal.public_id, appeal.community_id)
            return console.render(
                c,
                request,
                "appeal.html",
                appeal=appeal,
                history=history,
                reporter=None if hidden else reporter,
                leader=None if hidden else leader,
                community=await c.session.get(Community, appeal.community_id),
                place=mask_personal(queries.appeal_place(appeal)) if hidden else queries.appeal_place(appeal),
                description=mask_personal(appeal.description) if hidden else appeal.description,
                phone=None if hidden else appeal.contact_phone,
                contact_hidden=hidden,
                **values,
            )

    async def act(request: Request, public_id: str, action: str) -> Response:
        base = request.scope.get("root_path", "")
        async with console.ctx(request, staff_only=False) as c:
            appeal = await _appeal(c, public_id)  # 404 before anything else, like a missing appeal
            back = f"{base}/appeals/{appeal.public_id}"
            form = await console.form(c)
            desk: CaseDesk = c.rt.dispatcher.services.cases
            actor = await case_actor(c.session, c.user.person_id, c.user.display_name, via="console")
            text = str(form.get("text") or "")
            wanted = str(form.get("handler") or "")[:40]
            try:
                if action == "accept":
                    step = await desk.accept(c.session, actor, appeal.public_id, text)
                elif action == "assign":
                    step = await desk.assign(c.session, actor, appeal.public_id, wanted, text)
                elif action == "progress":
                    step = await desk.progress(c.session, actor, appeal.public_id, text)
                elif action == "done":
                    step = await desk.done(c.session, actor, appeal.public_id, text)
                else:
                    step = await desk.return_(c.session, actor, appeal.public_id, text)
            except CaseError as exc:  # nothing was written; leaving the block rolls back
                query = {"error": f"case.{exc.key}"}
                if exc.key == "unknown_handler":
                    query["wanted"] = wanted[:30]
                return RedirectResponse(f"{back}?{urlencode(query)}", status_code=303)
            staff = actor.is_staff_for(step.appeal)
            to_city = step.handler is not None and step.handler.kind == HandlerKind.CITY.value
            await c.commit()
        if action == "return" and not staff:
            # Handed back to the community: no longer theirs to see.
            return RedirectResponse(f"{base}/appeals?done=handed_back", status_code=303)
        key = action
        if action == "assign" and to_city:
            key = "to_city"
        elif action == "return":
            key = "rejected"
        query = {"done": f"case.{CASE_NOTICES[key]}"}
        if key == "assign":
            query["told"] = "1" if step.told_chats else "0"
        return RedirectResponse(f"{back}?{urlencode(query)}", status_code=303)

    for action in CASE_ACTIONS:

        async def endpoint(request: Request, public_id: str, _action: str = action) -> Response:
            return await act(request, public_id, _action)

        app.add_api_route(f"/appeals/{{public_id}}/{action}", endpoint, methods=["POST"])


async def _appeal(c: Ctx, public_id: str) -> Appeal:
    appeal = await queries.appeal_in_scope(
        c.session, c.user.community_ids, public_id[:32], c.user.handler_ids
    )
    if appeal is None:
        raise HTTPException(404, "no such appeal")
    return appeal


async def _case_values(c: Ctx, appeal: Appeal) -> dict[str, Any]:
    """The case desk on the appeal's page: its handler, deadlines, the actions the viewer may take (with
    the handlers to assign to), and the notice or error of the action just taken."""
    desk: CaseDesk = c.rt.dispatcher.services.cases
    staff = c.user.serves(appeal.community_id)
    handles = appeal.handler_id is not None and appeal.handler_id in c.user.handler_ids
    actions = queries.case_actions(appeal, staff=staff, handles=handles)
    choices = await desk.choices(c.session, appeal) if actions.assign else []
    handler = next((ch.handler for ch in choices if ch.handler.id == appeal.handler_id), None)
    if handler is None and appeal.handler_id is not None:
        handler = await queries.handler(c.session, appeal.handler_id)
    first, resolution = queries.deadlines(appeal)
    q = c.request.query_params
    handler_name = handler.name if handler is not None else ""
    values = {
        "public_id": appeal.public_id,
        "status": AppealStatus(appeal.status).label,
        "handler": handler_name,
        "wanted": q.get("wanted", "")[:30],
        "names": "、".join(ch.handler.name for ch in choices) or "（未配置）",
        "told": desk.words.get("case.assigned_told" if q.get("told") == "1" else "case.assigned_untold"),
    }
    out: dict[str, Any] = {
        "handler": handler,
        "first_deadline": first,
        "resolution_deadline": resolution,
        "actions": actions,
        "choices": choices,
    }
    error, done = q.get("error", ""), q.get("done", "")
    if error.startswith("case.") and error[5:] in CASE_REFUSALS:
        out["error"] = desk.words.get(error, **values)
    if done.startswith("case.") and done[5:] in CASE_NOTICES.values():
        out["notice"] = desk.words.get(done, **values)
    return out
