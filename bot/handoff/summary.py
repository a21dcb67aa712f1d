"""The automatic summary staff see before they read a transcript: who, where, what, and who is responsible.

Built from what the conversation already holds — the resident's messages, the half-filled appeal form
if there is one — and the knowledge base's first contact for the matter. Pure: no I/O, cheap enough to
recompute whenever the queue is shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bot.dialog.slots import mask_personal
from bot.nlu.base import EntityType
from bot.nlu.entities import extract_entities
from bot.nlu.normalize import normalize
from kb import KnowledgeBase

# Intents whose messages say what the matter is; greetings, thanks and button payloads do not.
_SUBSTANTIVE = {"report", "ask_contact", "emergency", "other", "status"}
_MAX_WHAT = 80


@dataclass(frozen=True, slots=True)
class Summary:
    """One line per question staff ask first. Empty strings where the conversation does not say."""

    who: str
    where: str
    what: str
    party: str  # party code (property, community, ...) of the first contact, or ""
    party_name: str  # the actual office or company, e.g. "幸福里物业服务中心"
    category: str
    urgent: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        return cls(
            who=str(data.get("who", "")),
            where=str(data.get("where", "")),
            what=str(data.get("what", "")),
            party=str(data.get("party", "")),
            party_name=str(data.get("party_name", "")),
            category=str(data.get("category", "")),
            urgent=bool(data.get("urgent", False)),
        )

    def one_line(self, *, masked: bool = False) -> str:
        """The summary in one line; ``masked``: phones and flats masked, for a group of staff."""
        where, what = (
            (mask_personal(self.where), mask_personal(self.what)) if masked else (self.where, self.what)
        )
        parts = [self.who, where, what, self.party_name and f"→ {self.party_name}"]
        return " · ".join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class ResidentLine:
    """A message of the resident's, as the summary needs it."""

    text: str
    intent: str | None


def place_text(building: str | None, unit: str | None, room: str | None, place: str | None) -> str:
    """A place as residents write it: "3栋2单元502", "3栋楼道", "地下车库"."""
    text = "".join(f"{v}{suffix}" for v, suffix in ((building, "栋"), (unit, "单元"), (room, "")) if v)
    if place and not room and place not in text:
        text += place
    return text


def summarize(
    *,
    who: str,
    lines: Sequence[ResidentLine],
    dialog_state: Mapping[str, Any] | None,
    kb: KnowledgeBase,
    community_code: str,
) -> Summary:
    """Who, where, what and the responsible party of a conversation.

    *What* is the appeal form's description when one is being filled, else the latest substantive
    message (the one most likely to be why the resident wants a person). *Where* comes from the form's
    place, else from the building/unit/room or place words in the resident's messages, latest first.
    """
    slots = (dialog_state or {}).get("slots") or {}
    what = str(slots.get("description") or "")
    if not what:
        for line in reversed(lines):
            if (line.intent or "other") in _SUBSTANTIVE and len(line.text.strip()) >= 4:
                what = line.text.strip()
                break
    if not what and lines:
        what = lines[-1].text.strip()
    what = what[:_MAX_WHAT]

    where = ""
    place = slots.get("place")
    if isinstance(place, Mapping):
        where = place_text(
            _s(place.get("building")), _s(place.get("unit")), _s(place.get("room")), _s(place.get("place"))
        ) or str(place.get("text") or "")
    if not where:
        where = _where_from(line.text for line in reversed(lines))

    party = party_name = category = ""
    urgent = False
    if what:
        try:
            answer = kb.lookup(normalize(what), community_code)
        except KeyError:  # a community without a profile: no party, still a summary
            answer = None
        if answer is not None:
            party, party_name = answer.first_contact.party, answer.first_contact.name
            category, urgent = answer.category, answer.emergency
    return Summary(
        who=who or "居民",
        where=where,
        what=what,
        party=party,
        party_name=party_name,
        category=category,
        urgent=urgent,
    )


def _where_from(texts: Iterable[str]) -> str:
    place = place_from(texts)
    return place_text(place.get("building"), place.get("unit"), place.get("room"), place.get("place"))


def place_from(texts: Iterable[str]) -> dict[str, str]:
    """The building, unit, room and place words of the first of ``texts`` that names a place (a room
    only with its building), as the appeal form's place slot holds them; empty when none does."""
    for text in texts:
        entities = extract_entities(normalize(text))
        found = {e.type: e.value for e in reversed(entities)}
        place = {
            "building": found.get(EntityType.BUILDING),
            "unit": found.get(EntityType.UNIT),
            "room": found.get(EntityType.ROOM) if EntityType.BUILDING in found else None,
            "place": found.get(EntityType.PLACE),
        }
        if any(place.values()):
            return {k: str(v) for k, v in place.items() if v}
    return {}


def _s(value: Any) -> str | None:
    return None if value in (None, "") else str(value)
