"""The default understanding backend: a small linear model trained from ``dialogs/nlu/*.yml`` in-process.

How it works
------------
* **Training data** is the Rasa 3.x NLU YAML in ``dialogs/nlu`` (the same files the optional Rasa service
  trains on). Entity markup (``[三号楼]{"entity": "building", "value": "3"}``, ``[502](room)``) is stripped
  to get the plain text; entities themselves come from :func:`bot.nlu.entities.extract_entities`.
* **Features** are character 1–4-grams of the normalized text (Chinese has no spaces, and residents'
  typos and 谐音字 keep most n-grams intact), with digit runs folded to ``0``, start/end markers and a
  length bucket. TF-IDF (sublinear tf, L2) weighted.
* **Model**: L2-regularized multinomial logistic regression, whose probabilities are the confidences,
  fitted by a small L-BFGS in numpy (:func:`bot.nlu.classifier.train`): the same optimum as scikit-learn's
  ``LogisticRegression``, without its import cost (over a second and ~70 MB in the bot process).
* **Rules on top**, because some mistakes cost more than others: a keyword rule for emergencies (fire,
  smoke, gas smell, someone trapped, injured or attacked *now*; hypothetical or past mentions such as
  "万一着火", "上个月食物中毒进了医院" are left to the model), an exact rule for short cancel words
  (取消 / 算了 / 不报了), and a rule for an outright "who handles this / what is the number" question.
  When the model alone says "emergency" (no danger word at all) but the knowledge base plainly knows the
  message as an ordinary matter, or the danger is told as reported, past, hypothetical, a nuisance or a
  request for safety equipment (:func:`bot.nlu.rules.told_not_live`: "听说隔壁小区着火了", "楼道装监控"),
  it is a report or a question instead. Only the start of a long message can tell a live danger.
* **Inference** is a few dictionary look-ups and one small numpy product (~0.1 ms a message).
* **Cache**: those arrays are saved as ``<data_dir>/cache/nlu-embedded-<hash>.npz`` (no pickle), keyed by
  the training files, :data:`bot.nlu.features.FEATURE_VERSION` and the regularization. A missing or
  unreadable cache means training again (about a second of CPU).

The parts live in :mod:`bot.nlu.training_data`, :mod:`bot.nlu.features`, :mod:`bot.nlu.classifier` (model,
training, cache) and :mod:`bot.nlu.rules`; this module is the backend that puts them together, and
re-exports their public names.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import structlog

from bot.nlu.base import Entity, Intent, IntentScore, NLUBackend, Understanding
from bot.nlu.classifier import REGULARIZATION_C, LinearModel, cache_key, load_or_train, train
from bot.nlu.entities import extract_entities
from bot.nlu.features import FEATURE_VERSION, MEANINGFUL, features
from bot.nlu.normalize import normalize
from bot.nlu.rules import (
    ASK_OVERRIDES,
    EMERGENCY_PATTERNS,
    HELP,
    asks_who_to_contact,
    emergency_kind,
    is_short_cancel,
    told_not_live,
)
from bot.nlu.training_data import (
    AnnotatedEntity,
    TrainingExample,
    load_training_data,
    strip_markup,
    training_data_hash,
    training_dir,
)
from bot.settings import Settings

__all__ = [  # the backend, and the names of the model, data and rules it was built from
    "CLEAR_MATTER_SCORE",
    "EMERGENCY_PATTERNS",
    "FEATURE_VERSION",
    "HELP",
    "LOW_CONFIDENCE",
    "REGULARIZATION_C",
    "RULE_CONFIDENCE",
    "SHORT_CACHE_SIZE",
    "SHORT_TEXT_CHARS",
    "AnnotatedEntity",
    "EmbeddedNLU",
    "LinearModel",
    "MatterLookup",
    "TrainingExample",
    "asks_who_to_contact",
    "build",
    "cache_key",
    "create",
    "emergency_kind",
    "features",
    "is_short_cancel",
    "load_or_train",
    "load_training_data",
    "shipped_matter_lookup",
    "strip_markup",
    "train",
    "training_data_hash",
    "training_dir",
]

log = structlog.get_logger()

LOW_CONFIDENCE = 0.05
"""Confidence reported for input with nothing to understand (empty, only emoji, binary garbage)."""

RULE_CONFIDENCE = 0.95
"""Confidence floor when a high-precision rule decides the intent."""

MatterLookup = Callable[[str], tuple[float, bool] | None]
"""Normalized text → (similarity, is an emergency matter) of the closest knowledge-base matter, or None."""

CLEAR_MATTER_SCORE = 0.5
"""A knowledge-base match this similar says plainly what a message is about (see kb/search.py: ≥ 0.5 is
a confident match)."""

# Words that may signal danger even without the strict emergency words: while any is present, the
# model's "emergency" stands (recall first).
_DANGER_HINT = re.compile(
    r"火|烟|烧|爆|煤气|燃气|天然气|漏气|伤|血|晕|昏|疼|痛|摔|倒下|倒在|呼吸|抽筋|救|紧急|急救|很急|快来|"
    r"刀|枪|棍|打|抢|砸|威胁|跟着|困|出不来|不动了|危险|报警|110|119|120"
)


SHORT_TEXT_CHARS = 12
"""Messages up to this long have their understanding cached (see :class:`EmbeddedNLU`)."""
SHORT_CACHE_SIZE = 4096  # a few hundred kB at most


def shipped_matter_lookup(normalized: str) -> tuple[float, bool] | None:
    """:data:`MatterLookup` over the shipped knowledge base (loaded once per process, on first use)."""
    from kb import load_knowledge_base  # here, not at import: tests and tools use the model without it

    knowledge_base = load_knowledge_base()
    hits = knowledge_base.rank(normalized, 1)
    if not hits:
        return None
    return hits[0].score, knowledge_base.matter(hits[0].matter_id).emergency


# --- the backend -----------------------------------------------------------------------------------


class EmbeddedNLU:
    """The in-process :class:`~bot.nlu.base.NLUBackend`. Build it with :func:`create`."""

    name = "embedded"

    def __init__(
        self,
        model: LinearModel,
        *,
        origin: str = "trained",
        matters: MatterLookup | None = shipped_matter_lookup,
    ) -> None:
        self.model = model
        self.origin = origin  # "cache" or "trained": how this instance got its model
        # Consulted only when the model alone says "emergency" (see _understand); None switches that off.
        self.matters = matters
        # Short messages repeat: buttons' payloads, 跳过, 不留, 确认, 好的, 谢谢. Their understanding is the
        # same every time (it depends on the text alone, and Understanding is immutable), so it is kept.
        self._short = lru_cache(maxsize=SHORT_CACHE_SIZE)(self._understand_safely)

    async def parse(self, text: str) -> Understanding:
        return self.understand(text)

    async def health(self) -> str | None:
        return None

    def understand(self, text: str) -> Understanding:
        """Synchronous :meth:`parse` (the CLI and the benchmark call it directly). Never raises."""
        if isinstance(text, str) and len(text) <= SHORT_TEXT_CHARS:
            return self._short(text)
        return self._understand_safely(text)

    def _understand_safely(self, text: str) -> Understanding:
        try:
            return self._understand(text)
        except Exception as exc:  # the contract: odd input gives OTHER, never an exception
            # By class only: an exception's message may quote the resident's text (UnicodeError does).
            log.warning("embedded nlu failed on a message", error=type(exc).__name__, chars=len(text or ""))
            return _unknown("")

    def _understand(self, text: str) -> Understanding:
        if not isinstance(text, str):
            text = str(text)
        normalized = normalize(text)
        if not MEANINGFUL.search(normalized):
            return _unknown(normalized)
        entities: tuple[Entity, ...] = extract_entities(normalized)
        probs = self.model.probabilities(features(normalized))
        ranking = [IntentScore(c, float(p)) for c, p in zip(self.model.classes, probs, strict=True)]
        ranking.sort(key=lambda s: s.confidence, reverse=True)
        decided: Intent | None = None
        if emergency_kind(normalized) is not None:
            decided = Intent.EMERGENCY
        elif is_short_cancel(normalized):
            decided = Intent.CANCEL
        elif ranking[0].name in ASK_OVERRIDES and asks_who_to_contact(normalized):
            decided = Intent.ASK_CONTACT
        if decided is not None and ranking[0].name is not decided:
            current = next(s for s in ranking if s.name is decided)
            promoted = IntentScore(decided, max(current.confidence, RULE_CONFIDENCE))
            ranking = [promoted, *(s for s in ranking if s.name is not decided)]
        elif decided is None and ranking[0].name is Intent.EMERGENCY and self._plainly_not_urgent(normalized):
            # No danger word, and the knowledge base knows the message as an ordinary matter ("有人遛狗不牵绳
            # 把孩子吓哭了", "举报有人聚众赌博"), or the danger is told as not happening now ("听说隔壁小区着火
            # 了", "万一着火怎么办"): a report or a question, not a call for 110/119/120.
            instead = Intent.ASK_CONTACT if asks_who_to_contact(normalized) else _report_or_question(ranking)
            current = next(s for s in ranking if s.name is instead)
            swapped = IntentScore(instead, ranking[0].confidence)
            demoted = IntentScore(Intent.EMERGENCY, current.confidence)
            rest = (s for s in ranking[1:] if s.name is not instead)
            ranking = [swapped, *sorted((demoted, *rest), key=lambda s: s.confidence, reverse=True)]
        return Understanding(
            text=normalized, intent=ranking[0], entities=entities, ranking=tuple(ranking), backend=self.name
        )

    def _plainly_not_urgent(self, normalized: str) -> bool:
        """Whether a message the model calls an emergency tells its danger as not happening now
        (:func:`~bot.nlu.rules.told_not_live`), or is, by the knowledge base, an ordinary matter and has no
        word that could signal danger."""
        if told_not_live(normalized):
            return True
        if self.matters is None or _DANGER_HINT.search(normalized):
            return False
        found = self.matters(normalized)
        return found is not None and found[0] >= CLEAR_MATTER_SCORE and not found[1]


def _report_or_question(ranking: list[IntentScore]) -> Intent:
    """Whichever of report and ask_contact the model ranks higher."""
    return next(s.name for s in ranking if s.name in (Intent.REPORT, Intent.ASK_CONTACT))


def _unknown(normalized: str) -> Understanding:
    score = IntentScore(Intent.OTHER, LOW_CONFIDENCE)
    return Understanding(text=normalized, intent=score, ranking=(score,), backend=EmbeddedNLU.name)


def build(cache_dir: Path | None) -> EmbeddedNLU:
    """Load or train synchronously (for the CLI and tests); see :func:`create`."""
    started = time.perf_counter()
    model, origin = load_or_train(cache_dir)
    log.info(
        "embedded nlu ready",
        origin=origin,
        features=len(model.vocabulary),
        seconds=round(time.perf_counter() - started, 3),
    )
    return EmbeddedNLU(model, origin=origin)


async def create(settings: Settings) -> NLUBackend:
    """Registry factory: the embedded backend, cached under ``<data_dir>/cache``."""
    return await asyncio.to_thread(build, settings.data_dir / "cache")
