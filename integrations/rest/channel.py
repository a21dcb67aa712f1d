"""The REST channel, compatible with Rasa's REST input channel.

``POST /webhooks/rest/webhook`` with ``{"sender": ..., "message": ..., "metadata": {...}}`` answers a
JSON list of ``{"recipient_id", "text", "buttons": [{"title", "payload"}]}``, plus two fields Rasa
clients ignore: ``target`` (``"chat"`` or ``"private"``) and ``chat_id``. A button's payload sent back as
the next message selects it. Missing metadata means a private chat with the sender.

Bad input is refused with a 4xx and a clear ``detail`` before anything is written.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, TypeAdapter, ValidationError

from bot.message import ChatType, IncomingMessage, Platform, Reply
from bot.outage import RETRY_AFTER_S
from integrations.channel import ChannelType, InputChannel
from integrations.core import Core
from integrations.payload import lone_surrogate_path

log = structlog.get_logger()

MAX_BODY_BYTES = 64 * 1024

Id = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]


class RestMetadata(BaseModel):
    model_config = ConfigDict(extra="ignore")

    chat_id: Id | None = None
    chat_type: Literal["group", "private"] | None = None
    chat_title: Annotated[StrictStr, Field(max_length=200)] | None = None
    user_name: Annotated[StrictStr, Field(max_length=100)] | None = None
    mentioned: StrictBool = False
    reply_to_bot: StrictBool = False
    message_id: Id | None = None


class RestMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sender: Id
    message: StrictStr
    metadata: RestMetadata | None = None


class RestButton(BaseModel):
    title: str
    payload: str


class RestReply(BaseModel):
    recipient_id: str
    text: str
    buttons: list[RestButton] = []
    target: Literal["chat", "private"] = "chat"
    chat_id: str


def to_incoming(body: RestMessage, platform: Platform = Platform.REST) -> IncomingMessage:
    meta = body.metadata or RestMetadata()
    chat_type = ChatType(meta.chat_type) if meta.chat_type else ChatType.PRIVATE
    chat_id = meta.chat_id or body.sender
    if chat_type is ChatType.GROUP and not meta.chat_id:
        raise HTTPException(422, "metadata.chat_id is required when metadata.chat_type is 'group'")
    kwargs: dict[str, Any] = {}
    if meta.message_id:
        kwargs["message_id"] = meta.message_id
    return IncomingMessage(
        platform=platform,
        chat_id=chat_id,
        chat_type=chat_type,
        sender_id=body.sender,
        sender_name=meta.user_name or "",
        text=body.message,
        mentions_bot=meta.mentioned,
        reply_to_bot=meta.reply_to_bot,
        chat_title=meta.chat_title or "",
        raw=body.model_dump(),
        **kwargs,
    )


def to_rest(reply: Reply) -> RestReply:
    return RestReply(
        recipient_id=reply.recipient_id,
        text=reply.text,
        buttons=[RestButton(title=b.title, payload=b.payload) for b in reply.buttons],
        target="private" if reply.target.value == "private" else "chat",
        chat_id=reply.chat_id,
    )


def _error_detail(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


router = APIRouter()


_REPLIES = TypeAdapter(list[RestReply])


@router.post("/webhooks/rest/webhook", response_model=list[RestReply])
async def rest_webhook(request: Request) -> Response:
    # The facade over the app's runtime, taken per request: the route serves as soon as a runtime is
    # there (the web chat and tests run it without the app's lifespan).
    core = Core.of(request.app.state.runtime)
    settings = core.settings
    body_bytes = await read_limited_body(request)
    try:
        body = RestMessage.model_validate_json(body_bytes)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            # pydantic's parser refuses a lone UTF-16 surrogate ("\ud800") as invalid JSON; it is valid
            # JSON, just not text: say where it is instead of losing the message to a vague 400.
            if (where := lone_surrogate_path(body_bytes)) is not None:
                raise HTTPException(
                    422, f"{where}: contains a lone UTF-16 surrogate, which is not text; send valid Unicode"
                ) from None
            raise HTTPException(400, "the body is not valid JSON") from None
        raise HTTPException(422, _error_detail(exc)) from None
    if not body.message.strip():
        raise HTTPException(422, "message: must not be empty")
    if len(body.message) > settings.max_text_chars:
        raise HTTPException(
            413,
            f"message: {len(body.message)} characters is longer than the {settings.max_text_chars} allowed",
        )
    result = await core.handle(to_incoming(body))
    if result.busy:
        raise HTTPException(503, "this conversation is busy; retry shortly", headers={"Retry-After": "2"})
    if result.unavailable:
        # Not stored, so not handled: the client sends it again, and dedup makes that count once.
        log.warning("message refused during an outage", error=type(result.outage).__name__)
        raise HTTPException(
            503,
            "the service is temporarily unavailable; send the message again shortly",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    replies = result.replies
    # Serialized here in one pass (pydantic-core): returned as models, FastAPI would validate them again
    # against the response model and encode them in Python. The response model still documents the API.
    return Response(_REPLIES.dump_json([to_rest(r) for r in replies]), media_type="application/json")


async def read_limited_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused with 413 past ``limit`` without reading the rest into memory."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class RestChannel(InputChannel):
    """The REST channel: nothing to start; its route takes the core from the app per request."""

    name = "rest"

    def __init__(self, core: Core) -> None:
        self.core = core

    def routes(self) -> list[APIRouter]:
        return [router]


async def _build(core: Core) -> InputChannel:
    return RestChannel(core)


REST = ChannelType("rest", routes=(router,), configured=lambda settings: True, build=_build)
"""Always on: the web chat and Rasa-compatible clients use it."""
