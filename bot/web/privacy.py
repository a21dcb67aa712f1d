"""The privacy page the notice links to: what is kept, why, who sees it, for how long, and how a resident
exercises their rights. Served without login, in the product's language."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from bot.privacy.rights import PRIVACY_PATH

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)

router = APIRouter()


@router.get(PRIVACY_PATH, response_class=HTMLResponse, include_in_schema=False)
async def privacy_page(request: Request) -> HTMLResponse:
    runtime = request.app.state.runtime
    settings = runtime.settings
    offices = [
        {
            "community": p.name,
            "name": p.community.name,
            "phone": p.community.phone,
            "location": p.community.location,
        }
        for p in runtime.kb.communities()
    ]
    html = _TEMPLATES.get_template("privacy.html").render(
        offices=offices,
        bot_name=settings.bot_name,
        retention_days=settings.retention_days,
        example_id=f"{settings.appeal_id_prefix}-20260101-0001",
    )
    return HTMLResponse(html)
