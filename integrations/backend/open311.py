"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2): the standard city service-request API.

- ``GET services.json`` discovers the service types; a knowledge-base category is mapped to a
  ``service_code`` by the settings (``HUIYIN_OPEN311_SERVICE_CODES``, category or matter id → code), else
  by matching the category's name against the services' names, groups and keywords, else the default.
- ``POST requests.json`` (form-encoded, with ``api_key``) files the case. The server answers either with
  a ``service_request_id`` or with a ``token``, exchanged later through ``GET tokens/{token}.json``.
- ``GET requests.json?service_request_id=a,b,c`` reports ``status`` (open/closed, or an extension's
  richer words) and ``status_notes``; huiyin polls it.
- Supporters and ratings go out through ``POST servicerequestupdates.json``, the update extension of
  mySociety's FixMyStreet/open311-adapter; GeoReport v2 itself has no way to add to a request. Servers
  without it: set ``HUIYIN_OPEN311_UPDATES=false``.

GeoReport v2 defines no idempotency: huiyin sends an ``Idempotency-Key`` header on every POST (and the
key as ``update_id`` on updates). A server — or the gateway in front of it — must honour that header for
"never a duplicate" to hold across a crash between sending and recording the answer (docs/backend.md).
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from integrations.backend.base import (
    BackendRejected,
    BackendUnavailable,
    CaseRecord,
    CaseUpdate,
    Filed,
    RemoteStatus,
    status_from_text,
)
from integrations.backend.http import PooledClient, check_answer, guarded

log = structlog.get_logger(__name__)

SERVICES_TTL_S = 3600.0
MAX_DESCRIPTION = 4000
POLL_BATCH = 50


