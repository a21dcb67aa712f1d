"""Console routes: the appeal list with filters, its CSV export, one appeal."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from bot.db.models import AppealStatus, Community
from bot.staff import queries
from bot.staff.context import Console, communities_of, community_scope


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


def add_routes(app: FastAPI, console: Console) -> None:
    """``/appeals``, ``/appeals.csv`` and ``/appeals/{public_id}``."""

    @app.get("/appeals", response_class=HTMLResponse)
    async def appeals_page(request: Request) -> Response:
        async with console.ctx(request) as c:
            ids, community_id = await community_scope(c, request.query_params.get("community"))
            filters = _filters(request, community_id)
            page = await queries.appeals(c.session, ids, filters)
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
        async with console.ctx(request) as c:
            ids, community_id = await community_scope(c, request.query_params.get("community"))
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
            actors = await queries.actor_names(c.session, [e.actor for e in events])
            history = [
                (e, queries.actor_label(e.actor, actors), queries.event_detail(e.payload, c.tz))
                for e in events
            ]
            await c.record_view("appeal", appeal.public_id, appeal.community_id)
            return console.render(
                c,
                request,
                "appeal.html",
                appeal=appeal,
                history=history,
                reporter=names.get(appeal.reporter_id),
                leader=names.get(appeal.relayed_by_id) if appeal.relayed_by_id else None,
                community=await c.session.get(Community, appeal.community_id),
                place=queries.appeal_place(appeal),
            )
