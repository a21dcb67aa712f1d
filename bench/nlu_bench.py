"""Benchmark understanding + "who should I contact" on the held-out set (bench/data/heldout.yml).

Prints, for the embedded NLU and (side by side, same run) the Rasa service when ``--rasa-url`` is given:
intent accuracy, first-contact accuracy, and p50/p99 latency per message of understanding + knowledge-base
lookup; then the worst intents and the most frequent confusions. The blind subset of the held-out set is
also scored on its own (see the file's header).

    python -m bench.nlu_bench [--rasa-url http://127.0.0.1:5005] [--community demo] [--repeat 5]
    python -m bench.nlu_bench --heldout bench/data/dev.yml --show-misses    the development set
    python -m bench.nlu_bench --sets real,emergencies                          only some of the sets

Besides the held-out set (``heldout``), the sets that look like the product (bench/product_sets.py,
bench/group_dialogs.py), each for the embedded NLU and Rasa in the same run:

- ``real``: 3,157 real long citizen appeals (bench/real_appeals.py): the first contact on the evaluation
  half (odd ids) against the parties the government's reply names, with trivial baselines, the intents,
  latency on long texts; the supervision half (even ids) beside it; and the appeals answered with the
  emergency script (false emergencies, each flagged appeal reviewed in bench/data/real_emergencies.yml);
- ``emergencies``: recall on live emergencies and the false-alarm rate on messages that only mention a
  danger (bench/data/emergencies.yml);
- ``groups``: multi-turn building-group transcripts through the real turn pipeline
  (bench/data/group_dialogs.yml): turns right and transcripts fully right.

Tune against the development set (bench/data/dev.yml, same schema); the held-out set is the final check.

First contact is scored on messages whose expected intent is report, ask_contact or emergency: right when
the predicted first contact has the expected party and, where one is expected, the expected sub-code;
a message labelled ``party: null`` is right when no contact is given. A wrong intent usually means a wrong
or missing contact, so this is an end-to-end figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import yaml

from bench import group_dialogs, product_sets, real_appeals
from bench.services import percentile
from bot.nlu.base import Intent, IntentScore, Understanding
from bot.nlu.embedded import (
    REGULARIZATION_C,
    EmbeddedNLU,
    TrainingExample,
    build,
    load_training_data,
    train,
)
from bot.nlu.entities import extract_entities
from bot.nlu.normalize import normalize
from bot.nlu.route import INTENTS_WITH_CONTACT, route_understanding
from kb import KnowledgeBase, load_knowledge_base

HELDOUT = Path(__file__).resolve().parent / "data" / "heldout.yml"
SETS = ("heldout", "real", "emergencies", "groups")

Backends = list[tuple[str, Callable[[str], Understanding]]]
"""Each backend's name and its synchronous understand()."""


@dataclass(frozen=True, slots=True)
class Case:
    text: str
    intent: Intent
    party: str | None
    sub: str | None
    blind: bool


