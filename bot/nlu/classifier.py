"""The embedded model: TF-IDF + L2-regularized multinomial logistic regression, its training and its cache.

Fitted by a small L-BFGS in numpy (:func:`train`): the same optimum as scikit-learn's
``LogisticRegression``, without its import cost (over a second and ~70 MB in the bot process). The arrays
are cached as ``<data_dir>/cache/nlu-embedded-<hash>.npz`` (no pickle), keyed by the training files,
:data:`~bot.nlu.features.FEATURE_VERSION` and the regularization.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import structlog

from bot.nlu.base import Intent
from bot.nlu.features import FEATURE_VERSION, MEANINGFUL, features
from bot.nlu.logreg import Objective, lbfgs
from bot.nlu.normalize import normalize
from bot.nlu.training_data import TrainingExample, load_training_data, training_data_hash

log = structlog.get_logger()

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LinearModel:
    """A fitted TF-IDF + multinomial logistic regression, as plain arrays."""

    classes: tuple[Intent, ...]
    vocabulary: dict[str, int]
    idf: FloatArray  # (n_features,)
    coef_t: FloatArray  # (n_features, n_classes)
    intercept: FloatArray  # (n_classes,)

    def probabilities(self, grams: Iterable[str]) -> FloatArray:
        """Class probabilities for one message's feature strings (see :func:`~bot.nlu.features.features`)."""
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
        if MEANINGFUL.search(normalized):  # nothing to learn from an emoji-only example
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
