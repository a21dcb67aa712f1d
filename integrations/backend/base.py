"""The contract between huiyin and a city case backend (a 12345-style system).

A backend takes a confirmed appeal (:meth:`CaseBackend.file`), takes later updates about it — another
resident joined, the resident rated the result (:meth:`CaseBackend.update`) — and reports how the case
stands, either by being asked (:meth:`CaseBackend.poll`, Open311) or by calling huiyin's signed
``POST /backend/events`` (the webhook backend).

Every call carries an idempotency key. Delivery is at least once: after a crash or a lost answer the
forwarder sends the same call again with the same key, and the backend must answer it as the first time
instead of opening a second case. Implementations raise :class:`BackendUnavailable` for anything worth
retrying (network, timeouts, 5xx, 429) and :class:`BackendRejected` when the backend refused the call
itself (4xx): the forwarder retries both, but flags a rejection to staff at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bot.db.models import AppealStatus


class BackendError(Exception):
    """A call to the backend did not succeed."""


class BackendUnavailable(BackendError):
    """The backend could not be reached or failed on its side; the same call may succeed later."""


class BackendRejected(BackendError):
    """The backend refused the call (a 4xx answer): a human has to look at the data or the settings."""


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """What a backend is told about an appeal: everything staff need to act on it.

    Built from the database at delivery time, so a retry sends the appeal as it is now.
    """

    public_id: str
    community_code: str
    community_name: str
    description: str
    address: str  # community + building/unit/room or shared place, in full (the backend is not a group)
    category: str | None
    kb_matter_id: str | None
    responsible_party: str | None
    responsible_sub: str | None
    urgent: bool
    supporters: int
    reporter_name: str
    contact_phone: str | None
    latitude: float | None
    longitude: float | None
    media_urls: tuple[str, ...]
    created_at: datetime
    origin_platform: str
    # The deployment's instance id (bot/db/repository/instance.py): the public id is only unique in one
    # deployment, the reference everywhere.
    instance_id: str = ""

    @property
    def reference(self) -> str:
        """The appeal's reference at the backend, unique across deployments: ``<instance>:<public id>``."""
        return f"{self.instance_id}:{self.public_id}" if self.instance_id else self.public_id

    def as_json(self) -> dict[str, Any]:
        return {
            "public_id": self.public_id,
            "reference": self.reference,
            "instance_id": self.instance_id or None,
            "community": {"code": self.community_code, "name": self.community_name},
            "description": self.description,
            "address": self.address,
            "category": self.category,
            "kb_matter_id": self.kb_matter_id,
            "responsible": {"party": self.responsible_party, "sub": self.responsible_sub},
            "urgent": self.urgent,
            "supporters": self.supporters,
            "reporter": {"name": self.reporter_name, "phone": self.contact_phone},
            "location": (
                {"latitude": self.latitude, "longitude": self.longitude}
                if self.latitude is not None and self.longitude is not None
                else None
            ),
            "media_urls": list(self.media_urls),
            "created_at": self.created_at.isoformat(),
            "channel": self.origin_platform,
        }


@dataclass(frozen=True, slots=True)
class CaseUpdate:
    """Something to tell the backend about a case it already has.

    ``kind`` is ``supporter`` (another resident joined: ``supporters`` is the new count), ``rating``
    (``rating`` is satisfied | basic | unsatisfied; ``reopen`` when the resident was not satisfied) or
    ``comment`` (the resident's words on the result). ``text`` is a line a case worker can read.
    """

    kind: str
    text: str
    supporters: int | None = None
    rating: str | None = None
    reopen: bool = False
    comment: str | None = None
    case_open: bool = True  # whether huiyin considers the case open after this update

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "text": self.text}
        if self.supporters is not None:
            data["supporters"] = self.supporters
        if self.rating is not None:
            data["rating"] = self.rating
            data["reopen"] = self.reopen
        if self.comment is not None:
            data["comment"] = self.comment
        return data


@dataclass(frozen=True, slots=True)
class Filed:
    """The backend's answer to a new case: its id, or (Open311) a token to exchange for the id later."""

    backend_id: str | None = None
    token: str | None = None
    notice: str = ""


@dataclass(frozen=True, slots=True)
class RemoteStatus:
    """How the backend says a case stands. ``status`` is None when the backend's word is not one huiyin
    knows (it is kept in ``raw_status`` and ignored)."""

    backend_id: str
    status: AppealStatus | None
    raw_status: str
    notes: str = ""
    updated_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> dict[str, Any]:
        """What huiyin remembers of the backend's last answer, to notice when it changes."""
        return {"status": self.raw_status, "notes": self.notes, "updated": self.updated_at}


class CaseBackend(Protocol):
    """One configured case backend. ``name`` is stored on each appeal it took (``appeal.backend``)."""

    name: str
    kind: str
    polls: bool  # True: huiyin must ask for status changes (poll); False: the backend pushes them

    async def file(self, case: CaseRecord, idempotency_key: str) -> Filed:
        """Open a case for a new appeal. The same key must yield the same case, never a second one."""
        ...

    async def update(
        self, backend_id: str, case: CaseRecord, update: CaseUpdate, idempotency_key: str
    ) -> bool:
        """Tell the backend about ``update``. Returns False when this backend takes no updates (the
        update is then kept in huiyin only)."""
        ...

    async def resolve_token(self, token: str) -> str | None:
        """The case id behind an Open311 token, or None while the backend has not assigned it yet."""
        ...

    async def poll(self, backend_ids: list[str]) -> list[RemoteStatus]:
        """The current status of these cases (only for backends with ``polls``)."""
        ...

    async def close(self) -> None: ...


# Status words of backends, mapped to huiyin's statuses. Open311 GeoReport v2 itself knows only "open"
# and "closed"; the others are what FixMyStreet-style extensions and 12345 systems report.
_STATUS_WORDS: dict[str, AppealStatus] = {
    "open": AppealStatus.ACCEPTED,
    "accepted": AppealStatus.ACCEPTED,
    "acknowledged": AppealStatus.ACCEPTED,
    "confirmed": AppealStatus.ACCEPTED,
    "received": AppealStatus.ACCEPTED,
    "assigned": AppealStatus.ASSIGNED,
    "dispatched": AppealStatus.ASSIGNED,
    "internal_referral": AppealStatus.ASSIGNED,
    "in_progress": AppealStatus.IN_PROGRESS,
    "investigating": AppealStatus.IN_PROGRESS,
    "action_scheduled": AppealStatus.IN_PROGRESS,
    "processing": AppealStatus.IN_PROGRESS,
    "resolved": AppealStatus.RESOLVED,
    "fixed": AppealStatus.RESOLVED,
    "closed": AppealStatus.RESOLVED,
    "completed": AppealStatus.RESOLVED,
    "rejected": AppealStatus.REJECTED,
    "not_responsible": AppealStatus.REJECTED,
    "unable_to_fix": AppealStatus.REJECTED,
    "duplicate": AppealStatus.REJECTED,
    "no_further_action": AppealStatus.REJECTED,
    "reopened": AppealStatus.REOPENED,
}


def status_from_text(word: str) -> AppealStatus | None:
    """Huiyin's status for a backend's status word ("OPEN", "in progress", "FIXED" …), or None."""
    key = word.strip().lower().replace(" ", "_").replace("-", "_")
    return _STATUS_WORDS.get(key)