def load_heldout(path: Path = HELDOUT) -> list[Case]:
    """The held-out messages; raises ValueError on a malformed entry."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases = []
    for i, item in enumerate(doc["messages"]):
        try:
            intent = Intent(item["intent"])
            text = item["text"]
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path.name}: message #{i + 1} is malformed: {item!r}") from exc
        if not isinstance(text, str):
            raise ValueError(f"{path.name}: message #{i + 1}: text must be a string")
        if intent in INTENTS_WITH_CONTACT and "party" not in item:
            raise ValueError(f"{path.name}: message #{i + 1} ({intent.value}) needs party: (or party: null)")
        cases.append(Case(text, intent, item.get("party"), item.get("sub"), bool(item.get("blind"))))
    return cases


@dataclass
class Score:
    """Accuracy and latency of one backend over the cases."""

    name: str
    intent_right: int = 0
    total: int = 0
    contact_right: int = 0
    contact_total: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # CPU time: robust to a busy machine's preemption
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)
    per_intent: Counter[tuple[str, str]] = field(default_factory=Counter)  # (intent, "tp"/"fp"/"fn")
    contact_misses: list[tuple[Case, dict[str, Any] | None]] = field(default_factory=list)
    intent_misses: list[tuple[Case, str]] = field(default_factory=list)
    miss_causes: Counter[str] = field(default_factory=Counter)

    def add(self, case: Case, route: dict[str, Any]) -> None:
        predicted = route["intent"]["name"]
        self.total += 1
        if predicted == case.intent.value:
            self.intent_right += 1
            self.per_intent[(predicted, "tp")] += 1
        else:
            self.confusions[(case.intent.value, predicted)] += 1
            self.intent_misses.append((case, predicted))
            self.per_intent[(predicted, "fp")] += 1
            self.per_intent[(case.intent.value, "fn")] += 1
        if case.intent in INTENTS_WITH_CONTACT:
            self.contact_total += 1
            contact = route["first_contact"]
            if case.party is None:
                right = contact is None
            else:
                right = (
                    contact is not None
                    and contact["party"] == case.party
                    and (case.sub is None or contact["sub"] == case.sub)
                )
            if right:
                self.contact_right += 1
            else:
                self.contact_misses.append((case, contact))
                if predicted != case.intent.value:
                    self.miss_causes["wrong intent"] += 1
                elif contact is None:
                    self.miss_causes["no knowledge-base match"] += 1
                elif case.party is None:
                    self.miss_causes["a contact where none was expected"] += 1
                else:
                    self.miss_causes["a matter with another party"] += 1

    def f1(self, intent: str) -> float:
        tp, fp, fn = (self.per_intent[(intent, k)] for k in ("tp", "fp", "fn"))
        return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _pct(right: int, total: int) -> str:
    return f"{100 * right / total:5.1f}% ({right}/{total})" if total else "   n/a"


def run_backend(
    name: str,
    understand: Callable[[str], Understanding],
    kb: KnowledgeBase,
    cases: list[Case],
    community: str,
    repeat: int,
) -> tuple[Score, Score]:
    """Score ``understand`` (+ KB routing) on all cases and on the blind subset; latency over ``repeat``
    passes (the first pass also warms caches, as a running bot would be)."""
    overall, blind = Score(name), Score(f"{name} (blind)")
    for r in range(repeat):
        for case in cases:
            started, cpu_started = time.perf_counter(), time.thread_time()
            route = route_understanding(understand(case.text), kb, community)
            overall.latencies_ms.append((time.perf_counter() - started) * 1000)
            overall.cpu_ms.append((time.thread_time() - cpu_started) * 1000)
            if r == 0:
                overall.add(case, route)
                if case.blind:
                    blind.add(case, route)
    return overall, blind


def rasa_understander(
    url: str, timeout_s: float
) -> tuple[Callable[[str], Understanding], httpx.Client] | None:
    """A synchronous understand() over Rasa's /model/parse, or None when the server is unreachable."""
    client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s, trust_env=False)
    try:
        client.post("/model/parse", json={"text": "你好"}).raise_for_status()
    except httpx.HTTPError:
        client.close()
        return None
    intents = {i.value: i for i in Intent}

    def understand(text: str) -> Understanding:
        normalized = normalize(text)  # as the adapter does (integrations/rasa/adapter.py)
        if not normalized:
            score = IntentScore(Intent.OTHER, 0.0)
            return Understanding(text="", intent=score, ranking=(score,), backend="rasa")
        body = client.post("/model/parse", json={"text": normalized}).json()
        raw = body.get("intent") or {}
        score = IntentScore(
            intents.get(str(raw.get("name")), Intent.OTHER), float(raw.get("confidence") or 0.0)
        )
        return Understanding(
            text=normalized,
            intent=score,
            entities=extract_entities(normalized),
            ranking=(score,),
            backend="rasa",
        )

    return understand, client


