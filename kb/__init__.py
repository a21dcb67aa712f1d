"""The knowledge base: "这事该找谁" — who handles a resident's matter in their community.

The core calls :func:`load_knowledge_base` once per process and then :meth:`KnowledgeBase.lookup` with
text already normalized by :func:`bot.nlu.normalize.normalize`. Data lives in ``kb/matters/*.yml``
(what residents ask and which party handles it) and ``kb/communities/*.yml`` (the real contacts of each
community); ``huiyin kb check`` validates both. See :mod:`kb.answer` for how an answer is worded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path
from threading import Lock

from kb.answer import Clarification, Contact, KBAnswer, render
from kb.check import validate
from kb.loader import load
from kb.model import CommunityProfile, Matter, Party
from kb.search import MAX_QUERY_CHARS, Hit, MatterIndex, party_key

__all__ = [
    "Clarification",
    "CommunityProfile",
    "Contact",
    "KBAnswer",
    "KnowledgeBase",
    "KnowledgeBaseError",
    "Matter",
    "load_knowledge_base",
]


# "我们楼没有物业" / "老小区没物业" / "物业早就撤了": the resident's estate has no property company, whatever
# the community profile says about the community's main estate.
_NO_PROPERTY = re.compile(
    r"(?:没有|没|无)(?:物业|物管)(?:公司|管理)?(?!费|的人|人员|来)|物业(?:早就|已经|都)?(?:撤了|跑了|撤场了)"
)
_NO_PROPERTY_SUFFIX = "+no_property"
_NO_PROPERTY_NOTE = "您说您所在的小区没有物业服务企业：这种情况一般由社区居委会（社区工作站）兜底或代管公共部位的管理和报修，以当地规定为准"


UNSURE_SCORE = 0.25
UNSURE_PARTY = 0.35
HOTLINE_MATTER = "contact_hotline"


class KnowledgeBaseError(Exception):
    """The knowledge base data is invalid; ``errors`` are the ``path:line: message`` lines."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        shown = "\n".join(self.errors[:20])
        more = f"\n… and {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
        super().__init__(
            f"invalid knowledge base ({len(self.errors)} errors; run `huiyin kb check`):\n{shown}{more}"
        )


class KnowledgeBase:
    """Matters, community profiles and the search index; immutable and safe to share between tasks."""

    def __init__(self, matters: Sequence[Matter], profiles: Sequence[CommunityProfile]) -> None:
        self._matters = {m.id: m for m in matters}
        self._profiles = {p.code: p for p in profiles}
        self._index = MatterIndex(list(self._matters.values()))
        self._rendered: dict[tuple[str, str], KBAnswer] = {}
        self._derived: dict[str, CommunityProfile] = {}
        self._lock = Lock()

    @classmethod
    def from_root(cls, root: Path | None = None) -> KnowledgeBase:
        """Load and validate the knowledge base under ``root`` (default: the shipped one).

        Raises :class:`KnowledgeBaseError` listing every problem if the data does not pass the check.
        """
        result = load(root)
        errors = validate(result)
        if errors:
            raise KnowledgeBaseError(errors)
        return cls([m.value for m in result.matters], [p.value for p in result.profiles])

    def lookup(self, normalized_text: str, community: str, *, ordinary: bool = False) -> KBAnswer | None:
        """The best-matching matter answered for ``community``, or None if no matter fits well enough;
        with ``ordinary``, never an emergency matter.

        Never raises on odd text (empty, emoji, garbage). Raises KeyError for an unknown community code.
        """
        profile = self.community(community)
        hit = self._index.search(normalized_text, ordinary=ordinary)
        if hit is None:
            return None
        if profile.property is not None and _NO_PROPERTY.search(normalized_text[:MAX_QUERY_CHARS]):
            profile = self._without_property(profile)
        return replace(self._render(hit.matter_id, profile), score=hit.score)

    def unsure(self, normalized_text: str, answer: KBAnswer) -> bool:
        """Whether ``answer`` (a :meth:`lookup` of ``normalized_text``) is too weak to name its party:
        a match below :data:`UNSURE_SCORE` whose first contact the party classifier does not back
        (below :data:`UNSURE_PARTY`). Emergencies are never unsure (their safety script comes first).

        On the development set no answer is that weak; on real written appeals (the supervision half)
        about one in ten such answers named a party that acted on the case.
        """
        if answer.emergency or answer.score >= UNSURE_SCORE:
            return False
        matter = self._matters[answer.matter_id]
        party = party_key(matter)
        return self._index.party_probabilities(normalized_text).get(party, 0.0) < UNSURE_PARTY

    def hotline_answer(self, community: str, score: float) -> KBAnswer | None:
        """The 12345 hotline's answer, marked :attr:`KBAnswer.unsure`, for a question the knowledge base
        cannot place; None when the knowledge base has no hotline matter."""
        try:
            hotline = self.answer(HOTLINE_MATTER, community)
        except KeyError:
            return None
        return replace(hotline, score=score, unsure=True)

    def answer(self, matter_id: str, community: str) -> KBAnswer:
        """The answer to a known matter (e.g. a clarify choice). KeyError for an unknown id or community."""
        return self._render(self.matter(matter_id).id, self.community(community))

    def matter(self, matter_id: str) -> Matter:
        return self._matters[matter_id]

    def matters(self) -> list[Matter]:
        return list(self._matters.values())

    def community(self, code: str) -> CommunityProfile:
        return self._profiles[code]

    def communities(self) -> list[CommunityProfile]:
        return list(self._profiles.values())

    def rank(self, normalized_text: str, k: int = 5) -> list[Hit]:
        """The ``k`` closest matters whatever their score (for evaluation and debugging)."""
        return self._index.rank(normalized_text, k)

    def _without_property(self, profile: CommunityProfile) -> CommunityProfile:
        """``profile`` as seen by a resident who says their estate has no property company (e.g. one
        building of an old estate): property duties go to the community, as in any such estate."""
        code = f"{profile.code}{_NO_PROPERTY_SUFFIX}"
        derived = self._derived.get(code)
        if derived is None:
            derived = profile.model_copy(
                update={
                    "code": code,
                    "property": None,
                    "property_fallback": Party.COMMUNITY,
                    "fallback_note": _NO_PROPERTY_NOTE,
                    "owners_committee": None,
                }
            )
            self._derived[code] = derived
        return derived

    def _render(self, matter_id: str, profile: CommunityProfile) -> KBAnswer:
        key = (matter_id, profile.code)
        cached = self._rendered.get(key)
        if cached is None:
            cached = render(self._matters[matter_id], profile)
            with self._lock:
                self._rendered[key] = cached
        return cached


@cache
def load_knowledge_base() -> KnowledgeBase:
    """The shipped knowledge base, loaded and checked once per process."""
    return KnowledgeBase.from_root()
