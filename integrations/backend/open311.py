"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2): the standard city service-request API.

- ``GET services.json`` discovers the service types. Each appeal's ``service_code`` comes from its
  community's mapping (:class:`kb.model.Open311Services`, merged by :mod:`integrations.backend.registry`
  from the settings and the community's profile): the KB matter's code, else the category's, else the
  community's default. Only where none of these is configured is the code guessed as before — by matching
  the category's name against the services' names, groups and keywords, else the first service — and
  that guess is logged. A mapped code the server does not list is skipped (and reported at start-up by
  :meth:`Open311Backend.check_services`).
- ``POST requests.json`` (form-encoded, with ``api_key``) files the case. The server answers either with
  a ``service_request_id`` or with a ``token``, exchanged later through ``GET tokens/{token}.json``.
- ``GET requests.json?service_request_id=a,b,c`` reports ``status`` (open/closed, or an extension's
  richer words) and ``status_notes``; huiyin polls it.
- Supporters and ratings go out through ``POST servicerequestupdates.json``, the update extension of
  mySociety's FixMyStreet/open311-adapter; GeoReport v2 itself has no way to add to a request. Servers
  without it: set ``HUIYIN_OPEN311_UPDATES=false`` (or ``"updates": false`` in the community's entry);
  a server that answers 404, 405 or 501 there is taken as having none from then on (per backend, for the
  life of the process), so that those updates are recorded in huiyin instead of retried forever.

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
    BackendError,
    BackendRejected,
    BackendUnavailable,
    CaseRecord,
    CaseUpdate,
    Filed,
    RemoteStatus,
    status_from_text,
)
from integrations.backend.http import PooledClient, answer_excerpt, check_answer, guarded
from kb.model import CATEGORY_LABELS, Category, Open311Services

log = structlog.get_logger(__name__)

SERVICES_TTL_S = 3600.0
# Answers to servicerequestupdates.json that mean "this server has no such endpoint".
UPDATES_UNSUPPORTED = frozenset({404, 405, 501})
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
        services: Open311Services,
        community_services: dict[str, Open311Services] | None = None,
        updates: bool,
        timeout_s: float,
        max_connections: int,
    ) -> None:
        super().__init__(timeout_s=timeout_s, max_connections=max_connections)
        self.name = name
        self.url = url.rstrip("/")
        self._api_key = api_key
        self._jurisdiction = jurisdiction
        self._mapping = services
        self._community_mappings = dict(community_services or {})
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

    def mapping_for(self, community_code: str) -> Open311Services:
        """The service mapping of a community (the backend-wide one if it has none of its own)."""
        return self._community_mappings.get(community_code, self._mapping)

    async def _offered(self) -> set[str] | None:
        """The service codes the server lists, or None when it cannot say right now."""
        try:
            return {str(s["service_code"]) for s in await self.services()}
        except BackendError:
            return None

    async def service_code(self, case: CaseRecord) -> str:
        """The ``service_code`` for a case: the community's mapping by KB matter, then by category, then
        its default; a code the server does not list is passed over. Nothing configured: the old guess."""
        mapping = self.mapping_for(case.community_code)
        offered = await self._offered() if mapping.codes() else None
        candidates = (
            ("by_matter", case.kb_matter_id, mapping.by_matter.get(case.kb_matter_id or "")),
            ("by_category", case.category, _by_category(mapping, case.category)),
            ("default", None, mapping.default),
        )
        for level, key, code in candidates:
            if code is None:
                continue
            if offered is not None and code not in offered:
                log.warning(
                    "open311 service mapping names a service code the server does not offer: passed over",
                    backend=self.name,
                    community=case.community_code,
                    mapping=f"{level}.{key}" if key else level,
                    service_code=code,
                    public_id=case.public_id,
                )
                continue
            return code
        code = await self._guess(case)
        log.warning(
            "open311: no service mapping fits this appeal; the service code was guessed from the names",
            backend=self.name,
            community=case.community_code,
            kb_matter_id=case.kb_matter_id,
            category=case.category,
            service_code=code,
            public_id=case.public_id,
        )
        return code

    async def _guess(self, case: CaseRecord) -> str:
        """The last resort: the first service whose name, group or keywords share a word with the
        category's label, else the first service the server lists."""
        services = await self.services()
        if case.category:
            words = _category_words(case.category)
            for service in services:
                text = _service_text(service)
                if any(w in text for w in words):
                    return str(service["service_code"])
        if not services:
            raise BackendRejected("open311: the server lists no services and no default service code is set")
        return str(services[0]["service_code"])

    async def check_services(self) -> list[str]:
        """Every mapped service code the server's ``services.json`` does not list, as a sentence each
        (empty: the mappings fit). Raises :class:`BackendError` when the list cannot be had."""
        offered = {str(s["service_code"]) for s in await self.services()}
        listed = ", ".join(sorted(offered)) or "none"
        problems: list[str] = []
        mappings: list[tuple[str, Open311Services, set[tuple[str, str]]]] = []
        shared = set(self._mapping.codes())
        if all(m is not self._mapping for m in self._community_mappings.values()):
            mappings.append(("every community", self._mapping, set()))
        else:
            shared = set()  # a backend of one community: its mapping is the shared one
        # What a community's mapping inherits from the shared one is reported once, with the shared one.
        mappings += [(f"community {c!r}", m, shared) for c, m in sorted(self._community_mappings.items())]
        for who, mapping, reported in mappings:
            for where, code in mapping.codes():
                if code not in offered and (where, code) not in reported:
                    problems.append(
                        f"open311 backend {self.name!r}, {who}: services.{where} is {code!r}, which the "
                        f"server does not offer (it lists: {listed}); appeals it maps are filed by the "
                        "next rule instead"
                    )
        return problems

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
            raise BackendRejected(
                f"{what}: the answer has neither service_request_id nor token: {answer_excerpt(str(first))}"
            )
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
    @property
    def takes_updates(self) -> bool:
        """False when updates are switched off or the server showed it has no update endpoint."""
        return self._updates

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
        if response.status_code in UPDATES_UNSUPPORTED:
            # GeoReport v2 has no update endpoint: this server is one without the extension. Retrying
            # would never succeed; remember it, so that later updates do not even try.
            self._updates = False
            log.warning(
                "open311 server takes no updates: they are kept in huiyin only from now on",
                backend=self.name,
                status=response.status_code,
                public_id=case.public_id,
                kind=update.kind,
            )
            return False
        check_answer(response, what)
        return True


def _description(case: CaseRecord) -> str:
    text = case.description
    if case.urgent:
        text = f"【紧急】{text}"
    if case.supporters > 1:
        text = f"{text}（共{case.supporters}位居民反映）"
    # The resident's id, and the deployment it is unique in (the same id may come from another one).
    suffix = (
        f"\n（回音编号 {case.public_id}，实例 {case.instance_id}）"
        if case.instance_id
        else f"\n（回音编号 {case.public_id}）"
    )
    return text[: MAX_DESCRIPTION - len(suffix)] + suffix


def _by_category(mapping: Open311Services, category: str | None) -> str | None:
    try:
        return mapping.by_category.get(Category(category)) if category else None
    except ValueError:
        return None  # not a category the knowledge base knows


def _category_words(category: str) -> list[str]:
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
        raise BackendUnavailable(
            f"{what}: the answer is not JSON: {answer_excerpt(response.text, 120)!r}"
        ) from exc


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
