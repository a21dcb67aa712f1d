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
  fitted by a small L-BFGS in numpy (:func:`train`): the same optimum as scikit-learn's
  ``LogisticRegression``, without its import cost (over a second and ~70 MB in the bot process).
* **Rules on top**, because some mistakes cost more than others: a keyword rule for emergencies (fire,
  smoke, gas smell, someone trapped, injured or attacked *now*; hypothetical or past mentions such as
  "万一着火", "上个月食物中毒进了医院" are left to the model), an exact rule for short cancel words
  (取消 / 算了 / 不报了), and a rule for an outright "who handles this / what is the number" question.
  When the model alone says "emergency" (no danger word at all) but the knowledge base plainly knows the
  message as an ordinary matter, it is a report or a question instead.
* **Inference** is a few dictionary look-ups and one small numpy product (~0.1 ms a message).
* **Cache**: those arrays are saved as ``<data_dir>/cache/nlu-embedded-<hash>.npz`` (no pickle), keyed by
  the training files, :data:`FEATURE_VERSION` and the regularization. A missing or unreadable cache means
  training again (about a second of CPU).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import structlog
import yaml

from bot.nlu.base import Entity, Intent, IntentScore, NLUBackend, Understanding
from bot.nlu.entities import extract_entities
from bot.nlu.logreg import Objective, lbfgs
from bot.nlu.normalize import normalize
from bot.settings import Settings

log = structlog.get_logger()

FEATURE_VERSION = "3"
"""Bump when :func:`features` or the training recipe changes, so stale caches are not reused."""

LOW_CONFIDENCE = 0.05
"""Confidence reported for input with nothing to understand (empty, only emoji, binary garbage)."""

RULE_CONFIDENCE = 0.95
"""Confidence floor when a high-precision rule decides the intent."""

_MAX_FEATURE_CHARS = 300  # the start of a long message says what it is about; keeps p99 flat

FloatArray = npt.NDArray[np.float64]


# --- training data ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnnotatedEntity:
    """An entity as annotated in the training data (offsets into the stripped, un-normalized text)."""

    type: str
    value: str
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class TrainingExample:
    text: str  # markup stripped, not normalized
    intent: Intent
    entities: tuple[AnnotatedEntity, ...]
    source: str  # "file.yml:line"


# [text](type) or [text]{"entity": "type", "value": "canonical"}
_MARKUP = re.compile(r"\[(?P<text>[^\[\]]+)\](?:\((?P<type>[a-z_]+)\)|(?P<json>\{[^{}]*\}))")


def strip_markup(example: str) -> tuple[str, tuple[AnnotatedEntity, ...]]:
    """Plain text and entities of one Rasa training example. Raises ValueError on malformed markup."""
    parts: list[str] = []
    entities: list[AnnotatedEntity] = []
    pos = 0
    length = 0
    for m in _MARKUP.finditer(example):
        before = example[pos : m.start()]
        parts.append(before)
        length += len(before)
        span = m["text"]
        if m["type"]:
            kind, value = m["type"], span
        else:
            spec = json.loads(m["json"])
            if not isinstance(spec, dict) or not isinstance(spec.get("entity"), str):
                raise ValueError(f"entity annotation without 'entity': {m[0]}")
            kind = spec["entity"]
            value = str(spec.get("value", span))
        entities.append(AnnotatedEntity(kind, value, span, length, length + len(span)))
        parts.append(span)
        length += len(span)
        pos = m.end()
    parts.append(example[pos:])
    text = "".join(parts)
    if "](" in text or "]{" in text:
        raise ValueError(f"unparsed entity markup in {example!r}")
    return text, tuple(entities)


def training_dir() -> Traversable:
    """``dialogs/nlu`` as shipped (package data), wherever the package is installed."""
    return resources.files("dialogs").joinpath("nlu")


def _training_files(directory: Traversable | Path | None) -> list[Traversable | Path]:
    root = directory if directory is not None else training_dir()
    return sorted((f for f in root.iterdir() if f.name.endswith((".yml", ".yaml"))), key=lambda f: f.name)


