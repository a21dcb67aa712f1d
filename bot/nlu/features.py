"""The features of the embedded model: what training and inference both see of a normalized message.

Character 1–4-grams (Chinese has no spaces, and residents' typos and 谐音字 keep most n-grams intact),
with digit runs folded to ``0``, start/end markers and a length bucket.
"""

from __future__ import annotations

import re

FEATURE_VERSION = "3"
"""Bump when :func:`features` or the training recipe changes, so stale caches are not reused."""

_MAX_FEATURE_CHARS = 300  # the start of a long message says what it is about; keeps p99 flat

SEPARATORS = re.compile(r"[\s\W_]+")  # punctuation and spaces: one boundary
_DIGITS = re.compile(r"\d+")
_LENGTH_BUCKETS = (2, 4, 8, 16, 32)


def features(normalized: str) -> list[str]:
    """The feature strings of one normalized message (training and inference share this)."""
    text = _DIGITS.sub("0", SEPARATORS.sub(" ", normalized[:_MAX_FEATURE_CHARS])).strip()
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


MEANINGFUL = re.compile(r"[0-9a-z\u3400-\u9fff]")
"""Something to understand: a digit, a Latin letter or a Chinese character (not only emoji or punctuation)."""
