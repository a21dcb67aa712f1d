"""Console routes: the dashboard (its chart drawn from the figures) and the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from bot.staff import queries
from bot.staff.context import Console, Ctx, communities_of, community_scope

CHART_W, CHART_H, CHART_PAD = 720, 180, 8


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
            }
        )
    return bars


def add_routes(app: FastAPI, console: Console) -> None:
    """``/dashboard``, its ``/live`` fragment, and ``/audit``."""

    async def dashboard_values(c: Ctx, request: Request) -> dict[str, Any]:
        ids, _ = await community_scope(c, request.query_params.get("community"))
        board = await queries.dashboard(c.session, ids, c.tz)
        return {
            "board": board,
            "bars": _chart(board.days, board.max_day),
            "chart": {"w": CHART_W, "h": CHART_H, "pad": CHART_PAD},
            "communities": await communities_of(c),
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

    @app.get("/audit", response_class=HTMLResponse)
    async def audit_page(request: Request) -> Response:
        async with console.ctx(request) as c:
            entries = await queries.audit_entries(c.session, c.user.community_ids)
            return console.render(c, request, "audit.html", entries=entries)
