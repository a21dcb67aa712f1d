"""The signed JSON webhook backend: signatures and the outbound side (the inbound endpoint is in
:mod:`integrations.backend.events`).

Outbound: each appeal and each later update is POSTed to ``HUIYIN_BACKEND_WEBHOOK_URL`` as JSON::

    {"event": "appeal.created" | "appeal.supporter" | "appeal.rating" | "appeal.comment",
     "idempotency_key": "a1b2c3d4e5:HY-20261122-0001:create", "sent_at": "...",
     "backend_id": null | "...", "appeal": {"public_id": "HY-20261122-0001",
     "reference": "a1b2c3d4e5:HY-20261122-0001", "instance_id": "a1b2c3d4e5", ...}, "update": {...}}

with ``X-Huiyin-Timestamp`` (Unix seconds), ``X-Huiyin-Signature: sha256=<hex>`` — HMAC-SHA256 with the
shared secret over ``timestamp + "." + body`` — and ``Idempotency-Key``. The backend answers 2xx, with
``{"case_id": "..."}`` for a new case (else the appeal's reference is its id); a repeated key must get
the first answer again, never a second case. The public id is what the resident sees and is unique only
within one deployment (``HUIYIN_APPEAL_ID_PREFIX``); ``reference`` and every idempotency key carry the
deployment's instance id (``HUIYIN_INSTANCE_ID``), so that a backend serving several deployments keeps
their appeals apart. (Keys of rows queued before instance ids existed stay as they were.)

Inbound: ``POST /backend/events`` takes status updates signed the same way::

    {"event_id": "evt-1", "public_id": "HY-20261122-0001" (or "backend_id": "..."),
     "status": "in_progress", "note": "维修师傅已出发", "occurred_at": "..."}

A missing or wrong signature is refused with 401, a timestamp outside ±``HUIYIN_BACKEND_WEBHOOK_TOLERANCE_S``
(a replay) or a signature by another community's backend with 403 — before anything is read from or
written to the database. A repeated ``event_id`` changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

from integrations.backend.base import (
    BackendRejected,
    BackendUnavailable,
    CaseRecord,
    CaseUpdate,
    Filed,
    RemoteStatus,
)
from integrations.backend.http import PooledClient, answer_excerpt, check_answer, guarded

TIMESTAMP_HEADER = "X-Huiyin-Timestamp"
SIGNATURE_HEADER = "X-Huiyin-Signature"


# --- signatures --------------------------------------------------------------------------------------
def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(secret: bytes, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(now if now is not None else time.time()))
    return {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        "Content-Type": "application/json",
    }


def verify(secret: bytes, timestamp: str, given: str, body: bytes) -> bool:
    """Constant-time check of a signature header value against ``secret``."""
    if not timestamp.isascii() or not given.isascii():
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), given.strip())


# --- outbound ----------------------------------------------------------------------------------------
class WebhookBackend(PooledClient):
    kind = "webhook"
    polls = False  # the backend calls POST /backend/events

    def __init__(self, *, name: str, url: str, secret: bytes, timeout_s: float, max_connections: int) -> None:
        super().__init__(timeout_s=timeout_s, max_connections=max_connections)
        self.name = name
        self.url = url
        self._secret = secret

    async def _post(self, event: dict[str, Any], idempotency_key: str, what: str) -> Any:
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {**signed_headers(self._secret, body), "Idempotency-Key": idempotency_key}
        response = await guarded(what, lambda: self.client.post(self.url, content=body, headers=headers))
        check_answer(response, what)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError as exc:
            raise BackendUnavailable(
                f"{what}: the answer is not JSON: {answer_excerpt(response.text, 120)!r}"
            ) from exc

    async def file(self, case: CaseRecord, idempotency_key: str) -> Filed:
        event = {
            "event": "appeal.created",
            "idempotency_key": idempotency_key,
            "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "backend_id": None,
            "appeal": case.as_json(),
        }
        answer = await self._post(event, idempotency_key, f"webhook appeal.created ({case.public_id})")
        case_id = None
        if isinstance(answer, dict):
            case_id = answer.get("case_id") or answer.get("backend_id") or answer.get("id")
        elif answer is not None and not isinstance(answer, list):
            raise BackendRejected(f"webhook: unexpected answer {answer_excerpt(str(answer), 200)}")
        return Filed(backend_id=str(case_id) if case_id else case.reference)

    async def update(
        self, backend_id: str, case: CaseRecord, update: CaseUpdate, idempotency_key: str
    ) -> bool:
        event = {
            "event": f"appeal.{update.kind}",
            "idempotency_key": idempotency_key,
            "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "backend_id": backend_id,
            "appeal": case.as_json(),
            "update": update.as_json(),
        }
        await self._post(event, idempotency_key, f"webhook appeal.{update.kind} ({case.public_id})")
        return True

    async def resolve_token(self, token: str) -> str | None:
        return None

    async def poll(self, backend_ids: list[str]) -> list[RemoteStatus]:
        return []
