"""Measure knowledge-base load time and lookup latency: ``python -m kb.bench``.

Messages are built from the knowledge base itself, varied the way residents write (a building number in
front, a question tail, two matters run together, long rambling text), so the benchmark needs no data
outside the package. Each message is looked up once to warm caches, then timed ``--rounds`` times.
Wall-clock percentiles include whatever else the machine is doing; the "best of rounds" figures show
the cost of a lookup itself.
"""

from __future__ import annotations

import statistics
import time

import click


def _messages(texts: list[str]) -> list[str]:
    out: list[str] = []
    for i, t in enumerate(texts):
        out.append(t)
        out.append(f"{i % 30 + 1}栋{i % 4 + 1}单元{t}，这个找谁啊")
        out.append(f"请问{t}{texts[(i * 7) % len(texts)]}")
    for i in range(0, len(texts), 5):
        out.append("，".join(texts[i : i + 8]) * 2)  # long messages (cut to MAX_QUERY_CHARS by the search)
    return out


def cross_validate(folds: int) -> None:
    """How often the answer to a knowledge-base example has the right first contact when that example is
    not in the index: each matter's examples are split into ``folds`` folds; for each fold the index (and
    its party classifier) is built without it and every held-out example is looked up. Printed with and
    without the party classifier, so its weights can be chosen without any evaluation set."""
    from kb import KnowledgeBase
    from kb.search import MatterIndex, party_key

    matters = list(KnowledgeBase.from_root().matters())
    for use_party in (False, True):
        right = answered = total = 0
        started = time.perf_counter()
        for k in range(folds):
            kept, held = [], []
            for m in matters:
                out = [ex for i, ex in enumerate(m.examples) if i % folds == k and len(m.examples) > 1]
                held += [(ex, party_key(m)) for ex in out]
                kept.append(m.model_copy(update={"examples": [ex for ex in m.examples if ex not in out]}))
            index = MatterIndex(kept, party_model=use_party)
            by_id = {m.id: m for m in kept}
            for text, expected in held:
                total += 1
                hit = index.search(text)
                if hit is not None:
                    answered += 1
                    right += party_key(by_id[hit.matter_id]) == expected
        click.echo(
            f"party classifier {'on ' if use_party else 'off'}: right first contact {right / total:.1%} "
            f"({right}/{total}), answered {answered / total:.1%}, {folds} folds in "
            f"{time.perf_counter() - started:.1f} s"
        )


@click.command()
@click.option("--rounds", default=10, show_default=True, help="Timed lookups per message.")
@click.option("--community", default="demo", show_default=True)
@click.option(
    "--cv",
    "folds",
    type=int,
    default=0,
    help="Instead: cross-validate first contact over this many folds of the KB's own examples.",
)
def main(rounds: int, community: str, folds: int) -> None:
    """Print load+index time and lookup latency percentiles (or, with --cv, a cross-validation)."""
    if folds:
        cross_validate(folds)
        return
    from kb import KnowledgeBase

    imported = time.perf_counter()
    kb = KnowledgeBase.from_root()
    loaded = time.perf_counter()
    texts = [ex for m in kb.matters() for ex in m.examples]
    messages = _messages(texts)
    for m in messages:
        kb.lookup(m, community)
    wall: list[float] = []
    best: list[float] = []
    clock = time.perf_counter_ns
    for m in messages:
        samples = []
        for _ in range(rounds):
            t0 = clock()
            kb.lookup(m, community)
            samples.append(clock() - t0)
        wall.extend(samples)
        best.append(min(samples))

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000

    click.echo(f"load+check+index {loaded - imported:.3f} s (imports excluded)")
    click.echo(f"{len(kb.matters())} matters, {len(messages)} messages x {rounds} rounds")
    click.echo(
        f"wall clock   p50 {pct(wall, 0.5):.0f} us  p99 {pct(wall, 0.99):.0f} us  "
        f"mean {statistics.fmean(wall) / 1000:.0f} us"
    )
    click.echo(f"best of {rounds}   p50 {pct(best, 0.5):.0f} us  p99 {pct(best, 0.99):.0f} us")


if __name__ == "__main__":
    main()
