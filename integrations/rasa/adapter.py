"""Understanding through a Rasa 3.6 server's HTTP API.

``RasaNLU`` posts the normalized text to ``{rasa_url}/model/parse`` and maps Rasa's answer onto the
shared contract: intent names outside :class:`~bot.nlu.base.Intent` become ``other``; Rasa entity names
map to :class:`~bot.nlu.base.EntityType`. The embedded regex entities
(:func:`bot.nlu.entities.extract_entities`) are merged in and win over Rasa's where spans overlap,
because their values are canonical (Arabic numerals, upper-case appeal ids) and Rasa's are raw spans.

``create(settings)`` is the registry factory for ``HUIYIN_NLU=rasa``: Rasa as primary, the embedded
NLU as fallback (:class:`bot.nlu.fallback.FallbackNLU`), so a Rasa outage degrades understanding
instead of stopping the bot.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import structlog

from bot.nlu.base import Entity, EntityType, Intent, IntentScore, NLUBackend, Understanding
from bot.nlu.entities import extract_entities
from bot.nlu.fallback import BackendError, BackendUnavailable, FallbackNLU
from bot.nlu.normalize import normalize
from bot.settings import Settings

log = structlog.get_logger()

# Entity names training data might use for our types besides the EntityType values themselves.
_ENTITY_ALIASES: dict[str, EntityType] = {
    "location": EntityType.PLACE,
    "phone_number": EntityType.PHONE,
    "appeal": EntityType.APPEAL_ID,
    "date": EntityType.TIME,
    "datetime": EntityType.TIME,
}
_ENTITY_TYPES: dict[str, EntityType] = {t.value: t for t in EntityType} | _ENTITY_ALIASES
_INTENTS: dict[str, Intent] = {i.value: i for i in Intent}
# 409: Rasa answers "no agent loaded" with 409 Conflict; the service is up but cannot parse anything.
_UNAVAILABLE_STATUS = frozenset({409})


class RasaNLU:
    """An :class:`~bot.nlu.base.NLUBackend` backed by a Rasa server's ``/model/parse``.

    Raises :class:`~bot.nlu.fallback.BackendUnavailable` when Rasa cannot be reached or answers with a
    server error, and :class:`~bot.nlu.fallback.BackendError` when it refuses one message; wrap it in
    :class:`~bot.nlu.fallback.FallbackNLU` to keep answering. One HTTP client (connection pool) is kept
    for the backend's lifetime; :meth:`aclose` releases it.
    """

    name = "rasa"

    def __init__(self, url: str, *, timeout_s: float = 2.0) -> None:
        self.url = url.rstrip("/")
        # trust_env=False: a proxy from the environment must not sit between the bot and its own Rasa.
        self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout_s, trust_env=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def parse(self, text: str) -> Understanding:
        normalized = normalize(text)
        if not normalized:
            # Nothing to understand (empty, only emoji): no need to ask Rasa.
            nothing = IntentScore(Intent.OTHER, 0.0)
            return Understanding(text="", intent=nothing, ranking=(nothing,), backend=self.name)
        body = await self._post_parse(normalized)
        return self._understanding(normalized, body)

    async def health(self) -> str | None:
        try:
            response = await self._client.get("/status")
        except httpx.HTTPError as exc:
            return f"rasa unreachable at {self.url} ({type(exc).__name__})"
        if response.status_code != 200:
            return f"rasa at {self.url} answered /status with HTTP {response.status_code}"
        try:
            status = response.json()
        except ValueError:
            return f"rasa at {self.url} answered /status with invalid JSON"
        if not isinstance(status, dict) or not status.get("model_file"):
            return f"rasa at {self.url} has no model loaded"
        return None

    async def _post_parse(self, normalized: str) -> dict[str, Any]:
        try:
            response = await self._client.post("/model/parse", json={"text": normalized})
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"rasa unreachable at {self.url} ({type(exc).__name__})") from exc
        status = response.status_code
        if status >= 500 or status in _UNAVAILABLE_STATUS:
            raise BackendUnavailable(f"rasa at {self.url} answered HTTP {status}")
        if status != 200:
            raise BackendError(f"rasa at {self.url} refused a message with HTTP {status}")
        try:
            body = response.json()
        except ValueError as exc:
            raise BackendUnavailable(f"rasa at {self.url} answered invalid JSON") from exc
        if not isinstance(body, dict):
            raise BackendUnavailable(f"rasa at {self.url} answered an unexpected body")
        return body

    def _understanding(self, normalized: str, body: dict[str, Any]) -> Understanding:
        intent = _intent_score(body.get("intent"))
        ranking = _ranking(intent, body.get("intent_ranking"))
        entities = _merge_entities(normalized, body.get("entities"))
        return Understanding(
            text=normalized, intent=intent, entities=entities, ranking=ranking, backend=self.name
        )


def _confidence(value: object) -> float:
    if isinstance(value, int | float) and math.isfinite(value):
        return min(max(float(value), 0.0), 1.0)
    return 0.0


def _intent_score(raw: object) -> IntentScore:
    if not isinstance(raw, dict):
        return IntentScore(Intent.OTHER, 0.0)
    name = raw.get("name")
    intent = _INTENTS.get(name, Intent.OTHER) if isinstance(name, str) else Intent.OTHER
    return IntentScore(intent, _confidence(raw.get("confidence")))


def _ranking(top: IntentScore, raw: object) -> tuple[IntentScore, ...]:
    """Rasa's ranking mapped to our intents, best first, one entry per intent, starting with ``top``.

    Several unknown Rasa intents all map to ``other``; the best of them stands for it.
    """
    best: dict[Intent, float] = {top.name: top.confidence}
    for item in raw if isinstance(raw, list) else ():
        score = _intent_score(item)
        if score.name not in best:
            best[score.name] = score.confidence
    rest = sorted(
        (IntentScore(i, c) for i, c in best.items() if i is not top.name), key=lambda s: -s.confidence
    )
    return (top, *rest)


def _merge_entities(normalized: str, raw: object) -> tuple[Entity, ...]:
    canonical = list(extract_entities(normalized))
    merged = list(canonical)
    for item in raw if isinstance(raw, list) else ():
        entity = _rasa_entity(normalized, item)
        if entity is None:
            continue
        if any(e.start < entity.end and entity.start < e.end for e in merged):
            continue  # the canonical regex entity (or an earlier Rasa one) already covers this span
        merged.append(entity)
    return tuple(sorted(merged, key=lambda e: (e.start, e.end)))


def _rasa_entity(normalized: str, raw: object) -> Entity | None:
    if not isinstance(raw, dict):
        return None
    name, start, end = raw.get("entity"), raw.get("start"), raw.get("end")
    if not isinstance(name, str) or not isinstance(start, int) or not isinstance(end, int):
        return None
    kind = _ENTITY_TYPES.get(name)
    if kind is None or not 0 <= start < end <= len(normalized):
        return None
    span = normalized[start:end]
    value = raw.get("value")
    # Rasa's value is the span as written (or a synonym); the embedded extractor knows the canonical
    # form ("三号楼" -> "3") when it recognizes the span on its own.
    again = next((e for e in extract_entities(span) if e.type is kind), None)
    if again is not None:
        value = again.value
    elif not isinstance(value, str) or not value:
        value = span
    return Entity(type=kind, value=value, text=span, start=start, end=end)


async def create(settings: Settings) -> NLUBackend:
    """Registry factory for ``HUIYIN_NLU=rasa``: Rasa at ``settings.rasa_url``, embedded as fallback."""
    from bot.nlu.registry import build_nlu  # the registry imports this module lazily; avoid a cycle

    fallback = await build_nlu(settings.model_copy(update={"nlu": "embedded"}))
    primary = RasaNLU(settings.rasa_url, timeout_s=settings.rasa_timeout_s)
    nlu = FallbackNLU(primary=primary, fallback=fallback)
    # Check once at start-up so an unreachable Rasa is in the log before the first message.
    reason = await nlu.health()
    if reason is None:
        log.info("rasa nlu ready", url=primary.url)
    return nlu
