"""``/webhooks/wechat/webhook``: the Official Account's callback URL, and :func:`setup`.

Kept apart from :mod:`integrations.wechat.channel` so that a deployment without WeChat never imports
wechatpy (and its crypto stack): the route is always mounted and answers 404 until ``setup`` has found
``HUIYIN_WECHAT_TOKEN`` and created the channel.
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
    from integrations.wechat.channel import WeChatChannel

log = structlog.get_logger(__name__)

router = APIRouter()
URL = "/webhooks/wechat/webhook"


def _channel(request: Request) -> WeChatChannel:
    channel: WeChatChannel | None = getattr(request.app.state, "wechat", None)
    if channel is None:
        raise HTTPException(404, "WeChat is not configured (HUIYIN_WECHAT_TOKEN)")
    return channel


@router.get(URL, include_in_schema=False)
async def wechat_verify(request: Request) -> PlainTextResponse:
    """URL verification when the server address is saved in the OA admin console."""
    channel = _channel(request)
    channel.authenticate(request.query_params, callback=False)
    return PlainTextResponse(request.query_params.get("echostr", ""))


@router.post(URL, include_in_schema=False)
async def wechat_callback(request: Request) -> Response:
    started = time.monotonic()
    channel = _channel(request)
    channel.authenticate(request.query_params, callback=True)
    body = await read_limited_body(request)
    with outages_answered():
        return await channel.callback(request.query_params, body, started)


def configured(settings: Settings) -> bool:
    """WeChat is on when ``HUIYIN_WECHAT_TOKEN`` is set."""
    return settings.wechat_token is not None


async def build(core: Core, *, http: httpx.AsyncClient | None = None) -> WeChatChannel:
    """The Official Account channel: the webhook answers, and the customer-service API becomes the WeChat
    sender. ``http`` replaces the channel's own HTTP client (tests)."""
    from integrations.wechat.channel import WeChatChannel

    channel = WeChatChannel(core, http=http)
    channel.routers = (router,)
    return channel


WECHAT = ChannelType("wechat", routes=(router,), configured=configured, build=build)


async def setup(app: FastAPI, runtime: Runtime, *, http: httpx.AsyncClient | None = None) -> None:
    """Switch the Official Account on in ``app`` when it is configured (what the app's lifespan does
    through :data:`WECHAT`; for tests that run no lifespan)."""
    core = Core.of(runtime)
    if configured(core.settings):
        await switch_on(app, await build(core, http=http), core)


__all__ = ["URL", "WECHAT", "router", "setup"]
