"""Turn what residents type into one canonical form for matching.

Residents write traditional characters (樓道燈壞了), full-width letters and digits (３栋), emoji, @-mentions
and stray control characters. Understanding, the knowledge base and the dialogs all match against the
output of :func:`normalize`, never against raw text. The original text is kept for the transcript and for
appeal descriptions.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import opencc

_T2S = opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """``text`` in simplified characters (OpenCC t2s)."""
    return str(_T2S.convert(text))


# The bot's own names as they appear in @-mentions. Other mentions (@王阿姨) are stripped only when a
# separator follows them, because Chinese has no spaces: "@回音3栋灯坏了" must keep "3栋灯坏了".
_BOT_MENTION = re.compile(r"@(?:回音|小回|huiyin)(?:机器人|bot)?", re.IGNORECASE)
_OTHER_MENTION = re.compile(r"@[^\s@\u2005]{1,24}[\s\u2005]")
# Emoji and pictographs (So), modifier symbols, variation selectors, joiners, private use, surrogates.
_DROP_CATEGORIES = frozenset({"So", "Sk", "Co", "Cs", "Cn"})
_SPACE = re.compile(r"\s+")
# Input longer than this is cut before normalization: nothing useful lies beyond it, and a 20 KB paste
# must not cost 20 KB of work on every pass.
MAX_NORMALIZED_CHARS = 1000

# Typos and homophones residents often type (pinyin input picks the wrong character), corrected so that
# "物叶""着伙" match like "物业""着火". Curated, not guessed: each one turns a non-word into the word it
# must mean, with look-arounds where the wrong form is also part of a real word ("植物叶子", "跟着伙伴",
# "一楼到三楼", "取暖器"). Replacements keep the length, so entity offsets stay valid.
_TYPOS = {
    "物叶": "物业",
    "电悌": "电梯",
    "着伙": "着火",
    "楼到": "楼道",
    "下水到": "下水道",
    "燥音": "噪音",
    "躁音": "噪音",
    "天燃气": "天然气",
    "燃汽": "燃气",
    "煤汽": "煤气",
    "拉圾": "垃圾",
    "水笼头": "水龙头",
    "暖器": "暖气",
    "暖汽": "暖气",
    "电体": "电梯",
    "消防拴": "消防栓",
    "燥声": "噪声",
    "躁声": "噪声",
}
_TYPO = re.compile(
    r"(?<![植动生作谷])物叶(?![子片脉])|电悌|着伙(?![伴计食同])|楼到(?=灯|里|口|内|堆|门)|"
    r"下水到(?=堵|不通|反水|返水|冒|口|井|管|疏通)|燥音|躁音|天燃气|燃汽|煤汽|拉圾|水笼头|(?<!取)暖器|"
    r"暖汽|(?<![导带绝半液固晶发磁])电体(?![育操])|消防拴|燥声|躁声"
)


def _keep(ch: str) -> str:
    if ch in "\n\t":
        return " "
    cat = unicodedata.category(ch)
    if cat in _DROP_CATEGORIES or ch in "\u200d\ufe0f\ufe0e":
        return ""
    if cat.startswith("C"):  # control and format characters from binary garbage
        return " "
    return ch


@lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """Canonical form: simplified script, half-width, no emoji or @-mentions, single spaces, lower case.

    Pure and cached: the same message is often normalized by several components.
    """
    if not text:
        return ""
    text = text[:MAX_NORMALIZED_CHARS]
    text = unicodedata.normalize("NFKC", text)
    text = _BOT_MENTION.sub(" ", text)
    text = _OTHER_MENTION.sub(" ", text)
    text = "".join(_keep(ch) for ch in text)
    text = _T2S.convert(text)
    text = _TYPO.sub(lambda m: _TYPOS[m.group(0)], text)
    return _SPACE.sub(" ", text).strip().lower()