def load_training_data(directory: Traversable | Path | None = None) -> list[TrainingExample]:
    """Every example in the Rasa-format YAML files of ``directory`` (default: the shipped data).

    Raises ValueError naming the file on anything that is not valid Rasa 3.x NLU data with known intents.
    """
    examples: list[TrainingExample] = []
    for file in _training_files(directory):
        text = file.read_text(encoding="utf-8")
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{file.name}: invalid YAML: {exc}") from exc
        if (
            not isinstance(doc, dict)
            or str(doc.get("version")) != "3.1"
            or not isinstance(doc.get("nlu"), list)
        ):
            raise ValueError(f'{file.name}: expected Rasa NLU data: version: "3.1" and an nlu: list')
        line_of: dict[str, int] = {}
        for number, line_text in enumerate(text.splitlines(), start=1):
            line_of.setdefault(line_text.strip(), number)
        for block in doc["nlu"]:
            if (
                not isinstance(block, dict)
                or "intent" not in block
                or not isinstance(block.get("examples"), str)
            ):
                raise ValueError(f"{file.name}: every nlu item needs intent: and examples: |")
            try:
                intent = Intent(block["intent"])
            except ValueError:
                raise ValueError(f"{file.name}: unknown intent {block['intent']!r}") from None
            for raw in block["examples"].splitlines():
                if not raw.strip():
                    continue
                if not raw.startswith("- "):
                    raise ValueError(f"{file.name}: example lines start with '- ': {raw!r}")
                example = raw[2:].strip()
                line = line_of.get(raw.strip(), 0)
                try:
                    plain, entities = strip_markup(example)
                except ValueError as exc:
                    raise ValueError(f"{file.name}:{line}: {exc}") from None
                examples.append(TrainingExample(plain, intent, entities, f"{file.name}:{line}"))
    return examples


