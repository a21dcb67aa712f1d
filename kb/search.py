"""Find the matter a resident's message is about.

Character n-gram TF-IDF (1–3 grams, sublinear tf, smoothed idf, l2-normalized, as scikit-learn's
``TfidfVectorizer(analyzer="char", sublinear_tf=True)``) over each matter's examples, title and keywords; a message scores against
every such document by cosine similarity and a matter takes the best score of its documents, blended
with its score against all its text at once (so that a message echoing several phrasings of one matter
beats a lucky single-example hit). Character n-grams need no word segmentation, tolerate typos and
colloquial word order, and work on the short texts of group chats.

Before matching, both sides lose the words that say nothing about *which* matter: question words
("该找谁"), particles, and the frame residents put around every problem — how often ("隔三差五", "天天"),
how long ("好几个月"), how bad ("严重", "窗户都不敢开") and how nobody helps ("也没用"). A long message
that still scores below the threshold as a whole is scored clause by clause as well (see
:meth:`MatterIndex._query`): residents name the problem in one clause and spend the rest on who they asked.

On top of the nearest-neighbour match, a small discriminative model (:class:`PartyModel`, multinomial
logistic regression over the same n-grams, trained when the index is built) predicts the matter's first
contact ("party key": ``property``, ``department:environment`` …) from all the knowledge base's examples
at once. The best :data:`RERANK_TOP_K` matters scoring within :data:`RERANK_FLOOR` of the best are
reranked by TF-IDF score + :data:`PARTY_WEIGHT` × the probability of their party; and when nothing
reaches the threshold but the classifier gives one party at least :data:`PARTY_CONFIDENT`, that party's
best matter answers if it scores at least :data:`PARTY_FALLBACK_THRESHOLD`. Cross-validated on the
knowledge base's examples (``python -m kb.bench --cv 5``: 5 folds, each fold's examples held out of both
the index and the classifier), the party of the answer is right for 85.6 % of examples instead of 80.7 %;
the weights were chosen there and on the development set as a whole. Weighting small parties up in
training (class balancing) did not help there (84.6–86.1 %), nor did other weights (85.3–85.9 %).
Training takes ~0.2–0.3 s (25 L-BFGS iterations of the optimizer the intent model uses, bot.nlu.logreg)
and a few MB; the model is ~0.4 MB of float32. :meth:`MatterIndex.rank`
stays plain TF-IDF (the intent model reads its scores).

Why not scikit-learn itself: importing it costs 2–3 s on the 2-core target, against a budget of 1 s for
loading the whole knowledge base, and its per-call input validation alone is ~0.2 ms. The index here is
a plain inverted index in numpy: a lookup touches only the postings of the message's own n-grams
(tens of µs). Out-of-vocabulary n-grams of the message still count in its norm, so garbage and long
unrelated text score low instead of matching on one shared character.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise, repeat

import numpy as np
import numpy.typing as npt

from kb.model import Matter

NGRAM_MIN, NGRAM_MAX = 1, 3
DEFAULT_THRESHOLD = 0.24
"""Below this blended cosine a message is not confidently about any matter (tuned on tests/kb)."""
BEST_DOC_WEIGHT = 0.5  # the rest goes to the matter-as-a-whole document
UNIGRAM_WEIGHT = 1.0  # weight of single characters relative to 2- and 3-grams
KEYWORD_BONUS = 0.1  # per distinct keyword of a matter found verbatim in the message (x2 for emergencies)
OPTION_PREFERENCE = 0.85  # see MatterIndex._best
EMERGENCY_PREFERENCE = 0.9  # see MatterIndex._best
PAST_EMERGENCY_FACTOR = 0.5
"""An emergency matter's score is scaled by this when the message tells of a danger that is over (see
:data:`_PAST_DANGER`): "去年发生过一场火灾，楼道到现在还是黑的" is about the corridor, not a fire now."""
MAX_QUERY_CHARS = 200
"""Only the start of a long message is matched: residents state the problem first, and the cost of a
lookup grows with the message (a 20 KB paste must not cost 20 KB of n-grams)."""

CLAUSE_WEIGHT = 0.9
"""When a long message matches nothing as a whole, each clause (and each pair of neighbouring clauses)
is scored at this fraction of its own cosine (see MatterIndex._query): a clause is less evidence than a
whole message, and a stray clause must not answer a message that is about something else."""
MIN_CLAUSE_CHARS = 4  # prepared characters; a shorter piece joins the next clause
MIN_WINDOWED_CHARS = 12  # prepared characters; a shorter message is scored only as a whole
MAX_CLAUSES = 12  # of a long message, only the first clauses are scored one by one (cost)

PARTY_WEIGHT = 0.15
"""Weight of the party classifier's probability of a candidate's first contact when reranking (see
:class:`PartyModel` and :meth:`MatterIndex._rerank`)."""
RERANK_TOP_K = 10  # only the best few matters by TF-IDF are reranked
RERANK_FLOOR = 0.6
"""A candidate must score at least this fraction of the best TF-IDF score to be reranked to the top: the
classifier decides between plausible matters, it does not bring up unrelated ones."""
PARTY_CONFIDENT = 0.6
"""When nothing reaches the threshold, the best matter of a party the classifier gives at least this
probability answers if it scores at least :data:`PARTY_FALLBACK_THRESHOLD`."""
PARTY_FALLBACK_THRESHOLD = 0.16
PARTY_MIN_DF = 3  # n-grams in fewer knowledge-base documents are not features of the party classifier
PARTY_C = 30.0  # inverse L2 strength of the party classifier
PARTY_MAX_ITER = 25  # enough: more iterations do not change the routing (cross-validated), and cost load time
_CLAUSE_SPLIT = re.compile(r"[\s,.!?;:~，。！？；：、…~～]+")

# Words that say "I have a question" rather than what it is about. Removing them from both sides keeps
# "楼道灯坏了该找谁" close to "楼道灯坏了" and stops "找谁" alone from matching anything.
_FILLERS = (
    "请问一下|请问|问一下|问下|麻烦问下|麻烦|你好|您好|大家好|在吗|有人吗|"
    "这种情况|这个情况|这种事情|这种事|这事儿|这事|这个事|"
    "应该找谁|该找谁|找谁管|找谁|谁来管|谁管|归谁管|哪个部门管|找哪个部门|找什么部门|找哪里|哪个部门|"
    "怎么办啊|怎么办|咋办|怎么处理|如何处理|怎么弄|咋弄|有没有人管|有人管吗|没人管|"
    "我想投诉|想投诉|我要投诉|要投诉|投诉一下|我想反映|想反映|我要反映|反映一下|我要举报|想举报|举报一下|"
    "怎么|咋|吗|呢|(?<![酒网清氧])吧|啊|呀|哦|嘛|啦|哈|呐|的|了(?!解)|"
    "小回|回音|机器人|"
    # How often, how long, how bad, and "nobody helps": residents wrap every problem in these, so they tell
    # nothing about which matter it is (and an example that happens to share one, "隔三差五停水", must not
    # pull "电梯隔三差五就坏" to the water supply).
    "隔三差五|三天两头|天天|每天|每次|经常|老是|总是|一直|好几天|好多天|好几次|好多次|多少次|好几个月|"
    "好长时间|好久|很久|已经|到现在|至今|现在|一会儿|"
    "特别|非常|真的|实在|简直|根本|严重|"
    "也没用|没有用|都没用|没人理|不理|受不了|忍不了|气死|烦死|希望|恳请|请求|尽快|有关部门|相关部门|"
    "帮帮忙|帮忙|管一管|管管|处理一下|解决一下|谢谢|"
    "窗户都不敢开|窗都不敢开|不敢开窗|窗户不敢开|没法睡|睡不着觉|睡不着|"
    "也不提前通知|不提前通知|也没提前通知|没提前通知|这几天|这段时间|最近"
)
_NOISE = re.compile(r"[\W\d_]+")  # punctuation, spaces, digits (building numbers), underscores
_FILLER = re.compile(_FILLERS)


# Service numbers say what a message is about, but digits are dropped as noise (building and room
# numbers): turn the unambiguous ones into words first. 110/119/120 only after a dialling verb, because
# "120室" is a room.
_SERVICE_NUMBERS = {
    "12345": "市民热线",
    "95598": "供电热线",
    "12315": "消费投诉",
    "12369": "环保热线",
    "96333": "电梯应急",
    "12348": "法律援助",
    "12333": "人社热线",
    "110": "报警",
    "119": "火警",
    "120": "急救",
}
_SERVICE_NUMBER = re.compile(
    r"(?<!\d)(12345|95598|12315|12369|96333|12348|12333)(?!\d)|(?<=[打拨叫报])(110|119|120)(?!\d)"
)


# A danger told as a past event or one that did not happen: a past-time word, the outcome told, "差点".
# Simpler than the emergency rule of the understanding (bot.nlu.rules), which decides the intent: here
# it only stops an emergency matter from answering "去年着过火，楼道灯到现在还坏着". An urgent word ("救命",
# "快来", "现在又冒烟") keeps emergency matters as they are, and an emergency intent gets an emergency
# answer in any case (bot.nlu.route).
_PAST_DANGER = re.compile(
    r"发生过|着过火|失过火|去年|前年|上个月|上月|上周|上星期|上次|上回|曾经|那次|当时|几个月前|年前|"
    r"才没|没出大事|没出事|进了医院|住院|出院|抢救过来|脱离危险|差点|险些|没砸到|没伤到|没伤着|没人受伤|没有人受伤|"
    # ... or one that may happen, or happened elsewhere: a risk to report, not a call for 110/119/120.
    r"万一|如果|要是|假如|一旦|隐患|会不会|真出|真着火|新闻|视频|听说|据说|别的小区|前几天|前些天|前阵子"
)
_PRESENT_DANGER = re.compile(r"救命|快来|快救|赶紧|现在又|正在|又着|又冒")


def tells_past_danger(text: str) -> bool:
    """Whether normalized ``text`` tells of a danger that is over rather than one happening now."""
    return _PAST_DANGER.search(text) is not None and _PRESENT_DANGER.search(text) is None


def _name_number(match: re.Match[str]) -> str:
    return _SERVICE_NUMBERS[match.group(0)]


def searched_form(word: str) -> str:
    """``word`` as search compares it when nothing in it is a filler: lower case, service numbers named,
    no punctuation or digits (for checking keywords, see kb/check.py)."""
    return _NOISE.sub("", _SERVICE_NUMBER.sub(_name_number, word.lower()))


def prepare(text: str) -> str:
    """Reduce normalized text to the characters that say what the message is about."""
    text = _SERVICE_NUMBER.sub(_name_number, text.lower())
    return _NOISE.sub("", _FILLER.sub("", _NOISE.sub("", text)))


def ngrams(text: str) -> list[str]:
    out = list(text) if NGRAM_MIN == 1 else []
    for n in range(max(NGRAM_MIN, 2), NGRAM_MAX + 1):
        out += [text[i : i + n] for i in range(len(text) - n + 1)]
    return out


def _clip(text: str) -> tuple[str, str]:
    """The start of normalized ``text`` that search reads (twice :data:`MAX_QUERY_CHARS`, as fillers and
    noise fall away), and its form after :func:`prepare`, cut to :data:`MAX_QUERY_CHARS`."""
    clipped = text[: MAX_QUERY_CHARS * 2]
    return clipped, prepare(clipped)[:MAX_QUERY_CHARS]


OPENING_MIN_CHARS = 60
"""A message longer than this (normalized characters) is also scored by its first sentence alone."""
_SENTENCE_END = re.compile(r"[。!?！？;；]")


def _opening(text: str) -> str | None:
    """The prepared first sentence of a long message, or None for a short one. A written appeal names
    its problem and place first (its title, or an opening like "反映XX小区夜宵摊占道经营的问题"), then
    spends most of its words on history, indignation and earlier replies, which dilute the whole-message
    match; scoring the opening on its own, at full weight, lets it decide when it matches better. On the
    supervision half of the real appeals (bench/real_appeals.py) this raised the share of answers naming
    a party the government's reply names from 48.1 % to 49.2 %; chat messages are too short to change."""
    if len(text) <= OPENING_MIN_CHARS:
        return None
    first = _SENTENCE_END.split(text, maxsplit=1)[0]
    return prepare(first)[:MAX_QUERY_CHARS] or None


