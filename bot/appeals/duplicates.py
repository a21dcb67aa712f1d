"""Duplicates, the way FixMyStreet treats nearby reports: before a new appeal is filed, look for an open
one in the same community, at the same place, about the same thing, from the last N days. The resident
may join it instead — they become a supporter, hear about its progress, and the backend is told
"+1, now N residents" — which helps the case more than a second case would.

"Same place": the same building (and unit, when both say), the same estate-wide place ("地下车库"), or
shared locations within 50 m. Never two different flats, never a place inside a building named without
its building ("电梯", "门口": whose?), never a resident's own home ("我家门口"). "Same thing": the descriptions share most of their
character pairs once addresses and filler are taken out (Dice coefficient), or somewhat so and the
knowledge base filed both under the same matter.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.appeals.access import is_supporter
from bot.appeals.status import lock_appeal, queue_for_city, record_note
from bot.db.models import OPEN_STATUSES, Appeal, AppealSupporter
from bot.db.repository import ConversationRef, Repository
from bot.db.repository.appeal_records import AppealRecords
from bot.dialog.spec import Responses
from bot.message import IncomingMessage
from bot.nlu.normalize import normalize

SIMILAR = 0.5  # Dice coefficient above which two descriptions are about the same thing
SIMILAR_SAME_MATTER = 0.25  # … when the knowledge base filed both under the same matter
NEAR_METRES = 50.0
CANDIDATES = 50

_ADDRESS = re.compile(
    r"[0-9零一二三四五六七八九十百两]+\s*(?:号楼|栋|幢|座|单元|楼|层|室|号|户)|[0-9]+|"
    r"[了的吗呢啊吧呀哦嘛啦着过]|麻烦|帮忙|请|一下|已经|好几天|几天|现在|还是|一直|我们|我家|这边|那边"
)


def _grams(text: str) -> set[str]:
    core = "".join(c for c in _ADDRESS.sub("", normalize(text)) if c.isalnum())
    if len(core) < 2:
        return {core} if core else set()
    return {core[i : i + 2] for i in range(len(core) - 1)}


def similarity(a: str, b: str) -> float:
    """How alike two descriptions are, 0..1 (Dice coefficient over character pairs)."""
    ga, gb = _grams(a), _grams(b)
    if not ga or not gb:
        return 0.0
    return 2 * len(ga & gb) / (len(ga) + len(gb))


# Places that only mean something together with a building: "the lift" of which building?
_IN_A_BUILDING = frozenset(
    {"门口", "家门口", "电梯", "楼道", "楼梯", "楼梯间", "走廊", "过道", "屋顶", "楼顶", "天台", "单元门",
     "楼下", "楼上", "阳台", "厨房", "卫生间", "家里", "室内", "窗户", "大堂", "门厅", "地下室", "管道井"}
)  # fmt: skip
# A description about the resident's own home ("我家", "他家门口"), not a shared place.
_HOME = re.compile(r"(?<!大)家(?!具|电|政)|户内|屋里|室内")


def _place_text(place: dict[str, Any]) -> str | None:
    text = place.get("place") or place.get("text")
    return re.sub(r"\s+", "", str(text)) if text else None


def _metres(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    try:
        lat1, lng1 = float(a["latitude"]), float(a["longitude"])
        lat2, lng2 = float(b["latitude"]), float(b["longitude"])
    except (KeyError, TypeError, ValueError):
        return None
    # Equirectangular approximation: exact enough within a residential estate.
    x = math.radians(lng2 - lng1) * math.cos(math.radians((lat1 + lat2) / 2))
    y = math.radians(lat2 - lat1)
    return 6_371_000 * math.hypot(x, y)


class Placed(Protocol):
    """What :func:`same_place` reads of an appeal: an :class:`Appeal`, or a row of its columns."""

    @property
    def description(self) -> str: ...
    @property
    def building(self) -> str | None: ...
    @property
    def unit(self) -> str | None: ...
    @property
    def room(self) -> str | None: ...
    @property
    def place(self) -> str | None: ...
    @property
    def location(self) -> dict[str, Any]: ...


def same_place(place: dict[str, Any], appeal: Placed, description: str = "") -> bool:
    """Whether the place of a new appeal (the dialog's ``place`` slot, and its description) is where
    ``appeal`` is."""
    room = place.get("room")
    if (_HOME.search(description) or _HOME.search(appeal.description)) and not (
        room and appeal.room and str(room) == appeal.room
    ):
        return False
    if room and appeal.room and str(room) != appeal.room:
        return False
    building = place.get("building")
    if building and appeal.building:
        if str(building) != appeal.building:
            return False
        unit = place.get("unit")
        return not (unit and appeal.unit and str(unit) != appeal.unit)
    if building or appeal.building:
        return False
    text = _place_text(place)
    if text and appeal.place and text == re.sub(r"\s+", "", appeal.place):
        return text not in _IN_A_BUILDING
    location = place.get("location")
    if location and appeal.location:
        distance = _metres(location, appeal.location)
        return distance is not None and distance <= NEAR_METRES
    return False


async def find_duplicate(
    session: AsyncSession,
    *,
    community_id: int,
    place: dict[str, Any],
    description: str,
    kb_matter_id: str | None,
    window_days: int,
) -> Appeal | None:
    """The open appeal a new one would duplicate, or None. The most alike wins.

    The candidates are read as the few columns the comparison needs, not as entities: every confirmation
    pays for this query, and building up to :data:`CANDIDATES` whole appeals cost more than the rest of
    the turn. Only the match, when there is one, is loaded whole."""
    if window_days <= 0 or not place:
        return None
    candidates = await AppealRecords(session).duplicate_candidates(
        community_id,
        window_days=window_days,
        limit=CANDIDATES,
        building=str(place["building"]) if place.get("building") else None,
        with_place=bool(_place_text(place)) and not place.get("location"),
    )
    best: tuple[float, int] | None = None
    for candidate in candidates:
        if not same_place(place, candidate, description):
            continue
        score = similarity(description, candidate.description)
        same_matter = kb_matter_id is not None and kb_matter_id == candidate.kb_matter_id
        if score >= SIMILAR or (same_matter and score >= SIMILAR_SAME_MATTER):
            if best is None or score > best[0]:
                best = (score, candidate.id)
    return await session.get(Appeal, best[1]) if best else None


@dataclass(frozen=True, slots=True)
class Joined:
    """The outcome of joining: ``added`` False when the resident was already on it (or reported it)."""

    appeal: Appeal | None
    added: bool
    supporters: int = 0


async def join_here(
    repo: Repository, public_id: str, ref: ConversationRef, message: IncomingMessage, words: Responses
) -> Joined:
    """:func:`join` for the resident of ``ref``, who hears of the appeal where ``message`` came from."""
    return await join(
        repo,
        public_id,
        ref.person_id,
        community_id=ref.community_id,
        origin_platform=message.platform.value,
        origin_chat=message.chat_id,
        origin_chat_type=message.chat_type.value,
        words=words,
    )


async def join(
    repo: Repository,
    public_id: str,
    person_id: int,
    *,
    community_id: int,
    origin_platform: str,
    origin_chat: str,
    origin_chat_type: str,
    words: Responses,
) -> Joined:
    """Make ``person_id`` a supporter of the open appeal ``public_id`` of their community
    ``community_id`` and tell the backend "+1". The caller has checked that the appeal was offered to them
    (a supporter hears of its progress).

    Returns ``Joined(None, False)`` when it cannot be joined: missing, closed meanwhile, or another
    community's (a supporter's status updates would reach across communities). Safe to repeat: a second
    join of the same resident adds nothing and queues nothing.
    """
    found = await repo.appeals.appeal_by_public_id(public_id)
    if found is None or found.community_id != community_id:
        return Joined(None, False)
    appeal = await lock_appeal(repo.session, found.id)
    if appeal is None or appeal.status not in {s.value for s in OPEN_STATUSES}:
        return Joined(None, False)
    if appeal.reporter_id == person_id:
        return Joined(appeal, False, appeal.supporters)
    # The appeal row is locked, so joins of one appeal are serialized: look, then add.
    if await is_supporter(repo.session, appeal.id, person_id):
        return Joined(appeal, False, appeal.supporters)
    repo.session.add(
        AppealSupporter(
            appeal_id=appeal.id,
            person_id=person_id,
            origin_platform=origin_platform,
            origin_chat=origin_chat,
            origin_chat_type=origin_chat_type,
        )
    )
    appeal.supporters += 1
    text = words.get("duplicate.backend_note", supporters=appeal.supporters)
    record_note(
        repo.session,
        appeal,
        kind="supporter",
        note=text,
        actor=f"resident:{person_id}",
        payload={"supporters": appeal.supporters},
    )
    queue_for_city(  # the city's backend hears of supporters of its cases
        repo.session,
        appeal,
        "update",
        f"{appeal.public_id}:support:{person_id}",
        {"kind": "supporter", "supporters": appeal.supporters, "text": text},
    )
    return Joined(appeal, True, appeal.supporters)
