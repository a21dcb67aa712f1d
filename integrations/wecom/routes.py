"""``/webhooks/wecom/webhook``: WeCom's callback URL (self-built app and group robot), and :func:`setup`.

Kept apart from :mod:`integrations.wecom.channel` so that a deployment without WeCom never imports
wechatpy: the route is always mounted and answers 404 until ``setup`` has found a ``HUIYIN_WECOM_*``
setting and created the channel.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import PlainTextResponse

from integrations.channel import ChannelType, switch_on
from integrations.core import Core
from integrations.payload import outages_answered
from integrations.rest.channel import read_limited_body

if TYPE_CHECKING:
    import httpx

    from bot.runtime import Runtime
    from bot.settings import Settings
    from integrations.wecom.channel import WeComChannel

log = structlog.get_logger(__name__)

router = APIRouter()
URL = "/webhooks/wecom/webhook"


def _channel(request: Request) -> WeComChannel:
    channel: WeComChannel | None = getattr(request.app.state, "wecom", None)
    if channel is None:
        raise HTTPException(404, "WeCom is not configured (HUIYIN_WECOM_*)")
    return channel


@router.get(URL, include_in_schema=False)
async def wecom_verify(request: Request) -> PlainTextResponse:
    """URL verification when the callback URL is saved in the WeCom admin console."""
    channel = _channel(request)
    channel.refuse_stale(request.query_params)
    return PlainTextResponse(channel.verify_url(request.query_params))


@router.post(URL, include_in_schema=False)
async def wecom_callback(request: Request) -> Response:
    """A callback of the app or the robot. Before the body is read: 403 without a ``msg_signature`` or
    with a stale timestamp. The signature covers the ciphertext, so it is checked once the envelope is
    parsed (bounded: :mod:`integrations.wechat.xmlsafe`, :func:`integrations.payload.loads_bounded`)."""
    started = time.monotonic()
    channel = _channel(request)
    if not request.query_params.get("msg_signature"):
        raise HTTPException(403, "msg_signature is missing")
    channel.refuse_stale(request.query_params)
    body = await read_limited_body(request)
    with outages_answered():
        return await channel.callback(request.query_params, body, started)


def configured(settings: Settings) -> bool:
    """WeCom is on when any of its callbacks or its sending is configured (HUIYIN_WECOM_*)."""
    s = settings
    return bool(s.wecom_token or s.wecom_robot_token or s.wecom_secret or s.wecom_staff_webhook)


async def build(core: Core, *, http: httpx.AsyncClient | None = None) -> WeComChannel:
    """The WeCom channel (app and/or robot callbacks, app sending, staff-group notices). ``http``
    replaces the channel's own HTTP client (tests)."""
    from integrations.wecom.channel import WeComChannel

    channel = WeComChannel(core, http=http)
    channel.routers = (router,)
    return channel


WECOM = ChannelType("wecom", routes=(router,), configured=configured, build=build)


async def setup(app: FastAPI, runtime: Runtime, *, http: httpx.AsyncClient | None = None) -> None:
    """Switch WeCom on in ``app`` when it is configured (what the app's lifespan does through
    :data:`WECOM`; for tests that run no lifespan)."""
    core = Core.of(runtime)
    if configured(core.settings):
        await switch_on(app, await build(core, http=http), core)


__all__ = ["URL", "WECOM", "router", "setup"]