def clause_windows(text: str) -> list[str]:
    """The prepared clauses of normalized ``text`` and each pair of neighbouring clauses, when it has
    more than one clause (none otherwise: the whole message is the only window). Clauses too short to
    say anything on their own are joined to the next one."""
    clauses: list[str] = []
    pending = ""
    for part in _CLAUSE_SPLIT.split(text):
        pending += prepare(part)
        if len(pending) >= MIN_CLAUSE_CHARS:
            clauses.append(pending)
            pending = ""
    if pending:
        if clauses:
            clauses[-1] += pending
        else:
            clauses.append(pending)
    clauses = clauses[:MAX_CLAUSES]
    if len(clauses) < 2:
        return []
    return clauses + [a + b for a, b in pairwise(clauses)]


def party_key(matter: Matter) -> str:
    """A matter's first contact as one label: ``party`` or ``party:sub``."""
    contact = matter.first_contact
    return f"{contact.party}:{contact.sub}" if contact.sub else str(contact.party)


class PartyModel:
    """Multinomial logistic regression from a message's n-grams to the first contact ("party key") of
    the matter it is about, trained on the knowledge base's own documents (examples, titles, keywords,
    each labelled with its matter's first contact).

    Nearest-neighbour TF-IDF answers with the single most similar phrasing, so a message worded unlike
    every example of its matter often lands on a similar-sounding matter of another party ("物业停水催费"
    vs "停水"). A discriminative model weighs every n-gram by how well it separates the parties over all
    examples at once ("物业费" towards 住建 when with "停水", "凌晨/酒吧" towards 生态环境 …), which
    generalizes better to new wording. It only reranks plausible candidates (see
    :meth:`MatterIndex._rerank`); the matter is still found by TF-IDF.

    Features are the index's own n-grams found in at least :data:`PARTY_MIN_DF` documents (about 2.7k),
    weighted as in the index; the weights are float32, (features × parties), about 0.35 MB.
    """

    def __init__(
        self,
        classes: Sequence[str],
        feature_of_term: npt.NDArray[np.int32],
        coef_t: npt.NDArray[np.float32],
        intercept: npt.NDArray[np.float64],
    ) -> None:
        self.classes = tuple(classes)
        self._feature_of_term = feature_of_term
        self._coef_t = coef_t
        self._intercept = intercept

    @classmethod
    def fit(
        cls,
        doc_rows: npt.NDArray[np.intp],
        doc_terms: npt.NDArray[np.intp],
        doc_weights: npt.NDArray[np.float64],
        labels: Sequence[str],
        n_terms: int,
        *,
        min_df: int | None = None,
        c: float | None = None,
        max_iter: int | None = None,
    ) -> PartyModel:
        """Fit on documents given as (row, term, weight) triples; ``labels[row]`` is each row's party key."""
        # The same optimizer as the intent model (numpy only, no scikit-learn import).
        from bot.nlu.logreg import Objective, lbfgs

        min_df = PARTY_MIN_DF if min_df is None else min_df
        c = PARTY_C if c is None else c
        max_iter = PARTY_MAX_ITER if max_iter is None else max_iter
        classes = sorted(set(labels))
        df = np.bincount(doc_terms, minlength=n_terms)
        keep = df >= min_df
        feature_of_term = np.full(n_terms, -1, dtype=np.int32)
        n_features = int(keep.sum())
        feature_of_term[keep] = np.arange(n_features, dtype=np.int32)
        mask = keep[doc_terms]
        rows, cols, vals = doc_rows[mask], feature_of_term[doc_terms[mask]].astype(np.intp), doc_weights[mask]
        norms = np.sqrt(np.bincount(rows, weights=vals * vals, minlength=len(labels)))
        vals = vals / np.where(norms > 0, norms, 1.0)[rows]
        index = {k: i for i, k in enumerate(classes)}
        y = np.fromiter((index[k] for k in labels), dtype=np.intp, count=len(labels))
        objective = Objective(rows, cols, vals, y, n_features, len(classes), c)
        theta = lbfgs(objective, np.zeros(objective.size), memory=5, max_iter=max_iter)
        kv = len(classes) * n_features
        coef_t = np.ascontiguousarray(theta[:kv].reshape(len(classes), n_features).T, dtype=np.float32)
        return cls(classes, feature_of_term, coef_t, theta[kv:].copy())

    def probabilities(
        self, terms: npt.NDArray[np.intp], weights: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """Party probabilities (in :attr:`classes` order) of a message given as index term ids + weights."""
        features = self._feature_of_term[terms]
        known = features >= 0
        logits = self._intercept.copy()
        if known.any():
            w = weights[known]
            w = w / math.sqrt(float(w @ w))
            # Element-wise, not ``@``: a BLAS call may wake its thread pool (p99 latency).
            logits += (self._coef_t[features[known]] * w[:, None]).sum(axis=0)
        exp = np.exp(logits - logits.max())
        result: npt.NDArray[np.float64] = exp / exp.sum()
        return result


@dataclass(frozen=True, slots=True)
class Hit:
    matter_id: str
    score: float


class MatterIndex:
    """An immutable TF-IDF index over matters; build once, query from any thread."""

    def __init__(
        self, matters: Sequence[Matter], threshold: float = DEFAULT_THRESHOLD, *, party_model: bool = True
    ) -> None:
        """Index ``matters``; ``party_model=False`` leaves out the party classifier (plain TF-IDF, for
        comparisons such as ``python -m kb.bench --cv``)."""
        self.threshold = threshold
        self._ids = [m.id for m in matters]
        # Per matter: its documents (examples, title, keywords) then one "whole matter" document.
        docs: list[list[str]] = []
        owners: list[int] = []
        whole: list[list[str]] = []
        for i, m in enumerate(matters):
            texts = [prepare(t) for t in (m.title, *m.examples, *m.keywords)]
            texts = [t for t in texts if t]
            for t in texts:
                docs.append(ngrams(t))
                owners.append(i)
            whole.append(ngrams("|".join(texts)))
        all_docs = docs + whole
        df: Counter[str] = Counter()
        for d in all_docs:
            df.update(set(d))
        n = len(all_docs)
        self._vocab: dict[str, int] = {t: j for j, t in enumerate(df)}
        df_arr = np.fromiter(df.values(), dtype=np.float64, count=len(df))
        idf = np.log((1 + n) / (1 + df_arr)) + 1.0
        self._oov_idf = math.log(1 + n) + 1.0  # an unseen n-gram is as rare as can be
        self._n_docs = len(docs)
        owner_arr = np.asarray(owners, dtype=np.intp)
        if len(matters) and np.any(np.bincount(owner_arr, minlength=len(matters)) == 0):
            raise ValueError("every matter needs at least one non-empty document")
        # Documents are grouped by matter in order, so reduceat over these offsets gives per-matter maxima.
        self._starts = np.searchsorted(owner_arr, np.arange(len(matters)))
        # Build (term, doc, weight) triples, then sort by term into CSR-like postings.
        t_col: list[int] = []
        d_col: list[int] = []
        vocab = self._vocab
        c_col: list[int] = []
        for doc_id, d in enumerate(all_docs):
            counts = Counter(d)
            t_col.extend(map(vocab.__getitem__, counts))
            c_col.extend(counts.values())
            d_col.extend([doc_id] * len(counts))
        terms = np.asarray(t_col, dtype=np.intp)
        docs_of = np.asarray(d_col, dtype=np.intp)
        gram_len = np.fromiter(map(len, vocab), dtype=np.intp, count=len(vocab))
        self._is_phrase = gram_len > 1
        self._term_weight = np.asarray(idf) * np.where(self._is_phrase, 1.0, UNIGRAM_WEIGHT)
        w = (1.0 + np.log(np.asarray(c_col, dtype=np.float64))) * self._term_weight[terms]
        doc_norm = np.sqrt(np.bincount(docs_of, weights=w * w, minlength=len(all_docs)))
        w /= np.where(doc_norm > 0, doc_norm, 1.0)[docs_of]
        keys = [party_key(m) for m in matters]
        self._party: PartyModel | None = None
        if party_model and len(set(keys)) >= 2:
            single = docs_of < len(docs)  # the examples, titles and keywords, not the whole-matter documents
            self._party = PartyModel.fit(
                docs_of[single], terms[single], w[single], [keys[o] for o in owners], len(vocab)
            )
            party_index = {k: j for j, k in enumerate(self._party.classes)}
            self._party_of = np.asarray([party_index[k] for k in keys], dtype=np.intp)
        order = np.argsort(terms, kind="stable")
        self._post_doc = docs_of[order]
        self._post_val = w[order]
        self._post_ptr = np.zeros(len(vocab) + 1, dtype=np.intp)
        np.cumsum(np.bincount(terms, minlength=len(vocab)), out=self._post_ptr[1:])
        # Keywords (two characters or more) found verbatim are strong evidence: one regex pass finds them.
        # An ambiguous matter's keywords name a topic ("停电"): they count for the matter and for each of
        # its clarify options alike, so that the topic wins over others while the options still decide
        # among themselves on their own words.
        position = {m.id: i for i, m in enumerate(matters)}
        keyword_owners: dict[str, set[int]] = {}
        for i, m in enumerate(matters):
            family = [i]
            if m.clarify is not None:
                family += [position[o.matter] for o in m.clarify.options if o.matter in position]
            for kw in {prepare(k) for k in m.keywords}:
                if len(kw) >= 2:
                    keyword_owners.setdefault(kw, set()).update(family)
        self._keyword_owners: dict[str, list[int]] = {kw: sorted(ids) for kw, ids in keyword_owners.items()}
        alternatives = sorted(self._keyword_owners, key=len, reverse=True)
        self._keyword_re = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None
        self._requirements = [
            (i, re.compile("|".join(re.escape(prepare(w)) for w in m.requires_any)))
            for i, m in enumerate(matters)
            if m.requires_any
        ]
        self._emergencies = np.asarray([i for i, m in enumerate(matters) if m.emergency], dtype=np.intp)
        self._emergency_set = frozenset(int(i) for i in self._emergencies)
        self._options: dict[int, list[int]] = {
            position[m.id]: [position[o.matter] for o in m.clarify.options if o.matter in position]
            for m in matters
            if m.clarify is not None
        }

    def __len__(self) -> int:
        return len(self._ids)

    def _similarities(self, texts: Sequence[str]) -> npt.NDArray[np.float64] | None:
        """Blended per-matter cosine of each prepared text (rows), or None when no text shares a 2- or
        3-gram with any matter. All texts are scored in one pass over the postings."""
        vocab = self._vocab
        oov = self._oov_idf * UNIGRAM_WEIGHT
        n_cols = self._n_docs + len(self._ids)
        idx_parts: list[npt.NDArray[np.intp]] = []
        val_parts: list[npt.NDArray[np.float64]] = []
        any_phrase = False
        for row, prepared in enumerate(texts):
            counts = Counter(ngrams(prepared))
            if not counts:
                continue
            ids = np.fromiter(map(vocab.get, counts, repeat(-1)), dtype=np.intp, count=len(counts))
            known = ids >= 0
            term_idx = ids[known]
            if not term_idx.size or not self._is_phrase[term_idx].any():
                continue  # no shared 2- or 3-gram: a single shared character is no evidence
            any_phrase = True
            n_seen = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            w_known = (1.0 + np.log(n_seen[known])) * self._term_weight[term_idx]
            sq = float(w_known @ w_known)
            # Unseen characters count against the message (OOV_MAX_N = 1): text about something else.
            sq += sum(((1.0 + math.log(counts[ch])) * oov) ** 2 for ch in set(prepared) if ch not in vocab)
            starts = self._post_ptr[term_idx]
            lengths = self._post_ptr[term_idx + 1] - starts
            # Concatenate the postings of all query terms without a Python loop.
            idx = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
            idx_parts.append(self._post_doc[idx] + row * n_cols)
            val_parts.append(self._post_val[idx] * np.repeat(w_known / math.sqrt(sq), lengths))
        if not any_phrase:
            return None
        sims = np.bincount(
            np.concatenate(idx_parts), weights=np.concatenate(val_parts), minlength=len(texts) * n_cols
        ).reshape(len(texts), n_cols)
        best_doc = np.maximum.reduceat(sims[:, : self._n_docs], self._starts, axis=1)
        result: npt.NDArray[np.float64] = (
            BEST_DOC_WEIGHT * best_doc + (1 - BEST_DOC_WEIGHT) * sims[:, self._n_docs :]
        )
        return result

    def _query(self, text: str) -> npt.NDArray[np.float64] | None:
        """Per-matter scores for ``text``, or None when it shares no phrase with any matter."""
        return self._scores(*_clip(text))

    def _scores(self, clipped: str, prepared: str) -> npt.NDArray[np.float64] | None:
        """Per-matter scores of a message given as :func:`_clip` returns it.

        A message scores as a whole. When nothing reaches the threshold that way and the message is long
        enough to have several clauses, each clause and each pair of neighbouring clauses is scored too
        (discounted by :data:`CLAUSE_WEIGHT`): a long message often states the problem in one clause
        ("地下车库天天漏水") among others about how long it has lasted, whom the writer already asked and
        how angry they are, which dilute the whole-message cosine below any match.
        """
        if not prepared:
            return None
        texts = [prepared]
        opening = _opening(clipped)
        if opening is not None and opening != prepared:
            texts.append(opening)
        rows = self._similarities(texts)
        base = rows.max(axis=0) if rows is not None else np.zeros(len(self._ids))
        scores = self._adjust(base, prepared, clipped)
        if float(scores.max()) < self.threshold and len(prepared) >= MIN_WINDOWED_CHARS:
            windows = clause_windows(clipped)
            parts = self._similarities(windows) if windows else None
            if parts is not None:
                rows = parts
                scores = self._adjust(np.maximum(base, CLAUSE_WEIGHT * parts.max(axis=0)), prepared, clipped)
        return scores if rows is not None else None

    def _adjust(
        self, similarities: npt.NDArray[np.float64], prepared: str, clipped: str
    ) -> npt.NDArray[np.float64]:
        """``similarities`` plus keyword bonuses, minus matters whose required words are missing, with
        emergencies damped when the danger is told as over."""
        scores = similarities.copy()
        if self._keyword_re is not None:
            found: set[str] = set(self._keyword_re.findall(prepared))
            for kw in found:
                for i in self._keyword_owners[kw]:
                    scores[i] += KEYWORD_BONUS * (2.0 if i in self._emergency_set else 1.0)
        for i, required in self._requirements:
            if required.search(prepared) is None:
                scores[i] = 0.0
        if self._emergencies.size and tells_past_danger(clipped):
            scores[self._emergencies] *= PAST_EMERGENCY_FACTOR
        return scores

    def _best(self, scores: npt.NDArray[np.float64]) -> tuple[int, float]:
        """Index and score of the best matter, preferring a clarify option that scores almost as well as
        the ambiguous matter asking it (the message then carries the detail the question would ask for;
        the option keeps the ambiguous matter's score, since the message plainly is about that topic),
        and an emergency that scores almost as well as the best."""
        i = int(np.argmax(scores))
        score = float(scores[i])
        options = self._options.get(i)
        if options:
            j = max(options, key=lambda o: scores[o])
            if scores[j] >= OPTION_PREFERENCE * score:
                i = j
        if self._emergencies.size and i not in self._emergency_set:
            # Safety first: when an emergency reads almost as likely, answer the emergency.
            e = int(self._emergencies[np.argmax(scores[self._emergencies])])
            if scores[e] >= EMERGENCY_PREFERENCE * score:
                return e, float(scores[e])
        return i, score

    def party_probabilities(self, text: str) -> dict[str, float]:
        """The party classifier's probability of each first contact for normalized ``text`` (for tools
        and tests); empty when the index has no classifier."""
        probs = self._party_probabilities(_clip(text)[1])
        if probs is None or self._party is None:
            return {}
        return dict(zip(self._party.classes, map(float, probs), strict=True))

    def _party_probabilities(self, prepared: str) -> npt.NDArray[np.float64] | None:
        if self._party is None:
            return None
        counts = Counter(ngrams(prepared))
        ids = np.fromiter(map(self._vocab.get, counts, repeat(-1)), dtype=np.intp, count=len(counts))
        known = ids >= 0
        n_seen = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))[known]
        term_idx = ids[known]
        return self._party.probabilities(term_idx, (1.0 + np.log(n_seen)) * self._term_weight[term_idx])

    def _rerank(
        self, scores: npt.NDArray[np.float64], probs: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """``scores`` with the best few plausible matters raised by :data:`PARTY_WEIGHT` times the
        party classifier's probability of their first contact."""
        top = float(scores.max())
        k = min(RERANK_TOP_K, len(scores))
        candidates = np.argpartition(-scores, k - 1)[:k]
        candidates = candidates[scores[candidates] >= RERANK_FLOOR * top]
        adjusted = scores.copy()
        adjusted[candidates] += PARTY_WEIGHT * probs[self._party_of[candidates]]
        return adjusted

    def rank(self, text: str, k: int = 5) -> list[Hit]:
        """The ``k`` best matters for ``text``, best first, whatever their score (for tools and tests)."""
        scores = self._query(text)
        if scores is None:
            return []
        order = np.argsort(-scores)[:k]
        return [Hit(self._ids[i], float(scores[i])) for i in order]

    def search(self, text: str, *, ordinary: bool = False) -> Hit | None:
        """The best matter for ``text`` (already normalized), or None if nothing scores above threshold.

        ``ordinary``: no emergency matter answers (the understanding found the danger told as reported,
        past or hypothetical: the resident needs the ordinary matter, not a safety script).
        """
        clipped, prepared = _clip(text)
        scores = self._scores(clipped, prepared)
        if scores is None:
            return None
        if ordinary and self._emergencies.size:
            scores[self._emergencies] = 0.0
        i, score = self._best(scores)
        if self._party is None or float(scores.max()) < PARTY_FALLBACK_THRESHOLD:
            return None if score < self.threshold else Hit(self._ids[i], round(min(score, 1.0), 4))
        if score >= self.threshold:
            # The message is about some matter: the party classifier picks among the plausible ones
            # (when they have different first contacts; otherwise it has nothing to decide).
            top = float(scores.max())
            plausible = self._party_of[scores >= RERANK_FLOOR * top]
            if np.any(plausible != plausible[0]):
                probs = self._party_probabilities(prepared)
                assert probs is not None
                j, _ = self._best(self._rerank(scores, probs))
                if j != i:
                    i, score = j, max(min(float(scores[j]), score), self.threshold)
            return Hit(self._ids[i], round(min(score, 1.0), 4))
        # Nothing is similar enough, but the wording says clearly whose matter it is: the best matter of
        # that party answers if it is at least a weak match.
        probs = self._party_probabilities(prepared)
        assert probs is not None
        party = int(np.argmax(probs))
        if probs[party] < PARTY_CONFIDENT:
            return None
        members = np.flatnonzero(self._party_of == party)
        j = int(members[np.argmax(scores[members])])
        if scores[j] < PARTY_FALLBACK_THRESHOLD:
            return None
        return Hit(self._ids[j], round(float(scores[j]), 4))

    def ids(self) -> Iterable[str]:
        return iter(self._ids)
