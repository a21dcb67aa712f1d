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
  "万一着火" are left to the model), and an exact rule for short cancel words (取消 / 算了 / 不报了).
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import structlog
import yaml

from bot.nlu.base import Entity, Intent, IntentScore, NLUBackend, Understanding
from bot.nlu.entities import extract_entities
from bot.nlu.normalize import normalize
from bot.settings import Settings

log = structlog.get_logger()

FEATURE_VERSION = "2"
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


class _Objective:
    """Multinomial logistic loss + L2 (intercept not penalized) over a TF-IDF matrix in coordinate form.

    Written with numpy alone, with preallocated buffers and no BLAS calls: scikit-learn would cost over
    a second and ~70 MB just to import, and large temporary arrays and BLAS threads are slow on small
    shared machines. Parameters are one flat vector: ``W`` (classes × features, row-major) then ``b``.
    """

    def __init__(
        self,
        rows: npt.NDArray[np.intp],
        cols: npt.NDArray[np.intp],
        vals: FloatArray,
        labels: npt.NDArray[np.intp],
        n_features: int,
        n_classes: int,
        c: float,
    ) -> None:
        self.rows, self.cols, self.vals = rows, cols, vals
        self.n, self.v, self.k = len(labels), n_features, n_classes
        self.label_index = (labels, np.arange(len(labels)))
        self.inv_c = 1.0 / c
        self.size = n_classes * n_features + n_classes
        self._buf = np.empty(len(cols))
        self._z = np.empty((n_classes, len(labels)))
        self._wbuf = np.empty((n_classes, n_features))

    def __call__(self, theta: FloatArray, grad: FloatArray) -> float:
        """The loss at ``theta``; writes the gradient into ``grad``."""
        kv = self.k * self.v
        w = theta[:kv].reshape(self.k, self.v)
        gw = grad[:kv].reshape(self.k, self.v)
        buf, z = self._buf, self._z
        for c in range(self.k):  # z = W X^T
            np.take(w[c], self.cols, out=buf)
            np.multiply(buf, self.vals, out=buf)
            z[c] = np.bincount(self.rows, weights=buf, minlength=self.n)
        np.add(z, theta[kv:, None], out=z)
        np.subtract(z, z.max(axis=0), out=z)
        np.exp(z, out=z)
        total = z.sum(axis=0)
        loss = -float(np.log(z[self.label_index] / total).sum())
        np.divide(z, total, out=z)
        z[self.label_index] -= 1.0  # z is now dloss/dlogits
        for c in range(self.k):  # grad W = (P - Y) X
            np.take(z[c], self.rows, out=buf)
            np.multiply(buf, self.vals, out=buf)
            gw[c] = np.bincount(self.cols, weights=buf, minlength=self.v)
        grad[kv:] = z.sum(axis=1)
        np.multiply(w, w, out=self._wbuf)
        penalty = 0.5 * self.inv_c * float(self._wbuf.sum())
        np.multiply(w, self.inv_c, out=self._wbuf)
        gw += self._wbuf
        return loss + penalty


def _lbfgs(
    f: _Objective, x: FloatArray, *, memory: int = 7, max_iter: int = 300, rtol: float = 1e-7
) -> FloatArray:
    """Minimize ``f`` from ``x`` with L-BFGS and a backtracking (Armijo) line search; returns the argmin."""
    size = f.size
    g, gn, q, xn, tmp = (np.empty(size) for _ in range(5))
    s_hist, y_hist = np.empty((memory, size)), np.empty((memory, size))
    rho, alpha = np.empty(memory), np.empty(memory)

    def dot(a: FloatArray, b: FloatArray) -> float:
        np.multiply(a, b, out=tmp)
        return float(tmp.sum())

    fx = f(x, g)
    stored = 0
    for _ in range(max_iter):
        q[:] = g
        h = min(stored, memory)
        for j in range(h):  # two-loop recursion, newest first
            i = (stored - 1 - j) % memory
            alpha[i] = rho[i] * dot(s_hist[i], q)
            np.multiply(y_hist[i], alpha[i], out=tmp)
            q -= tmp
        if h:
            i = (stored - 1) % memory
            q *= dot(s_hist[i], y_hist[i]) / dot(y_hist[i], y_hist[i])
        else:
            q *= 1.0 / max(1.0, float(np.abs(g).max()))
        for j in range(h - 1, -1, -1):
            i = (stored - 1 - j) % memory
            beta = rho[i] * dot(y_hist[i], q)
            np.multiply(s_hist[i], alpha[i] - beta, out=tmp)
            q += tmp
        np.negative(q, out=q)  # q is now the search direction
        slope = dot(g, q)
        if slope >= 0:  # not a descent direction: restart from steepest descent
            np.negative(g, out=q)
            slope = -dot(g, g)
            stored = 0
        step = 1.0
        while True:
            np.multiply(q, step, out=tmp)
            np.add(x, tmp, out=xn)
            fn = f(xn, gn)
            if fn <= fx + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        i = stored % memory
        np.subtract(xn, x, out=s_hist[i])
        np.subtract(gn, g, out=y_hist[i])
        sy = dot(s_hist[i], y_hist[i])
        if sy > 1e-12:
            rho[i] = 1.0 / sy
            stored += 1
        converged = fx - fn <= rtol * max(abs(fx), 1.0)
        x, xn = xn, x
        g, gn = gn, g
        fx = fn
        if converged:
            break
    return x


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
    objective = _Objective(
        np.concatenate(rows),
        np.concatenate(cols),
        np.concatenate(vals),
        np.array([class_index[label] for label in labels], dtype=np.intp),
        len(keys),
        len(classes),
        c,
    )
    theta = _lbfgs(objective, np.zeros(objective.size))
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

