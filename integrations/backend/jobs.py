"""What the forwarder hands around: a claimed outbox row with its appeal (:class:`DeliveryJob`), what
delivering it came to (:class:`DeliveryOutcome`), a round's counts, the retry backoff, and the case record
a backend is sent."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from bot.db.models import Appeal
from bot.dialog.slots import describe_place
from integrations.backend.base import CaseBackend, CaseRecord, Filed


@dataclass(slots=True)
class DeliveryJob:
    entry_id: int
    action: str
    platform: str | None
    key: str
    payload: dict[str, Any]
    attempts: int
    appeal: Appeal
    community_code: str
    community_name: str
    reporter_name: str
    instance_id: str = ""  # the deployment's (bot/db/repository/instance.py)


@dataclass(slots=True)
class DeliveryOutcome:
    job: DeliveryJob
    ok: bool
    error: str = ""
    permanent: bool = False
    parked: bool = False  # no backend for the community
    filed: Filed | None = None
    backend: CaseBackend | None = None
    note: str | None = None  # kept in last_error of a delivered row (e.g. "not sent: no update API")
    kept_note: str | None = None  # an update the backend does not take: the appeal event saying so


@dataclass(slots=True)
class RoundStats:
    delivered: int = 0
    failed: int = 0
    polled: int = 0
    overdue: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def work(self) -> int:
        return self.delivered + self.failed + self.polled + self.overdue


def backoff_s(attempts: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Delay before the next attempt after ``attempts`` failures: exponential, capped, with jitter
    (uniform in [½, 1] of the exponential value, so that workers restarted together spread out)."""
    exp = min(max_s, base_s * (2 ** max(0, attempts - 1)))
    jitter = rng.uniform(0.5, 1.0) if rng is not None else random.uniform(0.5, 1.0)
    return float(exp * jitter)


def case_record(job: DeliveryJob) -> CaseRecord:
    a = job.appeal
    place = describe_place(
        {"building": a.building, "unit": a.unit, "room": a.room, "place": a.place}, private=True
    )
    location = a.location or {}
    media = tuple(str(p["url"]) for p in a.photos or [] if isinstance(p, dict) and p.get("url"))
    return CaseRecord(
        public_id=a.public_id,
        community_code=job.community_code,
        community_name=job.community_name,
        description=a.description,
        address=f"{job.community_name} {place}".strip(),
        category=a.category,
        kb_matter_id=a.kb_matter_id,
        responsible_party=a.responsible_party,
        responsible_sub=a.responsible_sub,
        urgent=a.urgent,
        supporters=a.supporters,
        reporter_name=job.reporter_name,
        contact_phone=a.contact_phone,
        latitude=_float(location.get("latitude")),
        longitude=_float(location.get("longitude")),
        media_urls=media,
        created_at=a.created_at,
        origin_platform=a.origin_platform,
        instance_id=job.instance_id,
    )


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
