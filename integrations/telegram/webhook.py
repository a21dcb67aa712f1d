"""``POST /webhooks/telegram/webhook``: Telegram's webhook, mounted in huiyin's own HTTP app.

The secret token given to ``setWebhook`` comes back in ``X-Telegram-Bot-Api-Secret-Token``; a request
without the right one is refused with 403 before its body is read. The body is then parsed bounded (size,
nesting depth; lone surrogates become U+FFFD: :func:`integrations.payload.loads_bounded`), 400 otherwise.
The update is handled before the response is sent, so a crash mid-way leaves the update unanswered and
Telegram delivers it again (the core's dedup makes the second delivery harmless); an update the core could
not store because a service is out is answered 503, which Telegram also delivers again.
"""

from __future__ import annotations

import hmac
import re
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, HTTPException, Request

from integrations.channel import ChannelType, switch_on
from integrations.core import Core
from integrations.payload import BadJSON, loads_bounded, outages_answered
from integrations.rest.channel import read_limited_body

if TYPE_CHECKING:  # python-telegram-bot is imported only when Telegram is configured
    from telegram.request import BaseRequest

    from bot.runtime import Runtime
    from bot.settings import Settings
    from integrations.telegram.connector import TelegramConnector

URL = "/webhooks/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram's rule for secret_token: 1-256 characters, only A-Z, a-z, 0-9, _ and -.
SECRET_RULE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")

router = APIRouter()


def _connector(request: Request) -> TelegramConnector:
    connector: TelegramConnector | None = getattr(request.app.state, "telegram", None)
    if connector is None or connector.secret is None:
        raise HTTPException(404, "the Telegram webhook is off (HUIYIN_TELEGRAM_MODE=webhook and a secret)")
    return connector


@router.post(URL, include_in_schema=False)
async def telegram_webhook(request: Request) -> dict[str, bool]:
    connector = _connector(request)
    given = request.headers.get(SECRET_HEADER, "")
    assert connector.secret is not None
    if not hmac.compare_digest(given.encode(), connector.secret.encode()):
        raise HTTPException(403, "wrong or missing secret token")
    body = await read_limited_body(request)
    try:
        data = loads_bounded(body)
    except BadJSON as exc:
        raise HTTPException(400, str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        raise HTTPException(400, "not a Telegram Update: update_id is missing")
    from telegram import Update

    try:
        update = Update.de_json(data, connector.bot)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise HTTPException(400, f"not a Telegram Update: {exc.__class__.__name__}") from None
    with outages_answered():
        await connector.process(update)
    return {"ok": True}


def configured(settings: Settings) -> bool:
    """Telegram is on when ``HUIYIN_TELEGRAM_TOKEN`` is set."""
    return settings.telegram_token is not None


async def build(
    core: Core,
    *,
    request: BaseRequest | None = None,
    get_updates_request: BaseRequest | None = None,
    poll_interval: float = 0.0,
) -> TelegramConnector:
    """The Telegram channel: polling in polling mode; in webhook mode the webhook above answers (and,
    with ``HUIYIN_TELEGRAM_WEBHOOK_URL``, the webhook is registered with Telegram when it starts).
    ``request`` and ``get_updates_request`` replace PTB's HTTP layer (tests). Refuses a webhook mode
    without a usable secret."""
    s = core.settings
    secret = s.telegram_secret.get_secret_value() if s.telegram_secret else None
    if s.telegram_mode == "webhook" and secret is None:
        raise ValueError("HUIYIN_TELEGRAM_MODE=webhook needs HUIYIN_TELEGRAM_SECRET")
    if secret is not None and not SECRET_RULE.match(secret):
        raise ValueError("HUIYIN_TELEGRAM_SECRET may only hold 1-256 of A-Z a-z 0-9 _ -")
    from integrations.telegram.connector import TelegramConnector

    channel = TelegramConnector(
        core, request=request, get_updates_request=get_updates_request, poll_interval=poll_interval
    )
    channel.routers = (router,)
    return channel


TELEGRAM = ChannelType("telegram", routes=(router,), configured=configured, build=build)


async def setup(
    app: FastAPI,
    runtime: Runtime,
    *,
    request: BaseRequest | None = None,
    get_updates_request: BaseRequest | None = None,
    poll_interval: float = 0.0,
) -> TelegramConnector | None:
    """Switch Telegram on in ``app`` when it is configured (what the app's lifespan does through
    :data:`TELEGRAM`; for tests that run no lifespan or replace PTB's HTTP layer)."""
    core = Core.of(runtime)
    if not configured(core.settings):
        return None
    connector = await build(
        core, request=request, get_updates_request=get_updates_request, poll_interval=poll_interval
    )
    await switch_on(app, connector, core)
    return connector
