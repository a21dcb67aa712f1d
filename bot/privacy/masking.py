"""The one rule for text bound for a residents' group: whatever the bot or staff say there, phone, flat,
ID-card and licence-plate numbers are masked (:func:`bot.dialog.slots.mask_personal`), except the numbers
and places the community publishes — its offices' phones and addresses in the knowledge base, which the
bot's answers exist to give. The full text goes only to private chats and to people entitled to it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from bot.dialog.slots import mask_personal
from kb import KnowledgeBase

_PUBLISHED_FIELDS = frozenset({"phone", "emergency_phone", "location"})
# Private-use characters: never in a message, never read as a digit by the masking rule.
_OPEN, _CLOSE, _BASE = "\ue000", "\ue001", 0xE100


class GroupMasker:
    def __init__(self, published: Iterable[str] = ()) -> None:
        kept = sorted({p.strip() for p in published if p and p.strip()}, key=len, reverse=True)
        # Only where it stands whole: 12345 the hotline is kept, the 12345 inside 13812345678 or 粤B12345
        # is part of a number that must be masked.
        self._patterns = [(p, re.compile(rf"(?<![0-9A-Za-z]){re.escape(p)}(?![0-9A-Za-z])")) for p in kept]

    @classmethod
    def from_kb(cls, kb: KnowledgeBase) -> GroupMasker:
        """Every phone number and office address of the knowledge base's communities."""
        found: list[str] = []
        for profile in kb.communities():
            _collect(profile.model_dump(), found)
        return cls(found)

    def __call__(self, text: str) -> str:
        kept: dict[str, str] = {}
        for i, (published, whole) in enumerate(self._patterns):
            if published in text:
                token = f"{_OPEN}{chr(_BASE + i)}{_CLOSE}"
                replaced = whole.sub(token, text)
                if replaced != text:
                    text = replaced
                    kept[token] = published
        masked = mask_personal(text)
        for token, published in kept.items():
            masked = masked.replace(token, published)
        return masked


def _collect(value: Any, found: list[str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in _PUBLISHED_FIELDS and isinstance(inner, str):
                found.append(inner)
            else:
                _collect(inner, found)
    elif isinstance(value, list):
        for inner in value:
            _collect(inner, found)
