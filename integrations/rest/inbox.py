"""A mailbox per recipient for the REST channel and the web chat, which have no push.

Messages the bot sends on its own — a status change of an appeal, a rating request — cannot ride on the
response to a request, so for ``Platform.REST`` and ``Platform.WEB`` the registered :class:`InboxSender`
puts them in a Redis list per recipient (``Keys.channels.inbox``, newest
``INBOX_KEEP`` kept for ``INBOX_TTL_S``). A client collects them with::

    GET /webhooks/rest/inbox?sender=wang&sender=li[&platform=rest]

which answers (and empties) those mailboxes as a JSON list shaped like the webhook's answers
(``recipient_id``, ``text``, ``buttons``, ``target``, ``chat_id``). The web chat page polls it every
few seconds for each resident it shows.

Like Rasa's REST channel, this trusts ``sender``: whoever knows a sender id can read that mailbox. It is
for trusted clients (the web chat demo, a gateway that authenticates its users), not the open internet.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import APIRouter, HTTPException, Query, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.message import Platform, Reply
from bot.outbound import DeliveryError, Outbound
from bot.state import Keys
from integrations.rest.channel import RestReply, to_rest

INBOX_KEEP = 200
INBOX_TTL_S = 7 * 24 * 3600
MAX_RECIPIENTS = 20
INBOX_PATH = "/webhooks/rest/inbox"
HINT_HEADER = "x-huiyin-inbox"
MAILBOX_PLATFORMS = (Platform.REST, Platform.WEB)


def _key(platform: Platform, recipient: str) -> str:
    return Keys.channels.inbox(platform, recipient)


class InboxSender:
    """The :class:`~bot.outbound.Sender` of a platform without push: appends to the recipient's mailbox."""

    def __init__(self, redis: aioredis.Redis, platform: Platform) -> None:
        self.redis = redis
        self.platform = platform

    async def send(self, reply: Reply) -> None:
        key = _key(self.platform, reply.recipient_id)
        item = json.dumps(to_rest(reply).model_dump(), ensure_ascii=False)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.rpush(key, item)
                pipe.ltrim(key, -INBOX_KEEP, -1)
                pipe.expire(key, INBOX_TTL_S)
                await pipe.execute()
        except Exception as exc:  # Redis unreachable: the forwarder retries the notification later
            raise DeliveryError(f"mailbox {key}: {exc}") from exc


async def take(redis: aioredis.Redis, platform: Platform, recipients: list[str]) -> list[dict[str, Any]]:
    """Everything waiting for ``recipients``, oldest first per recipient, and empty their mailboxes."""
    # One LPOP of the whole mailbox (it never holds more than INBOX_KEEP) per recipient: atomic per key,
    # so no MULTI is needed, and the mailboxes may live on different nodes of a Redis Cluster.
    async with redis.pipeline(transaction=False) as pipe:
        for recipient in recipients:
            pipe.lpop(_key(platform, recipient), INBOX_KEEP)
        results = await pipe.execute()
    found: list[dict[str, Any]] = []
    for items in results:
        found.extend(json.loads(item) for item in items or ())
    return found


def register_inbox(outbound: Outbound, redis: aioredis.Redis) -> None:
    """Make the mailboxes the senders of the REST channel and the web chat."""
    for platform in MAILBOX_PLATFORMS:
        outbound.register(InboxSender(redis, platform))


router = APIRouter()


@router.get(INBOX_PATH, response_model=list[RestReply])
async def inbox(
    request: Request,
    sender: Annotated[list[str], Query(description="Recipient ids whose mailboxes to collect (repeatable).")],
    platform: Annotated[str, Query(description="rest (default) or web.")] = "rest",
) -> list[dict[str, Any]]:
    """Collect the messages the bot sent on its own to these recipients (see the module docstring)."""
    try:
        which = Platform(platform)
    except ValueError:
        raise HTTPException(
            422, f"platform: one of {', '.join(p.value for p in MAILBOX_PLATFORMS)}"
        ) from None
    if which not in MAILBOX_PLATFORMS:
        raise HTTPException(422, f"platform: one of {', '.join(p.value for p in MAILBOX_PLATFORMS)}")
    recipients = [s for s in dict.fromkeys(sender) if s]
    if not recipients or len(recipients) > MAX_RECIPIENTS or any(len(s) > 128 for s in recipients):
        raise HTTPException(422, f"sender: 1 to {MAX_RECIPIENTS} ids of at most 128 characters")
    return await take(request.app.state.runtime.store.redis, which, recipients)


class InboxHint:
    """Adds ``X-Huiyin-Inbox: webhooks/rest/inbox`` to the REST webhook's answers, so a page knows the
    server has mailboxes before it starts polling them (a page served elsewhere never polls)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != "/webhooks/rest/webhook":
            await self.app(scope, receive, send)
            return

        async def send_with_hint(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((HINT_HEADER.encode(), INBOX_PATH.lstrip("/").encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_hint)
