"""``POST /backend/events``: status updates from the signed webhook backend (see
:mod:`integrations.backend.webhook` for the format and the signature).

Checked in this order, and refused before the database is touched: both headers present (else 401), a
signature made with the secret of a configured webhook backend (else 401), a timestamp within
±``HUIYIN_BACKEND_WEBHOOK_TOLERANCE_S`` (else 403, a replay or a wrong clock). Then the body (400/422),
the appeal (404), and that the signing backend is this appeal's community's backend (else 403).
An ``event_id`` seen before changes nothing.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from sqlalchemy.exc import IntegrityError

from bot.appeals.status import change_status, lock_appeal, record_note
from bot.db.repository.appeal_records import AppealRecords
from bot.dialog.spec import load_bundle
from bot.settings import Settings
from integrations.backend.base import status_from_text
from integrations.backend.registry import Backends, BackendSpec
from integrations.backend.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from integrations.rest.channel import read_limited_body

log = structlog.get_logger(__name__)

Id = Annotated[StrictStr, Field(min_length=1, max_length=128)]


class BackendEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event_id: Id
    public_id: Id | None = None
    # The reference huiyin sent (``<instance id>:<public id>``): names the appeal across deployments.
    reference: Id | None = None
    backend_id: Id | None = None
    status: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    note: Annotated[StrictStr, Field(max_length=2000)] = ""
    occurred_at: Annotated[StrictStr, Field(max_length=64)] | None = None


def webhook_specs(settings: Settings) -> list[BackendSpec]:
    return [s for s in Backends(settings).specs() if s.kind == "webhook" and s.secret]


router = APIRouter()


@router.post("/backend/events")
async def backend_events(request: Request) -> dict[str, Any]:
    """A status update from the city's case backend (signed webhook). See the module docstring."""
    runtime = request.app.state.runtime
    settings: Settings = runtime.settings
    body = await read_limited_body(request)
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    given = request.headers.get(SIGNATURE_HEADER, "")
    if not timestamp or not given:
        raise HTTPException(401, f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
    specs = webhook_specs(settings)
    if not specs:
        raise HTTPException(403, "no signed webhook backend is configured")
    signed_by = [s for s in specs if s.secret is not None and verify(s.secret, timestamp, given, body)]
    if not signed_by:
        raise HTTPException(401, "bad signature")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise HTTPException(401, f"{TIMESTAMP_HEADER} must be Unix seconds") from None
    if abs(time.time() - sent_at) > settings.backend_webhook_tolerance_s:
        raise HTTPException(403, "stale timestamp: the event is too old (or the clocks disagree)")
    try:
        event = BackendEvent.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise HTTPException(400, "the body is not valid JSON") from None
        raise HTTPException(
            422, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None
    if event.reference is not None:
        instance, _, public_id = event.reference.rpartition(":")
        if instance != runtime.db.instance_id or not public_id:
            # Another deployment's appeal: a backend serving several sent it to the wrong one.
            raise HTTPException(404, "no such appeal in this deployment")
        if event.public_id not in (None, public_id):
            raise HTTPException(422, "reference and public_id name different appeals")
        event = event.model_copy(update={"public_id": public_id})
    if not event.public_id and not event.backend_id:
        raise HTTPException(422, "reference, public_id or backend_id is required")
    status = status_from_text(event.status)
    if status is None:
        raise HTTPException(422, f"status: unknown status {event.status!r}")

    backends = Backends(settings)
    words = load_bundle().responses
    async with runtime.db.unit_of_work() as uow:
        session = uow.session
        records = AppealRecords(session)
        row = await records.appeal_and_community(public_id=event.public_id, backend_id=event.backend_id)
        if row is None:
            raise HTTPException(404, "no such appeal")
        appeal_id, community = row
        spec = backends.spec_for(community)
        if spec is None or spec not in signed_by:
            raise HTTPException(403, "the event is not signed by this appeal's backend")
        if await records.has_source_event(event.event_id):
            return {"ok": True, "duplicate": True}
        appeal = await lock_appeal(session, appeal_id)
        assert appeal is not None
        payload = {"backend_status": event.status, "occurred_at": event.occurred_at}
        changed = await change_status(
            session,
            appeal,
            status,
            note=event.note,
            actor="backend",
            words=words,
            source_event_id=event.event_id,
            payload=payload,
        )
        if changed is None:
            # Not a move the case can make now (a repeat, or older news): kept for the record only.
            record_note(
                session,
                appeal,
                kind="note",
                note=event.note or f"后端状态：{event.status}",
                actor="backend",
                source_event_id=event.event_id,
                payload=payload,
            )
        try:
            await uow.commit()
        except IntegrityError:  # the same event, delivered twice at once: the other one won
            return {"ok": True, "duplicate": True}
        log.info(
            "backend event", public_id=appeal.public_id, status=appeal.status, changed=changed is not None
        )
        return {"ok": True, "changed": changed is not None, "status": appeal.status}