def cross_validate(folds: int = 5, grid: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0)) -> int:
    """Stratified k-fold accuracy on the training data for each regularization C (no held-out data)."""
    examples = load_training_data()
    by_intent: dict[Intent, list[TrainingExample]] = {}
    for example in examples:
        by_intent.setdefault(example.intent, []).append(example)
    fold_of = {id(e): i % folds for group in by_intent.values() for i, e in enumerate(group)}
    print(f"{folds}-fold cross-validation on {len(examples)} training examples")
    for c in grid:
        right = 0
        for k in range(folds):
            model = train([e for e in examples if fold_of[id(e)] != k], c=c)
            nlu = EmbeddedNLU(model)
            tests = [e for e in examples if fold_of[id(e)] == k]
            right += sum(nlu.understand(e.text).intent.name is e.intent for e in tests)
        marker = "  (current)" if c == REGULARIZATION_C else ""
        print(f"  C={c:<6g} accuracy {100 * right / len(examples):.1f}%{marker}")
    return 0


def warm_rss_mb(cache_dir: Path) -> float | None:
    """Max RSS of a fresh process that loads the embedded NLU from the cache and the KB, then routes."""
    code = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from bot.nlu.embedded import build\n"
        "from bot.nlu.route import route_understanding\n"
        "from kb import load_knowledge_base\n"
        f"nlu = build(Path({str(cache_dir)!r}))\n"
        "kb = load_knowledge_base()\n"
        "route_understanding(nlu.understand('楼道灯坏了找谁'), kb, kb.communities()[0].code)\n"
        "assert 'sklearn' not in sys.modules, 'warm start imported scikit-learn'\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    if done.returncode != 0:
        print(f"(warm RSS probe failed: {done.stderr.strip().splitlines()[-1:]})")
        return None
    return int(done.stdout.strip().splitlines()[-1]) / 1024


def print_table(rows: list[tuple[Score, Score]]) -> None:
    header = (
        f"{'backend':<22}{'intent accuracy':<22}{'first-contact accuracy':<26}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'cpu p50':>9}{'cpu p99':>9}"
    )
    print(header)
    print("-" * len(header))
    for overall, blind in rows:
        p50, p99 = percentile(overall.latencies_ms, 0.50), percentile(overall.latencies_ms, 0.99)
        c50, c99 = percentile(overall.cpu_ms, 0.50), percentile(overall.cpu_ms, 0.99)
        print(
            f"{overall.name:<22}{_pct(overall.intent_right, overall.total):<22}"
            f"{_pct(overall.contact_right, overall.contact_total):<26}{p50:8.3f}{p99:8.3f}{c50:9.3f}{c99:9.3f}"
        )
        print(
            f"{'  blind subset':<22}{_pct(blind.intent_right, blind.total):<22}"
            f"{_pct(blind.contact_right, blind.contact_total):<26}"
        )


