"""Evaluation sets that look like the product: real long appeals, emergencies said the way residents say
them, and the messages that only sound like one. Scored by :mod:`bench.nlu_bench` for each backend.

- **Real appeals, first contact** (:func:`score_real_appeals`): the first contact huiyin gives for an
  appeal's text (:func:`bot.nlu.route.route_understanding`, as the held-out set's first-contact score) is
  right when it is among the parties the government's reply names (:mod:`bench.real_appeals`; a noisy
  label). Strict: party and sub-code (``department:housing``); party only: any department counts for a
  department. Beside it the trivial baselines "always department" (party only), "always the most named
  department" (strict, the department the supervision half names most often) and "always property".
  The intent should be report or ask_contact; emergency and the rest are counted.
- **False emergencies** (:func:`score_false_emergencies`): over every real appeal, those the turn
  pipeline would answer with the emergency script (:func:`bot.turn.handlers.emergency.is_emergency`).
  Each one flagged has been read: ``bench/data/real_emergencies.yml`` lists those that are live
  emergencies after all (a recall case, not a false alarm) and those read and found not live; a flagged
  appeal in neither list is printed as unreviewed, to be read and added.
- **Emergency recall and precision** (:func:`score_emergency_set`) on ``bench/data/emergencies.yml``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from bench.real_appeals import RealAppeal
from bench.services import percentile
from bot.nlu.base import Intent, Understanding
from bot.nlu.route import route_understanding
from bot.turn.handlers.emergency import is_emergency
from kb import KnowledgeBase

DATA = Path(__file__).resolve().parent / "data"
EMERGENCIES = DATA / "emergencies.yml"
REVIEWED_EMERGENCIES = DATA / "real_emergencies.yml"

LONG_TEXT_CHARS = 500
"""Texts at least this long get their own latency line (a quarter of the real appeals; chat messages are
rarely longer than 50)."""

Understander = Callable[[str], Understanding]


def safety_script(understanding: Understanding, kb: KnowledgeBase, community: str) -> bool:
    """Whether the turn pipeline answers this understanding with the emergency script (its own check,
    :func:`~bot.turn.handlers.emergency.is_emergency`, on a stand-in for the turn)."""
    services = SimpleNamespace(kb=kb)
    turn = SimpleNamespace(understanding=understanding, ref=SimpleNamespace(community_code=community))
    return is_emergency(services, turn)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Routed:
    """One text through a backend: what the product would do with it, and how long understanding took."""

    route: dict[str, Any]
    emergency: bool
    ms: float
    chars: int

    @property
    def intent(self) -> str:
        return str(self.route["intent"]["name"])

    @property
    def contact(self) -> tuple[str, str | None] | None:
        c = self.route["first_contact"]
        return None if c is None else (c["party"], c["sub"])


def route_all(
    understand: Understander, kb: KnowledgeBase, community: str, texts: Sequence[str]
) -> list[Routed]:
    """Each text understood, routed and checked for the emergency script; wall clock per text covers
    understanding and routing, not the emergency check (which repeats a KB lookup the turn would share)."""
    out = []
    for text in texts:
        started = time.perf_counter()
        u = understand(text)
        route = route_understanding(u, kb, community)
        ms = (time.perf_counter() - started) * 1000
        out.append(Routed(route, safety_script(u, kb, community), ms, len(text)))
    return out


# --- real appeals: first contact -------------------------------------------------------------------


@dataclass
class RealScore:
    """First contact on appeals whose reply names a party, and the intents on all appeals of a half."""

    name: str
    appeals: int = 0  # all appeals of the half
    scored: int = 0  # of them, with a reply naming at least one party
    strict: int = 0
    party_only: int = 0
    no_contact: int = 0
    intents: Counter[str] = field(default_factory=Counter)
    baselines: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    long_latencies_ms: list[float] = field(default_factory=list)
    misses: list[tuple[RealAppeal, tuple[str, str | None] | None]] = field(default_factory=list)

    @property
    def right_intent(self) -> int:
        return self.intents[Intent.REPORT.value] + self.intents[Intent.ASK_CONTACT.value]


def most_named_department(appeals: Sequence[RealAppeal]) -> str:
    """The department code the replies of ``appeals`` name most often (the strict baseline's guess)."""
    counts = Counter(p for a in appeals for p in a.parties if p.startswith("department:"))
    return counts.most_common(1)[0][0] if counts else "department:urban_management"


def score_real_appeals(
    name: str, appeals: Sequence[RealAppeal], routed: Sequence[Routed], department_guess: str
) -> RealScore:
    """Score the routes of ``appeals`` (same order) against the parties their replies name."""
    score = RealScore(name)
    score.baselines = {
        "always department (party only)": 0,
        f"always {department_guess}": 0,
        "always property": 0,
    }
    for appeal, r in zip(appeals, routed, strict=True):
        score.appeals += 1
        score.intents[r.intent] += 1
        score.latencies_ms.append(r.ms)
        if r.chars >= LONG_TEXT_CHARS:
            score.long_latencies_ms.append(r.ms)
        if not appeal.parties:
            continue
        score.scored += 1
        parties_only = {p.partition(":")[0] for p in appeal.parties}
        contact = r.contact
        if contact is None:
            score.no_contact += 1
        elif appeal.accepts(*contact):
            score.strict += 1
        if contact is not None and contact[0] in parties_only:
            score.party_only += 1
        if contact is None or not appeal.accepts(*contact):
            score.misses.append((appeal, contact))
        score.baselines["always department (party only)"] += "department" in parties_only
        score.baselines[f"always {department_guess}"] += department_guess in appeal.parties
        score.baselines["always property"] += "property" in appeal.parties
    return score


# --- false emergencies on real appeals -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Review:
    """What a person found reading the real appeals the product flagged as emergencies."""

    live: dict[int, str]  # id → why it is a live emergency
    not_live: frozenset[int]


def load_review(path: Path = REVIEWED_EMERGENCIES) -> Review:
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    live = {int(item["id"]): str(item["why"]) for item in doc.get("live") or []}
    not_live = frozenset(int(i) for i in doc.get("not_live") or [])
    if live.keys() & not_live:
        raise ValueError(f"{path.name}: ids both live and not live: {sorted(live.keys() & not_live)}")
    return Review(live, not_live)


@dataclass
class FalseEmergencies:
    name: str
    appeals: int
    flagged: list[int]
    live: list[int]  # flagged and reviewed as live emergencies
    false: list[int]  # flagged and reviewed as not live
    unreviewed: list[int]  # flagged, not read yet: counted as false until read
    missed_live: list[int]  # reviewed as live, not flagged

    @property
    def false_total(self) -> int:
        return len(self.false) + len(self.unreviewed)


def score_false_emergencies(
    name: str, appeals: Sequence[RealAppeal], routed: Sequence[Routed], review: Review
) -> FalseEmergencies:
    flagged = [a.id for a, r in zip(appeals, routed, strict=True) if r.emergency]
    flagged_set = set(flagged)
    return FalseEmergencies(
        name=name,
        appeals=len(appeals),
        flagged=flagged,
        live=[i for i in flagged if i in review.live],
        false=[i for i in flagged if i in review.not_live],
        unreviewed=[i for i in flagged if i not in review.live and i not in review.not_live],
        missed_live=sorted(i for i in review.live if i not in flagged_set),
    )


# --- emergency recall and precision ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DangerCase:
    text: str
    kind: str
    emergency: bool  # true: a live emergency; false: only mentions a danger


def load_emergency_set(path: Path = EMERGENCIES) -> list[DangerCase]:
    """The emergencies and the non-emergencies that mention a danger; raises ValueError when malformed."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases = []
    for key, live in (("emergencies", True), ("not_emergencies", False)):
        for i, item in enumerate(doc[key]):
            if not isinstance(item, dict) or not isinstance(item.get("text"), str) or "kind" not in item:
                raise ValueError(f"{path.name}: {key} #{i + 1} is malformed: {item!r}")
            cases.append(DangerCase(item["text"], str(item["kind"]), live))
    return cases


@dataclass
class EmergencyScore:
    name: str
    live: int = 0
    caught: int = 0
    calm: int = 0
    false_alarms: int = 0
    missed_by_kind: Counter[str] = field(default_factory=Counter)
    alarms_by_kind: Counter[str] = field(default_factory=Counter)
    misses: list[DangerCase] = field(default_factory=list)
    alarms: list[DangerCase] = field(default_factory=list)


def score_emergency_set(name: str, cases: Sequence[DangerCase], routed: Sequence[Routed]) -> EmergencyScore:
    score = EmergencyScore(name)
    for case, r in zip(cases, routed, strict=True):
        if case.emergency:
            score.live += 1
            if r.emergency:
                score.caught += 1
            else:
                score.missed_by_kind[case.kind] += 1
                score.misses.append(case)
        else:
            score.calm += 1
            if r.emergency:
                score.false_alarms += 1
                score.alarms_by_kind[case.kind] += 1
                score.alarms.append(case)
    return score


# --- printing ----------------------------------------------------------------------------------------------


def pct(right: int, total: int) -> str:
    return f"{100 * right / total:5.1f}% ({right}/{total})" if total else "   n/a"


def _latency(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    return f"p50 {percentile(list(values), 0.5):.1f} ms, p99 {percentile(list(values), 0.99):.1f} ms"


def print_real(title: str, scores: Sequence[RealScore], show_misses: int = 0) -> None:
    first = scores[0]
    print(
        f"\n{title}: {first.appeals} appeals, {first.scored} with a reply naming a party "
        "(first contact right when among the reply's parties)"
    )
    header = f"{'backend':<34}{'strict (party+sub)':<22}{'party only':<22}{'no contact':<20}{'intent report/ask':<22}"
    print(header)
    print("-" * len(header))
    for s in scores:
        print(
            f"{s.name:<34}{pct(s.strict, s.scored):<22}{pct(s.party_only, s.scored):<22}"
            f"{pct(s.no_contact, s.scored):<20}{pct(s.right_intent, s.appeals):<22}"
        )
    for baseline, right in first.baselines.items():
        print(f"{'  baseline ' + baseline:<34}{pct(right, first.scored)}")
    for s in scores:
        others = ", ".join(
            f"{intent} {n}"
            for intent, n in s.intents.most_common()
            if intent not in (Intent.REPORT.value, Intent.ASK_CONTACT.value)
        )
        print(f"{s.name}: other intents: {others or 'none'}")
        print(
            f"{s.name}: latency (understanding + KB) {_latency(s.latencies_ms)}; texts ≥ {LONG_TEXT_CHARS} "
            f"chars ({len(s.long_latencies_ms)}): {_latency(s.long_latencies_ms)}"
        )
        for appeal, contact in s.misses[:show_misses]:
            got = (
                f"{contact[0]}/{contact[1]}"
                if contact and contact[1]
                else (contact[0] if contact else "none")
            )
            print(f"  #{appeal.id} got {got:<32} reply: {' '.join(sorted(appeal.parties))}  {appeal.topic}")


def print_false_emergencies(scores: Sequence[FalseEmergencies], appeals: dict[int, RealAppeal]) -> None:
    for s in scores:
        print(
            f"\n{s.name}: emergency script on real appeals: {pct(len(s.flagged), s.appeals)}; "
            f"false alarms {pct(s.false_total, s.appeals)} ({len(s.unreviewed)} of them not yet reviewed), "
            f"live emergencies among them {len(s.live)}"
        )
        for label, ids in (("false", s.false), ("unreviewed", s.unreviewed), ("live", s.live)):
            if ids:
                print(f"  {label}: " + " ".join(f"#{i}" for i in ids))
        for i in s.unreviewed:
            print(f"    unreviewed #{i} {appeals[i].topic}: {appeals[i].detail[:120]}")
        if s.missed_live:
            print("  live emergencies (reviewed) not flagged: " + " ".join(f"#{i}" for i in s.missed_live))


def print_emergency_set(scores: Sequence[EmergencyScore], show_misses: bool) -> None:
    first = scores[0]
    print(
        f"\nemergencies (bench/data/emergencies.yml): {first.live} live, {first.calm} that only mention danger"
    )
    header = f"{'backend':<22}{'recall':<22}{'false-alarm rate':<22}"
    print(header)
    print("-" * len(header))
    for s in scores:
        print(f"{s.name:<22}{pct(s.caught, s.live):<22}{pct(s.false_alarms, s.calm):<22}")
    for s in scores:
        missed = ", ".join(f"{k} {n}" for k, n in s.missed_by_kind.most_common())
        alarms = ", ".join(f"{k} {n}" for k, n in s.alarms_by_kind.most_common())
        print(f"{s.name}: missed by kind: {missed or 'none'}; false alarms by kind: {alarms or 'none'}")
        if show_misses:
            for case in s.misses:
                print(f"  missed  [{case.kind}] {case.text}")
            for case in s.alarms:
                print(f"  alarm   [{case.kind}] {case.text}")
