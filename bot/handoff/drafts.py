"""A half-finished appeal form and the staff who held its conversation.

While staff hold a conversation the bot is silent, so the resident's form stands still (its buttons and
answers are only recorded for staff). When staff give the conversation back, a form left half-finished
is *paused*: its state keeps everything collected, marked with :data:`PAUSED`, and the resident is asked
whether to go on (:data:`RESUME`) or drop it (:data:`DISCARD`); the turn handler
:mod:`bot.turn.handlers.draft` reads the answer. Staff may also file the appeal themselves from what
the conversation holds (:func:`appeal_from_conversation`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from bot.appeals.filing import appeal_from_form
from bot.db.repository import NewAppeal
from bot.dialog.slots import mask_personal
from bot.handoff.summary import ResidentLine, place_from
from bot.message import Button
from bot.nlu.normalize import normalize
from kb import KnowledgeBase

PAUSED = "paused"
"""The key of a dialog state that waits for the resident's answer to the offer to go on."""
RESUME = "/resume_form"
DISCARD = "/drop_form"

# The resident's latest substantive messages make the description when nothing better is given.
DESCRIPTION_LINES = 3
MAX_DESCRIPTION = 500
_SUBSTANTIVE = {"report", "ask_contact", "emergency", "other"}


def running_form(state: Mapping[str, Any] | None) -> bool:
    """Whether ``state`` is a form the resident was filling (a dialog that is not paused already)."""
    return bool(state and state.get("dialog") and PAUSED not in state)


def unfiled_form(state: Mapping[str, Any] | None) -> bool:
    """Whether ``state`` is a form whose appeal is still to be filed (running, or paused after a
    release), as opposed to one staff filed already."""
    if not state or not state.get("dialog") or not state.get("draft_key"):
        return False
    return not (state.get(PAUSED) or {}).get("filed")


def paused(state: Mapping[str, Any], reason: str, *, filed: str | None = None) -> dict[str, Any]:
    """``state`` paused after a release (``reason``); ``filed``: staff filed its appeal meanwhile."""
    info: dict[str, Any] = {"reason": reason, "at": time.time()}
    if filed:
        info["filed"] = filed
    return {**state, PAUSED: info}


def resumed(state: Mapping[str, Any]) -> dict[str, Any]:
    """A paused form running again, as if just answered (the time staff held it is not idle time)."""
    running = {k: v for k, v in state.items() if k != PAUSED}
    running["updated_at"] = time.time()
    return running


def offer_buttons(words: Any) -> tuple[Button, ...]:
    return (
        Button(words.get("handoff.resume_button"), RESUME),
        Button(words.get("handoff.discard_button"), DISCARD),
    )


def staff_draft_key(conversation_id: int, description: str) -> str:
    """The draft key of an appeal staff file from a conversation with ``description``: the same for a
    second click, another for another problem of the same conversation."""
    digest = hashlib.sha256(description.encode()).hexdigest()[:16]
    return f"staff:{conversation_id}:{digest}"


def draft_description(state: Mapping[str, Any], *, in_group: bool) -> str:
    """The form's description, short (and without phone or flat numbers in a group)."""
    description = str((state.get("slots") or {}).get("description") or "")
    if in_group:
        description = mask_personal(description)
    return description[:20]


def description_from_lines(lines: Sequence[ResidentLine]) -> str:
    """The resident's latest substantive messages (no commands, no one-word answers), oldest first."""
    picked = [
        line.text.strip()
        for line in lines
        if line.text and not line.text.startswith("/") and (line.intent or "other") in _SUBSTANTIVE
    ]
    picked = [t for t in picked if len(t) >= 4][-DESCRIPTION_LINES:]
    return "；".join(picked)[:MAX_DESCRIPTION]


def appeal_from_conversation(
    *,
    draft_key: str,
    description: str,
    draft: Mapping[str, Any] | None,
    lines: Sequence[ResidentLine],
    origin: Mapping[str, str],
    kb: KnowledgeBase,
    community_code: str,
) -> NewAppeal:
    """The appeal staff file from a conversation: ``description``, and the place, photos and phone of the
    half-finished form ``draft`` when there is one, else the place the resident's messages name."""
    slots: Mapping[str, Any] = (draft or {}).get("slots") or {}
    meta: Mapping[str, Any] = (draft or {}).get("meta") or {}
    place: dict[str, Any] = dict(slots.get("place") or {})
    if not place:
        place = dict(place_from([description, *(line.text for line in reversed(lines))]))
    facts = dict(meta)
    if not facts.get("kb"):
        try:
            answer = kb.lookup(normalize(description), community_code)
        except KeyError:  # a community without a profile
            answer = None
        if answer is not None:
            facts.update(
                category=answer.category,
                kb=answer.matter_id,
                party=answer.first_contact.party,
                party_sub=answer.first_contact.sub,
                urgent=bool(meta.get("urgent")) or answer.emergency,
            )
    return appeal_from_form(
        draft_key=draft_key, description=description, slots=slots, meta=facts, origin=origin, place=place
    )