class Open311Backend(PooledClient):
    kind = "open311"
    polls = True

    def __init__(
        self,
        *,
        name: str,
        url: str,
        api_key: str | None,
        jurisdiction: str | None,
        service_codes: dict[str, str],
        default_service_code: str | None,
        updates: bool,
        timeout_s: float,
        max_connections: int,
    ) -> None:
        super().__init__(timeout_s=timeout_s, max_connections=max_connections)
        self.name = name
        self.url = url.rstrip("/")
        self._api_key = api_key
        self._jurisdiction = jurisdiction
        self._service_codes = dict(service_codes)
        self._default_code = default_service_code
        self._updates = updates
        self._services: list[dict[str, Any]] | None = None
        self._services_at = 0.0
        self._services_lock = asyncio.Lock()

    def _common(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self._jurisdiction:
            params["jurisdiction_id"] = self._jurisdiction
        return params

    # --- discovery -----------------------------------------------------------------------------------
    async def services(self) -> list[dict[str, Any]]:
        """The server's service types (``services.json``), cached for an hour."""
        async with self._services_lock:
            if self._services is not None and time.monotonic() - self._services_at < SERVICES_TTL_S:
                return self._services
            what = "open311 services.json"
            response = await guarded(
                what, lambda: self.client.get(f"{self.url}/services.json", params=self._common())
            )
            check_answer(response, what)
            data = _json(response, what)
            if not isinstance(data, list):
                raise BackendRejected(f"{what}: expected a list of services, got {type(data).__name__}")
            self._services = [s for s in data if isinstance(s, dict) and s.get("service_code")]
            self._services_at = time.monotonic()
            return self._services

    async def service_code(self, case: CaseRecord) -> str:
        """The ``service_code`` for a case: configured mapping, then name matching, then the default."""
        for key in (case.kb_matter_id, case.category):
            if key and key in self._service_codes:
                return self._service_codes[key]
        services = await self.services()
        if case.category:
            words = _category_words(case.category)
            for service in services:
                text = _service_text(service)
                if any(w in text for w in words):
                    return str(service["service_code"])
        if self._default_code:
            return self._default_code
        if not services:
            raise BackendRejected("open311: the server lists no services and no default service code is set")
        return str(services[0]["service_code"])

    # --- filing --------------------------------------------------------------------------------------
    async def file(self, case: CaseRecord, idempotency_key: str) -> Filed:
        form = {
            **self._common(),
            "service_code": await self.service_code(case),
            "description": _description(case),
            "address_string": case.address,
            "first_name": case.reporter_name or "居民",
        }
        if self._api_key:
            form["api_key"] = self._api_key
        if case.latitude is not None and case.longitude is not None:
            form["lat"], form["long"] = str(case.latitude), str(case.longitude)
        if case.contact_phone:
            form["phone"] = case.contact_phone
        if case.media_urls:
            form["media_url"] = case.media_urls[0]
        what = f"open311 requests.json ({case.public_id})"
        response = await guarded(
            what,
            lambda: self.client.post(
                f"{self.url}/requests.json", data=form, headers={"Idempotency-Key": idempotency_key}
            ),
        )
        check_answer(response, what)
        first = _first(_json(response, what), what)
        request_id = _text(first.get("service_request_id"))
        token = _text(first.get("token"))
        if not request_id and not token:
            raise BackendRejected(f"{what}: the answer has neither service_request_id nor token: {first}")
        return Filed(backend_id=request_id, token=token, notice=_text(first.get("service_notice")) or "")

    async def resolve_token(self, token: str) -> str | None:
        what = f"open311 tokens/{token}.json"
        response = await guarded(
            what, lambda: self.client.get(f"{self.url}/tokens/{token}.json", params=self._common())
        )
        if response.status_code == 404:
            return None  # not processed yet
        check_answer(response, what)
        data = _json(response, what)
        if isinstance(data, list) and not data:
            return None
        return _text(_first(data, what).get("service_request_id"))

    # --- status --------------------------------------------------------------------------------------
    async def poll(self, backend_ids: list[str]) -> list[RemoteStatus]:
        found: list[RemoteStatus] = []
        for start in range(0, len(backend_ids), POLL_BATCH):
            chunk = backend_ids[start : start + POLL_BATCH]
            found.extend(await self._poll_chunk(chunk))
        return found

    async def _poll_chunk(self, ids: list[str]) -> list[RemoteStatus]:
        what = "open311 requests.json?service_request_id=…"
        params = {**self._common(), "service_request_id": ",".join(ids)}
        response = await guarded(what, lambda: self.client.get(f"{self.url}/requests.json", params=params))
        if response.status_code in (400, 404) and len(ids) == 1:
            # Some servers only answer the single-request form.
            what = f"open311 requests/{ids[0]}.json"
            response = await guarded(
                what, lambda: self.client.get(f"{self.url}/requests/{ids[0]}.json", params=self._common())
            )
        check_answer(response, what)
        data = _json(response, what)
        items = data if isinstance(data, list) else [data]
        wanted = set(ids)
        out: list[RemoteStatus] = []
        for item in items:
            if not isinstance(item, dict):
                continue
            request_id = _text(item.get("service_request_id"))
            if request_id is None or request_id not in wanted:
                continue
            raw = _text(item.get("status")) or ""
            out.append(
                RemoteStatus(
                    backend_id=request_id,
                    status=status_from_text(raw) if raw else None,
                    raw_status=raw,
                    notes=_text(item.get("status_notes")) or "",
                    updated_at=_text(item.get("updated_datetime")),
                    extra={k: item[k] for k in ("agency_responsible", "service_notice") if item.get(k)},
                )
            )
        return out

    # --- updates (FixMyStreet extension) -------------------------------------------------------------
    async def update(
        self, backend_id: str, case: CaseRecord, update: CaseUpdate, idempotency_key: str
    ) -> bool:
        if not self._updates:
            return False
        form = {
            **self._common(),
            "service_request_id": backend_id,
            "update_id": idempotency_key,
            "status": "OPEN" if update.case_open else "CLOSED",
            "description": update.text,
            "updated_datetime": datetime.now(UTC).isoformat(timespec="seconds"),
            "first_name": case.reporter_name or "居民",
        }
        if self._api_key:
            form["api_key"] = self._api_key
        what = f"open311 servicerequestupdates.json ({case.public_id}, {update.kind})"
        response = await guarded(
            what,
            lambda: self.client.post(
                f"{self.url}/servicerequestupdates.json",
                data=form,
                headers={"Idempotency-Key": idempotency_key},
            ),
        )
        check_answer(response, what)
        return True


def _description(case: CaseRecord) -> str:
    text = case.description
    if case.urgent:
        text = f"【紧急】{text}"
    if case.supporters > 1:
        text = f"{text}（共{case.supporters}位居民反映）"
    suffix = f"\n（回音编号 {case.public_id}）"
    return text[: MAX_DESCRIPTION - len(suffix)] + suffix


def _category_words(category: str) -> list[str]:
    from kb.model import CATEGORY_LABELS, Category

    words = [category.lower()]
    try:
        label = CATEGORY_LABELS[Category(category)]
    except ValueError:
        return words
    words.append(label)
    words.extend(p for p in re.split(r"[与和、,，]", label) if len(p) >= 2)
    return words


def _service_text(service: dict[str, Any]) -> str:
    parts = [service.get(k) for k in ("service_name", "group", "keywords", "description", "service_code")]
    return " ".join(str(p) for p in parts if p).lower()


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        # A proxy's HTML error page with a 200: not the backend's answer, so worth another try.
        raise BackendUnavailable(f"{what}: the answer is not JSON: {response.text[:120]!r}") from exc


def _first(data: Any, what: str) -> dict[str, Any]:
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return data[0]
    if isinstance(data, dict):
        return data
    raise BackendRejected(f"{what}: unexpected answer {str(data)[:200]}")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