def print_confusions(score: Score, worst: int = 4, top: int = 10) -> None:
    intents = [i.value for i in Intent]
    ranked = sorted(intents, key=score.f1)
    print(
        f"\n{score.name}: worst intents by F1: " + ", ".join(f"{i} {score.f1(i):.2f}" for i in ranked[:worst])
    )
    if score.confusions:
        print(f"{score.name}: most frequent confusions (expected → predicted):")
        for (gold, predicted), n in score.confusions.most_common(top):
            print(f"  {gold:>12} → {predicted:<12} {n}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heldout", type=Path, default=HELDOUT, help="held-out YAML (default: %(default)s)")
    parser.add_argument("--community", default="demo", help="community whose contacts answer (default: demo)")
    parser.add_argument(
        "--rasa-url", default=None, help="also benchmark a Rasa server, e.g. http://127.0.0.1:5005"
    )
    parser.add_argument("--rasa-timeout", type=float, default=5.0, help="seconds per Rasa call")
    parser.add_argument("--repeat", type=int, default=5, help="latency passes over the set (default: 5)")
    parser.add_argument(
        "--show-misses",
        action="store_true",
        help="list wrong intents and first contacts (blind subset hidden)",
    )
    parser.add_argument("--show-blind", action="store_true", help="with --show-misses: the blind subset too")
    parser.add_argument(
        "--cv",
        action="store_true",
        help="only cross-validate the regularization on the training data, then exit",
    )
    parser.add_argument(
        "--sets",
        default=",".join(SETS),
        help="comma-separated sets to score (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    if args.cv:
        return cross_validate()
    sets = [name.strip() for name in args.sets.split(",") if name.strip()]
    unknown = set(sets) - set(SETS)
    if unknown:
        parser.error(f"unknown sets {sorted(unknown)}; known: {', '.join(SETS)}")
    cases = load_heldout(args.heldout)
    print(
        f"held-out: {args.heldout} — {len(cases)} messages ({sum(c.blind for c in cases)} blind), "
        f"community {args.community}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(tmp)
        started, cpu_started = time.perf_counter(), time.process_time()
        cold = build(cache_dir)
        cold_s, cold_cpu = time.perf_counter() - started, time.process_time() - cpu_started
        started = time.perf_counter()
        nlu = build(cache_dir)
        warm_s = time.perf_counter() - started
        rss = warm_rss_mb(cache_dir)
    started = time.perf_counter()
    kb = load_knowledge_base()
    kb_s = time.perf_counter() - started
    assert cold.origin == "trained" and nlu.origin == "cache"
    rss_text = f"; max RSS of a warm process with NLU + KB {rss:.0f} MB" if rss is not None else ""
    print(
        f"embedded NLU ready in {cold_s:.2f} s cold (trained; {cold_cpu:.2f} s CPU), {warm_s:.3f} s warm (cache); "
        f"KB loaded in {kb_s:.2f} s{rss_text}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print()

    backends: Backends = [("embedded", nlu.understand)]
    rasa_note = None
    rasa_client: httpx.Client | None = None
    if args.rasa_url:
        rasa = rasa_understander(args.rasa_url, args.rasa_timeout)
        if rasa is None:
            rasa_note = f"rasa: unreachable at {args.rasa_url}"
        else:
            backends.append(("rasa", rasa[0]))
            rasa_client = rasa[1]
    else:
        rasa_note = "rasa: unreachable (no --rasa-url given)"
    try:
        if "heldout" in sets:
            print_heldout(args, backends, kb, cases, rasa_note)
        if "real" in sets:
            score_real(backends, kb, args.community, args.show_misses)
        if "emergencies" in sets:
            score_emergencies(backends, kb, args.community, args.show_misses)
    finally:
        if rasa_client is not None:
            rasa_client.close()
    if "groups" in sets:
        score_groups(nlu, kb, args.rasa_url if rasa_client is not None else None, args.show_misses)
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n(bench process max RSS {max_rss:.0f} MB)")
    return 0


def print_heldout(
    args: argparse.Namespace,
    backends: Backends,
    kb: KnowledgeBase,
    cases: list[Case],
    rasa_note: str | None,
) -> None:
    """The held-out set's table, confusions and (with --show-misses) misses."""
    rows = [
        run_backend(name, understand, kb, cases, args.community, args.repeat) for name, understand in backends
    ]
    print_table(rows)
    if rasa_note:
        print(rasa_note)
    print(
        "latency: understanding + KB lookup per message over all passes, wall clock and this thread's CPU time; "
        "rasa's wall clock includes the HTTP round trip"
    )
    for overall, _ in rows:
        print_confusions(overall)
        causes = ", ".join(f"{cause} {n}" for cause, n in overall.miss_causes.most_common())
        print(f"{overall.name}: wrong first contacts by cause: {causes or 'none'}")
    if args.show_misses:
        for overall, _ in rows:
            print(f"\n{overall.name}: wrong intents")
            for case, predicted in overall.intent_misses:
                if args.show_blind or not case.blind:
                    print(f"  want {case.intent.value:<12} got {predicted:<12} {case.text}")
            print(f"\n{overall.name}: wrong first contacts")
            for case, contact in overall.contact_misses:
                if case.blind and not args.show_blind:
                    continue
                got = f"{contact['party']}/{contact['sub']}" if contact else "none"
                want = f"{case.party}/{case.sub}" if case.sub else str(case.party)
                print(f"  want {want:<28} got {got:<28} {case.text}")


def score_real(
    backends: Backends,
    kb: KnowledgeBase,
    community: str,
    show_misses: bool,
) -> None:
    """Real appeals: first contact per half, intents, latency, and false emergencies over all of them."""
    appeals = real_appeals.load()
    review = product_sets.load_review()
    supervision = [a for a in appeals if a.supervision]
    evaluation = [a for a in appeals if not a.supervision]
    tuned = real_appeals.adapted_ids()
    unseen = [a for a in evaluation if a.id not in tuned]
    guess = product_sets.most_named_department(supervision)  # a baseline may learn from the supervision half
    halves: dict[str, list[product_sets.RealScore]] = {"evaluation": [], "unseen": [], "supervision": []}
    flagged = []
    for name, understand in backends:
        started = time.perf_counter()
        routed = product_sets.route_all(understand, kb, community, [a.detail for a in appeals])
        print(f"({name}: {len(appeals)} real appeals routed in {time.perf_counter() - started:.1f} s)")
        by_id = dict(zip((a.id for a in appeals), routed, strict=True))
        for half, rows in (("evaluation", evaluation), ("unseen", unseen), ("supervision", supervision)):
            halves[half].append(
                product_sets.score_real_appeals(name, rows, [by_id[a.id] for a in rows], guess)
            )
        flagged.append(product_sets.score_false_emergencies(name, appeals, routed, review))
    # Misses are listed for the supervision half only: the evaluation half is never read item by item.
    product_sets.print_real("real appeals, first contact — EVALUATION half (odd ids)", halves["evaluation"])
    product_sets.print_real(
        f"real appeals, first contact — evaluation half without the {len(evaluation) - len(unseen)} "
        "that bench/data/dev.yml adapts (tuned against)",
        halves["unseen"],
    )
    product_sets.print_real(
        "real appeals, first contact — supervision half (even ids)",
        halves["supervision"],
        show_misses=30 if show_misses else 0,
    )
    product_sets.print_false_emergencies(flagged, {a.id: a for a in appeals})


def score_emergencies(
    backends: Backends,
    kb: KnowledgeBase,
    community: str,
    show_misses: bool,
) -> None:
    cases = product_sets.load_emergency_set()
    scores = [
        product_sets.score_emergency_set(
            name, cases, product_sets.route_all(understand, kb, community, [c.text for c in cases])
        )
        for name, understand in backends
    ]
    product_sets.print_emergency_set(scores, show_misses)


def score_groups(nlu: EmbeddedNLU, kb: KnowledgeBase, rasa_url: str | None, show_misses: bool) -> None:
    """The group transcripts through the turn pipeline, with the embedded NLU and (given) Rasa's."""
    import asyncio

    from bot.logs import configure_logging

    configure_logging("error")  # each transcript starts a runtime, which logs its start at info
    dialogs = group_dialogs.load_dialogs()
    scores = [asyncio.run(group_dialogs.score_dialogs("embedded", nlu, kb, dialogs))]
    if rasa_url:
        from integrations.rasa.adapter import RasaNLU

        async def with_rasa() -> group_dialogs.GroupScore:
            rasa = RasaNLU(rasa_url, timeout_s=5.0)
            try:
                return await group_dialogs.score_dialogs("rasa", rasa, kb, dialogs)
            finally:
                await rasa.aclose()

        scores.append(asyncio.run(with_rasa()))
    group_dialogs.print_groups(scores, show_misses)


if __name__ == "__main__":
    raise SystemExit(main())
