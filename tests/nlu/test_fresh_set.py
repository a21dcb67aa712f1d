"""The fresh check set (bench/data/fresh.yml): written before the party reranker of kb/search.py and
scored only as a whole, so it must be as clean as the development set: known codes, real appeals that
neither dev.yml nor heldout.yml adapts, and no near duplicate of the training data, the held-out set or
the development set. A clash with a blind held-out message is reported without its text."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.nlu_bench import HELDOUT, Case, load_heldout
from bot.nlu.embedded import load_training_data
from bot.nlu.route import INTENTS_WITH_CONTACT
from tests.nlu.test_training_data import _key, assert_distinct, assert_labels_use_known_codes, near_duplicate

DATA = Path(__file__).resolve().parents[2] / "bench" / "data"
FRESH = DATA / "fresh.yml"
DEV = DATA / "dev.yml"


@pytest.fixture(scope="module")
def fresh() -> list[Case]:
    return load_heldout(FRESH)


def test_fresh_set_is_big_and_uses_known_codes(fresh: list[Case]) -> None:
    with_contact = [c for c in fresh if c.intent in INTENTS_WITH_CONTACT]
    assert len(with_contact) >= 120
    assert not any(c.blind for c in fresh)
    assert {c.intent for c in with_contact} == set(INTENTS_WITH_CONTACT)
    assert all(c.party is not None for c in with_contact)
    assert_labels_use_known_codes(fresh)
    keys = {f"{c.party}/{c.sub}" if c.sub else str(c.party) for c in with_contact}
    assert len(keys) >= 20


def test_fresh_set_draws_on_appeals_no_other_set_adapts() -> None:
    raw = yaml.safe_load(FRESH.read_text("utf-8"))["messages"]
    sources = [str(m["source"]) for m in raw if m.get("source")]
    assert len(sources) * 2 >= len(raw) - 20
    assert all(s.startswith("teddy2020c/") for s in sources)
    assert len(set(sources)) == len(sources), "an appeal adapted twice"
    others: set[str] = set()
    for path in (DEV, HELDOUT):
        others |= {str(m.get("source")) for m in yaml.safe_load(path.read_text("utf-8"))["messages"]}
    shared = set(sources) & others
    assert not shared, f"{len(shared)} appeal(s) adapted in another set"


def test_fresh_set_is_no_copy_of_training_dev_or_heldout(fresh: list[Case]) -> None:
    others = [(_key(e.text), repr(e.text)) for e in load_training_data()]
    others += [(_key(c.text), repr(c.text)) for c in load_heldout(DEV)]
    others += [
        (_key(c.text), "(a blind held-out message)" if c.blind else repr(c.text)) for c in load_heldout()
    ]
    clashes = [
        f"{case.text!r} ~ {shown}"
        for case in fresh
        if (key := _key(case.text))
        for other, shown in others
        if other and near_duplicate(key, other)
    ]
    assert not clashes, "\n".join(clashes)


def test_fresh_messages_are_distinct(fresh: list[Case]) -> None:
    assert_distinct(fresh)
