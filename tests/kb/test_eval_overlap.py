"""The knowledge base's examples are not taken from the development set (bench/data/dev.yml) nor from the
fresh check set (bench/data/fresh.yml).

Routing is tuned against the development set; an example copied (or barely reworded) from it would make
the figure flatter than the truth. Same near-duplicate rule as for the NLU training data
(tests/nlu/test_training_data.py); the held-out set has its own check in tests/kb/test_policy.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.nlu_bench import load_heldout
from kb import load_knowledge_base
from tests.nlu.test_training_data import _key, near_duplicate

DATA = Path(__file__).resolve().parents[2] / "bench" / "data"
DEV = DATA / "dev.yml"
FRESH = DATA / "fresh.yml"


@pytest.mark.parametrize("path", [DEV, FRESH], ids=["dev", "fresh"])
def test_no_example_is_a_dev_message(path: Path) -> None:
    examples = [
        (m.id, ex, _key(ex)) for m in load_knowledge_base().matters() for ex in (m.title, *m.examples)
    ]
    clashes = [
        f"{matter_id}: {example!r} ~ {case.text!r}"
        for case in load_heldout(path)
        if (key := _key(case.text))
        for matter_id, example, example_key in examples
        if near_duplicate(key, example_key)
    ]
    assert not clashes, "\n".join(clashes)