def training_data_hash(directory: Traversable | Path | None = None) -> str:
    digest = hashlib.sha256()
    for file in _training_files(directory):
        digest.update(file.name.encode())
        digest.update(b"\0")
        digest.update(file.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


# --- features --------------------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s\W_]+")  # punctuation and spaces: one boundary
_DIGITS = re.compile(r"\d+")
_LENGTH_BUCKETS = (2, 4, 8, 16, 32)


def features(normalized: str) -> list[str]:
    """The feature strings of one normalized message (training and inference share this)."""
    text = _DIGITS.sub("0", _SEPARATORS.sub(" ", normalized[:_MAX_FEATURE_CHARS])).strip()
    compact = text.replace(" ", "")
    bucket = next((b for b in _LENGTH_BUCKETS if len(compact) <= b), 99)
    padded = f"^{text}$"
    grams = [f"#len{bucket}"]
    n = len(padded)
    for size in (1, 2, 3, 4):
        for i in range(n - size + 1):
            gram = padded[i : i + size]
            if gram.strip():
                grams.append(gram)
    return grams


# --- the linear model ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinearModel:
    """A fitted TF-IDF + multinomial logistic regression, as plain arrays."""

    classes: tuple[Intent, ...]
    vocabulary: dict[str, int]
    idf: FloatArray  # (n_features,)
    coef_t: FloatArray  # (n_features, n_classes)
    intercept: FloatArray  # (n_classes,)

    def probabilities(self, grams: Iterable[str]) -> FloatArray:
        """Class probabilities for one message's feature strings (see :func:`features`)."""
        counts: dict[int, int] = {}
        vocab = self.vocabulary
        for gram in grams:
            idx = vocab.get(gram)
            if idx is not None:
                counts[idx] = counts.get(idx, 0) + 1
        if not counts:
            logits = self.intercept
        else:
            idxs = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
            tf = np.fromiter(
                (1.0 + math.log(c) for c in counts.values()), dtype=np.float64, count=len(counts)
            )
            weights = tf * self.idf[idxs]
            weights /= math.sqrt(float((weights * weights).sum()))
            # Element-wise products and sums, not ``@``: BLAS may wake its thread pool for a product
            # this small, which costs more than the product and shows up as p99 latency.
            logits = (self.coef_t[idxs] * weights[:, None]).sum(axis=0) + self.intercept
        exp = np.exp(logits - logits.max())
        result: FloatArray = exp / exp.sum()
        return result

    def save(self, path: Path) -> None:
        """Write atomically, so a crash or a concurrent start never leaves half a cache behind."""
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(
                    fh,
                    classes=np.array([c.value for c in self.classes]),
                    vocabulary=np.array(keys),
                    idf=self.idf,
                    coef_t=self.coef_t,
                    intercept=self.intercept,
                )
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> LinearModel:
        """Read a cache written by :meth:`save`; raises on anything unexpected."""
        with np.load(path, allow_pickle=False) as data:
            classes = tuple(Intent(str(c)) for c in data["classes"])
            keys = [str(k) for k in data["vocabulary"]]
            idf = np.asarray(data["idf"], dtype=np.float64)
            coef_t = np.ascontiguousarray(data["coef_t"], dtype=np.float64)
            intercept = np.asarray(data["intercept"], dtype=np.float64)
        n_features, n_classes = len(keys), len(classes)
        if (
            idf.shape != (n_features,)
            or coef_t.shape != (n_features, n_classes)
            or intercept.shape != (n_classes,)
            or len(set(keys)) != n_features
        ):
            raise ValueError(f"inconsistent model arrays in {path}")
        return cls(classes, {k: i for i, k in enumerate(keys)}, idf, coef_t, intercept)


REGULARIZATION_C = 10.0
"""Inverse L2 strength, as scikit-learn's ``LogisticRegression(C=...)`` (chosen by cross-validation on the
training data, see bench/nlu_bench.py --cv)."""


def train(examples: Sequence[TrainingExample], *, c: float = REGULARIZATION_C) -> LinearModel:
    """Fit TF-IDF (smooth idf, sublinear tf, L2 rows) + L2-regularized multinomial logistic regression."""
    docs: list[list[str]] = []
    labels: list[Intent] = []
    for example in examples:
        normalized = normalize(example.text)
        if _MEANINGFUL.search(normalized):  # nothing to learn from an emoji-only example
            docs.append(features(normalized))
            labels.append(example.intent)
    classes = tuple(sorted(set(labels), key=lambda i: i.value))
    if len(classes) < 2:
        raise ValueError("training data needs examples of at least two intents")
    doc_freq: Counter[str] = Counter()
    for doc in docs:
        doc_freq.update(set(doc))
    keys = sorted(doc_freq)
    vocabulary = {k: i for i, k in enumerate(keys)}
    n = len(docs)
    idf = np.array([math.log((1 + n) / (1 + doc_freq[k])) + 1.0 for k in keys])
    rows, cols, vals = [], [], []
    for r, doc in enumerate(docs):
        counts = Counter(vocabulary[g] for g in doc)
        ids = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
        weights = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * idf[ids]
        weights /= math.sqrt(float((weights * weights).sum()))
        rows.append(np.full(len(ids), r, dtype=np.intp))
        cols.append(ids)
        vals.append(weights)
    class_index = {cls: i for i, cls in enumerate(classes)}
    objective = Objective(
        np.concatenate(rows),
        np.concatenate(cols),
        np.concatenate(vals),
        np.array([class_index[label] for label in labels], dtype=np.intp),
        len(keys),
        len(classes),
        c,
    )
    theta = lbfgs(objective, np.zeros(objective.size))
    kv = len(classes) * len(keys)
    return LinearModel(
        classes=classes,
        vocabulary=vocabulary,
        idf=idf,
        coef_t=np.ascontiguousarray(theta[:kv].reshape(len(classes), len(keys)).T),
        intercept=theta[kv:].copy(),
    )


def cache_key(directory: Traversable | Path | None = None) -> str:
    digest = hashlib.sha256(f"{training_data_hash(directory)}|{FEATURE_VERSION}|{REGULARIZATION_C}".encode())
    return digest.hexdigest()[:20]


def load_or_train(
    cache_dir: Path | None, directory: Traversable | Path | None = None
) -> tuple[LinearModel, str]:
    """The model from the cache when it is there and readable, else freshly trained (and cached).

    Returns the model and where it came from (``"cache"`` or ``"trained"``), for logs and tests.
    """
    path = cache_dir / f"nlu-embedded-{cache_key(directory)}.npz" if cache_dir is not None else None
    if path is not None and path.exists():
        try:
            return LinearModel.load(path), "cache"
        except Exception as exc:  # a torn or foreign file must not stop the bot: retrain instead
            log.warning("embedded nlu cache unreadable, retraining", path=str(path), error=repr(exc))
    model = train(load_training_data(directory))
    if path is not None:
        try:
            model.save(path)
        except OSError as exc:  # read-only data dir: still serve, just slower next start
            log.warning("embedded nlu cache not written", path=str(path), error=repr(exc))
    return model, "trained"


# --- rules -----------------------------------------------------------------------------------------

HELP = "help"
"""The kind of a bare call for help ("救命"): an emergency of no particular kind (the last kind, so any
other danger word in the message says what it is)."""

# Danger happening now, by kind. Matched on normalized (simplified, lower-case) text.
EMERGENCY_PATTERNS: dict[str, re.Pattern[str]] = {
    "gas": re.compile(
        r"(?:煤气|燃气|天然气|液化气|煤汽)(?:味|的味道|中毒)|"
        r"(?:煤气|燃气|天然气|液化气|煤汽)[^。！？!?]{0,12}(?:漏了|漏气|在漏|泄漏|泄露)|"
        r"臭鸡蛋味|一氧化碳|煤气罐\S{0,3}(?:着火|爆)"
    ),
    "fire": re.compile(
        r"着火|著火|失火|起火|着了火|烧起来|烧着了|冒火|火苗|火光|发生火灾|爆炸|浓烟|冒黑烟|冒烟|"
        r"(?<!油)烟(?:好大|很大|太大|特别大)|全是烟|都是烟|火(?:往上窜|越烧越|蔓延)|火势|火花|"
        r"(?:电线|插座|开关|电箱|电表箱|配电箱|闸盒)[^。!?]{0,8}(?:焦味|糊味|烧焦)|"
        r"(?:焦味|糊味|烧焦)[^。!?]{0,8}(?:电线|插座|开关|电箱|电表箱|配电箱|闸盒)"
    ),
    "trapped": re.compile(
        r"困电梯|困在电梯|电梯困人|电梯里困|被困(?!扰)|关在电梯|卡在电梯|电梯里出不来|电梯\S{0,6}(?:往下掉|下坠|坠落|掉下去)|"
        r"电梯卡住了?\S{0,6}(?:里面有人|有人在里面)|卡在两层|"
        r"电梯[^。!?]{0,12}(?:卡|停在|不动|打不开|坏)[^。!?]{0,14}"
        r"(?:里面有(?:人|个|小孩|孩子|老人|我)|(?:人|孩子|小孩|老人|儿子|女儿|我妈|我爸|我)在里面|出不来)"
    ),
    "injury": re.compile(
        r"晕倒|昏倒|昏迷|晕过去|不省人事|流血|出血|血流|受伤了|受了伤|摔伤|骨折|摔下来|摔下去|坠楼|跳楼|"
        r"(?:人|孩子|小孩|老人|娃|宝宝)\S{0,6}(?:掉下去|掉下来|掉进)|掉进\S{0,4}(?:河|湖|池塘|水池|水里|井里)|"
        r"溺水|触电|没有呼吸|没呼吸|没了呼吸|抽搐|心脏病|一动不动|摔倒\S{0,6}起不来|砸伤|咬伤|"
        r"中毒|卡在防盗窗|锁在车里|反锁在车|倒地|倒在(?:地上|楼梯|路边|门口|楼道|家里|卫生间)|摔破|磕破|头破|"
        r"血止不住|止不住血|叫不醒|叫了不应|叫不应|误吞|误食|误喝|噎住|喘不上气|呼吸困难|口吐白沫|休克|中风|"
        r"脑梗|心梗|摔倒了|跌倒了|摔了一跤|吐血|咯血|呕血|(?<!气得)(?<!气的)(?<!吓得)(?<!吓的)说不出话|口齿不清|嘴歪|"
        r"口眼歪斜|半(?:边|个)(?:身子|身体|脸)\S{0,4}(?:动不了|不能动|没知觉|没感觉|发麻|麻了|没力气|使不上劲)|偏瘫"
    ),
    "violence": re.compile(
        r"打人|打架|斗殴|持刀|拿刀|拿着刀|动刀|砍人|杀人|伤人|家暴|打老婆|打老公|打孩子|抢劫|抢东西|撬门|撬锁|"
        r"入室|砸门|动手了|绑架|非礼|猥亵|撬\S{0,4}(?:门|锁)|砍刀|菜刀|抢包|抢手机|抢钱|尾随|一直跟着我|"
        r"跟踪我|打起来了|有人在偷|正在偷|在偷东西|小偷还在|小偷就在"
    ),
    # A bare call for help says that something is wrong, not what: the kind is left to the other words.
    HELP: re.compile(r"救命|救救我|快救人|快来救"),
}
# When is the danger? Residents tell stories ("上个月食物中毒进了医院", "老人心脏病突发，发现及时才没出大事")
# and ask hypotheticals ("万一着火怎么办") in the same words as a cry for help. Recall comes first: a danger
# word counts unless something *before it in the same sentence* moves it out of the present, or the
# message says the danger is over — and an explicit word of the present or of urgency wins back.
_HYPOTHETICAL_OR_PAST = re.compile(
    r"万一|如果|要是|假如|假设|一旦|上次|上回|去年|前年|曾经|发生过|差点|险些|听说|据说|"
    r"上个月|上个星期|上月|上周|上星期|上礼拜|几个月前|年前|那次|那回|那天|当时|小时候|到时候|哪天|要真|真要|若是|倘若|"
    r"真的?(?=[^。!?！？]{1,8}?(?:怎么办|咋办|怎么弄|拿什么|怎么逃|怎么跑|谁负责|谁来救|来不及|来得及))"
)
"""Hypothetical or clearly past: holds from where it appears to the end of the sentence. "真着火了怎么办"
(what if there really is a fire) asks about a risk; "现在真的着火了" is not a question and stays."""
_HABITUAL = re.compile(
    r"一(?:插|用|按|拔|接|充|通电)\S{0,3}就|一开(?:灯|电|空调|热水器|机|关)\S{0,2}就|每次|每回|老是|总是|经常|时常|常常|动不动|时不时|隔三差五|三天两头|有时(?!间)|偶尔"
)
"""A fault that keeps coming back ("插座一插就冒火星", "电梯老是困人"): a repair to report, not a fire or a
trapped person now — for those kinds only (a smell of gas, an injury or violence stay, recall first)."""
_HABITUAL_KINDS = frozenset({"fire", "trapped"})
_RECENT_PAST = re.compile(
    r"(?<![来到])之前|(?<![来到])以前|昨天|昨晚|昨日|前天|前晚|前几天|前些天|前阵子|前段时间"
)
"""Recent past: like the above, except for a gas smell, which is likely still there (recall first)."""
_PRESENT = re.compile(r"现在|正在|还在|刚刚|刚才|此刻|这会儿|今天|今晚|一直|开始|又在|越来越|仍然|依然")
"""A word of the present after a past marker brings the sentence back to now ("上次着火的地方现在又冒烟了")."""
_RISK_OR_FICTION = re.compile(
    r"隐患|防止|预防|演练|演习|培训|宣传|容易|可能会|会不会|报警器|报警按钮|报警铃|报警装置|警铃坏|"
    r"电影|新闻|视频|游戏|笑死|吓死我了哈"
)
"""A risk, a drill or a story on a screen: the whole clause is not an event."""
_OVER = re.compile(
    r"才没|没出事|没出大事|住院|进了医院|送医院了|送去医院了|送到医院了|出院|抢救过来|脱离危险|已经没事|"
    r"火灭了|火已经灭|扑灭了"
)
"""The outcome is told: the danger is over, whatever the tense (unless the message is also urgent)."""
_URGENT = re.compile(r"救命|快来人|快来|快救|赶紧来|赶快来|快报警|快打")
_ANY_DANGER = re.compile("|".join(f"(?:{p.pattern})" for p in EMERGENCY_PATTERNS.values()))
_NEGATED = re.compile(r"(?:没|没有|并没有|不是|未|无)$")
"""Just before a danger word: "也没着火", "不是着火" tell that there is none."""
_SENTENCE_END = re.compile(r"[。!?！？;；]+")
_CLAUSE_END = re.compile(r"[\s,，、:：]+")
_TENSES = (
    ("past", _HYPOTHETICAL_OR_PAST),
    ("recent", _RECENT_PAST),
    ("habit", _HABITUAL),
    ("present", _PRESENT),
)


def _dangers_now(sentence: str) -> set[str]:
    """Kinds of danger that ``sentence`` tells as happening now.

    Each danger word takes the tense of the latest tense marker before it in the sentence (present
    when there is none); a risk or fiction word anywhere in its clause, or a negation right before it,
    discards it.
    """
    markers = sorted((m.start(), tense) for tense, pattern in _TENSES for m in pattern.finditer(sentence))
    clause_ends = [m.start() for m in _CLAUSE_END.finditer(sentence)] + [len(sentence)]
    kinds: set[str] = set()
    for kind, pattern in EMERGENCY_PATTERNS.items():
        for m in pattern.finditer(sentence):
            tense = "present"
            for position, marker in markers:
                if position >= m.start():
                    break
                tense = marker
            if (
                tense == "past"
                or (tense == "recent" and kind != "gas")
                or (tense == "habit" and kind in _HABITUAL_KINDS)
            ):
                continue
            if _NEGATED.search(sentence, max(0, m.start() - 3), m.start()):
                continue
            clause_start = max((e for e in clause_ends if e < m.start()), default=0)
            clause_end = next(e for e in clause_ends if e >= m.end() or e == len(sentence))
            if _RISK_OR_FICTION.search(sentence, clause_start, clause_end):
                continue
            kinds.add(kind)
            break
    return kinds


def emergency_kind(normalized: str) -> str | None:
    """The kind of danger (gas, fire, trapped, injury, violence, or :data:`HELP` for a bare "救命") the
    text reports as happening now.

    None when there is no danger word, or only hypothetical, past or risk mentions ("万一着火",
    "上次困电梯", "上个月食物中毒进了医院", "才没出大事"). A later word of the present ("上次着火的地方现在又
    冒烟了") keeps the emergency, and an urgent call for help ("救命", "快来人") overrides "the danger is
    over". When several kinds are present the first kind in :data:`EMERGENCY_PATTERNS` order wins: gas
    before fire (a gas leak must not be answered with "call 119 and use water"), trapped before injury.
    """
    if _ANY_DANGER.search(normalized) is None:  # most messages: no danger word at all
        return None
    if _OVER.search(normalized) and not _URGENT.search(normalized):
        return None
    kinds: set[str] = set()
    for sentence in _SENTENCE_END.split(normalized):
        kinds |= _dangers_now(sentence)
    return next((kind for kind in EMERGENCY_PATTERNS if kind in kinds), None)


_CANCEL_WORDS = re.compile(
    r"^(?:好吧|那|那就|哎|唉|嗯|我)?(?:取消|算了|不报了|不用了|不弄了|不填了|不要了|撤回|撤销|退出|不需要了|不搞了|"
    r"别弄了|别报了|停止|不想报了|不报修了|不反映了)+(?:吧|了|啦|呀|谢谢|吧谢谢)?$"
)
_CANCEL_MAX_CHARS = 8


def is_short_cancel(normalized: str) -> bool:
    compact = _SEPARATORS.sub("", normalized)
    return len(compact) <= _CANCEL_MAX_CHARS and bool(_CANCEL_WORDS.match(compact))


# "Who handles it / whom do I call" said outright. A long message that describes the problem and ends
# with such a question ("……这种该找哪个部门") reads to the n-gram model like a report; the question decides.
# Precise on the training data (every match is ask_contact except one status question, which
# _ABOUT_MY_APPEAL excludes).
_WHO_TO_CONTACT = re.compile(
    r"找谁|该找|应该找|归谁|谁管|谁来管|谁负责|哪个部门|什么部门|哪个单位|找哪|能找哪|可以找|谁能帮|该向|向谁|向哪|归哪|"
    r"(?:去|到)哪(?:里|儿)?(?:举报|投诉|反映|申请|办|问|报|登记|咨询|交|缴|领)|打什么电话|打哪个电话|什么电话|"
    r"(?:电话|号码)(?:是)?多少|联系方式|怎么联系|谁来(?:处理|解决|修|管|负责|指导|帮|跟进)|(?:跟|和|同)谁(?:提|说|讲|反映|联系|投诉)|"
    r"(?:该|要|得|能)去?问谁|(?:该|能|可以|应该)去哪(?:里|儿)?(?:[\s。!?？]|$)"
)
_ABOUT_MY_APPEAL = re.compile(
    r"进度|到哪一步|处理到|我(?:的|提交的|报的|反映的)(?:诉求|投诉|工单|单子|问题)|工单|受理"
)
_ASK_OVERRIDES = frozenset({Intent.REPORT, Intent.OTHER, Intent.GREET})
"""Intents the who-to-contact rule may overrule (never emergency, status, human, thanks or cancel)."""


def asks_who_to_contact(normalized: str) -> bool:
    """Whether the text asks outright who handles something or how to reach them."""
    return _WHO_TO_CONTACT.search(normalized) is not None and _ABOUT_MY_APPEAL.search(normalized) is None


_MEANINGFUL = re.compile(r"[0-9a-z\u3400-\u9fff]")

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
            log.warning("embedded nlu failed on a message", error=repr(exc), chars=len(text or ""))
            return _unknown("")

    def _understand(self, text: str) -> Understanding:
        if not isinstance(text, str):
            text = str(text)
        normalized = normalize(text)
        if not _MEANINGFUL.search(normalized):
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
        elif ranking[0].name in _ASK_OVERRIDES and asks_who_to_contact(normalized):
            decided = Intent.ASK_CONTACT
        if decided is not None and ranking[0].name is not decided:
            current = next(s for s in ranking if s.name is decided)
            promoted = IntentScore(decided, max(current.confidence, RULE_CONFIDENCE))
            ranking = [promoted, *(s for s in ranking if s.name is not decided)]
        elif decided is None and ranking[0].name is Intent.EMERGENCY and self._plainly_not_urgent(normalized):
            # No danger word, and the knowledge base knows the message as an ordinary matter ("有人遛狗不牵绳
            # 把孩子吓哭了", "举报有人聚众赌博"): a report or a question, not a call for 110/119/120.
            instead = Intent.ASK_CONTACT if asks_who_to_contact(normalized) else Intent.REPORT
            current = next(s for s in ranking if s.name is instead)
            swapped = IntentScore(instead, ranking[0].confidence)
            demoted = IntentScore(Intent.EMERGENCY, current.confidence)
            rest = (s for s in ranking[1:] if s.name is not instead)
            ranking = [swapped, *sorted((demoted, *rest), key=lambda s: s.confidence, reverse=True)]
        return Understanding(
            text=normalized, intent=ranking[0], entities=entities, ranking=tuple(ranking), backend=self.name
        )

    def _plainly_not_urgent(self, normalized: str) -> bool:
        """Whether a message the model calls an emergency is, by the knowledge base, an ordinary matter
        and has no word that could signal danger."""
        if self.matters is None or _DANGER_HINT.search(normalized):
            return False
        found = self.matters(normalized)
        return found is not None and found[0] >= CLEAR_MATTER_SCORE and not found[1]


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