# Danger happening now, by kind. Matched on normalized (simplified, lower-case) text.
EMERGENCY_PATTERNS: dict[str, re.Pattern[str]] = {
    "gas": re.compile(
        r"(?:煤气|燃气|天然气|液化气|煤汽)(?:味|的味道|中毒)|"
        r"(?:煤气|燃气|天然气|液化气|煤汽)[^。！？!?]{0,12}(?:漏了|漏气|在漏|泄漏|泄露)|"
        r"臭鸡蛋味|一氧化碳|煤气罐\S{0,3}(?:着火|爆)"
    ),
    "fire": re.compile(
        r"着火|著火|失火|起火|着了火|烧起来|烧着了|冒火|火苗|火光|发生火灾|爆炸|浓烟|冒黑烟|冒烟|"
        r"(?<!油)烟(?:好大|很大|太大|特别大)|全是烟|都是烟"
    ),
    "trapped": re.compile(
        r"困电梯|困在电梯|电梯困人|电梯里困|被困(?!扰)|关在电梯|卡在电梯|电梯里出不来|电梯\S{0,6}(?:往下掉|下坠|坠落|掉下去)|"
        r"电梯卡住了?\S{0,6}(?:里面有人|有人在里面)|卡在两层"
    ),
    "injury": re.compile(
        r"晕倒|昏倒|昏迷|晕过去|不省人事|流血|出血|血流|受伤了|受了伤|摔伤|骨折|摔下来|摔下去|坠楼|跳楼|"
        r"(?:人|孩子|小孩|老人|娃|宝宝)\S{0,6}(?:掉下去|掉下来|掉进)|掉进\S{0,4}(?:河|湖|池塘|水池|水里|井里)|"
        r"溺水|触电|没有呼吸|没呼吸|没了呼吸|抽搐|心脏病|一动不动|摔倒\S{0,6}起不来|砸伤|咬伤|"
        r"中毒|卡在防盗窗|锁在车里|反锁在车"
    ),
    "violence": re.compile(
        r"打人|打架|斗殴|持刀|拿刀|拿着刀|动刀|砍人|杀人|伤人|家暴|打老婆|打老公|打孩子|抢劫|抢东西|撬门|撬锁|"
        r"入室|砸门|动手了|绑架|非礼|猥亵|救命"
    ),
}
# Words that make a danger word hypothetical, past or merely a risk: leave those messages to the model.
_NOT_NOW = re.compile(
    r"万一|如果|要是|假如|假设|一旦|隐患|防止|预防|演练|演习|培训|宣传|上次|上回|去年|以前|之前|曾经|发生过|差点|险些|"
    r"听说|据说|才没|没出事|没出大事|住院|进了医院|送医院了|送去医院了|出院|"
    r"容易|可能会|会不会|怎么预防|报警器|报警按钮|报警铃|报警装置|警铃坏|电影|新闻|视频|游戏|笑死|吓死我了哈"
)


def emergency_kind(normalized: str) -> str | None:
    """The kind of danger (gas, fire, trapped, injury, violence) the text reports as happening now.

    None when there is no danger word, or only hypothetical/past/risk mentions ("万一着火", "上次困电梯").
    The first matching kind in the order above wins: gas before fire (a gas leak must not be answered
    with "call 119 and use water"), trapped before injury.
    """
    if _NOT_NOW.search(normalized):
        return None
    for kind, pattern in EMERGENCY_PATTERNS.items():
        if pattern.search(normalized):
            return kind
    return None


_CANCEL_WORDS = re.compile(
    r"^(?:好吧|那|那就|哎|唉|嗯|我)?(?:取消|算了|不报了|不用了|不弄了|不填了|不要了|撤回|撤销|退出|不需要了|不搞了|"
    r"别弄了|别报了|停止|不想报了|不报修了|不反映了)+(?:吧|了|啦|呀|谢谢|吧谢谢)?$"
)
_CANCEL_MAX_CHARS = 8


def is_short_cancel(normalized: str) -> bool:
    compact = _SEPARATORS.sub("", normalized)
    return len(compact) <= _CANCEL_MAX_CHARS and bool(_CANCEL_WORDS.match(compact))


_MEANINGFUL = re.compile(r"[0-9a-z\u3400-\u9fff]")


# --- the backend -----------------------------------------------------------------------------------


class EmbeddedNLU:
    """The in-process :class:`~bot.nlu.base.NLUBackend`. Build it with :func:`create`."""

    name = "embedded"

    def __init__(self, model: LinearModel, *, origin: str = "trained") -> None:
        self.model = model
        self.origin = origin  # "cache" or "trained": how this instance got its model

    async def parse(self, text: str) -> Understanding:
        return self.understand(text)

    async def health(self) -> str | None:
        return None

    def understand(self, text: str) -> Understanding:
        """Synchronous :meth:`parse` (the CLI and the benchmark call it directly). Never raises."""
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
        if decided is not None and ranking[0].name is not decided:
            current = next(s for s in ranking if s.name is decided)
            promoted = IntentScore(decided, max(current.confidence, RULE_CONFIDENCE))
            ranking = [promoted, *(s for s in ranking if s.name is not decided)]
        return Understanding(
            text=normalized, intent=ranking[0], entities=entities, ranking=tuple(ranking), backend=self.name
        )


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
