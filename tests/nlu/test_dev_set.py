"""The development set (bench/data/dev.yml): the figure to tune against instead of the held-out set.

It must be a fair stand-in: big enough, labelled with known codes, drawn partly from real appeals, and
neither a copy of the training data nor of the held-out set (the same near-duplicate rule as for the
held-out set). A clash with a blind held-out message is reported without its text, so that nobody reads
the blind subset through this test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.nlu_bench import HELDOUT, Case, load_heldout
from bot.nlu.embedded import TrainingExample, load_training_data
from bot.nlu.route import INTENTS_WITH_CONTACT
from tests.nlu.test_training_data import _key, assert_distinct, assert_labels_use_known_codes, near_duplicate

DEV = Path(__file__).resolve().parents[2] / "bench" / "data" / "dev.yml"


@pytest.fixture(scope="module")
def dev() -> list[Case]:
    return load_heldout(DEV)


def test_dev_set_is_big_and_uses_known_codes(dev: list[Case]) -> None:
    assert len(dev) >= 200
    assert not any(c.blind for c in dev)
    with_contact = [c for c in dev if c.intent in INTENTS_WITH_CONTACT]
    assert len(with_contact) >= 200
    assert {c.intent for c in with_contact} == set(INTENTS_WITH_CONTACT)
    assert_labels_use_known_codes(dev)


def test_dev_set_draws_on_real_appeals_and_covers_many_parties(dev: list[Case]) -> None:
    raw = yaml.safe_load(DEV.read_text(encoding="utf-8"))["messages"]
    sources = [str(m.get("source", "")) for m in raw]
    assert sum(s.startswith("teddy2020c/") for s in sources) >= 80
    assert len({s for s in sources if s}) == sum(bool(s) for s in sources), "an appeal adapted twice"
    texts = [m["text"] for m in raw]
    assert sum(any(ch in t for ch in "樓電誰該報謝轉們裡門燈燒著") for t in texts) >= 8
    assert sum(len(t) >= 80 for t in texts) >= 8
    keys = {f"{c.party}/{c.sub}" if c.sub else str(c.party) for c in dev if c.intent in INTENTS_WITH_CONTACT}
    assert len(keys) >= 20


def test_dev_set_never_adapts_an_appeal_the_heldout_set_adapts() -> None:
    dev_sources = {str(m.get("source")) for m in yaml.safe_load(DEV.read_text("utf-8"))["messages"]}
    heldout_sources = {str(m.get("source")) for m in yaml.safe_load(HELDOUT.read_text("utf-8"))["messages"]}
    shared = (dev_sources & heldout_sources) - {"None"}
    assert not shared, f"{len(shared)} appeal(s) adapted in both sets"


def test_dev_set_is_no_copy_of_training_data(dev: list[Case]) -> None:
    examples: list[TrainingExample] = load_training_data()
    train_keys = [_key(e.text) for e in examples]
    clashes = [
        (case.text, e.text)
        for case in dev
        if (key := _key(case.text))
        for e, tk in zip(examples, train_keys, strict=True)
        if near_duplicate(key, tk)
    ]
    assert not clashes


def test_dev_set_is_no_copy_of_heldout_set(dev: list[Case]) -> None:
    heldout = load_heldout()
    heldout_keys = [(_key(c.text), c) for c in heldout]
    clashes: list[str] = []
    for case in dev:
        key = _key(case.text)
        if not key:
            continue
        for hk, h in heldout_keys:
            if hk and near_duplicate(key, hk):
                # Never show a blind held-out message, not even in a failing test.
                clashes.append(f"{case.text!r} ~ {'(a blind held-out message)' if h.blind else repr(h.text)}")
    assert not clashes, "\n".join(clashes)


def test_dev_messages_are_distinct(dev: list[Case]) -> None:
    assert_distinct(dev)
