"""The NLU training data (dialogs/nlu, Rasa 3.x format) and the held-out set (bench/data/heldout.yml)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from bench.nlu_bench import HELDOUT, Case, load_heldout
from bot.nlu.base import Intent
from bot.nlu.embedded import (
    TrainingExample,
    load_training_data,
    strip_markup,
    training_dir,
)
from bot.nlu.entities import extract_entities
from bot.nlu.normalize import normalize
from bot.nlu.route import INTENTS_WITH_CONTACT
from kb.model import SUBS_BY_PARTY, Party

MIN_EXAMPLES = 25  # at least 25 colloquial examples per intent
_SEPARATORS = re.compile(r"[\s\W_]+")


@pytest.fixture(scope="module")
def examples() -> list[TrainingExample]:
    return load_training_data()


def _key(text: str) -> str:
    return _SEPARATORS.sub("", normalize(text))


def _bigrams(key: str) -> set[str]:
    return {key[i : i + 2] for i in range(len(key) - 1)} or {key}


def near_duplicate(a: str, b: str) -> bool:
    """Same after normalization, one inside the other but for a character, or ≥ 70 % shared bigrams."""
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    if short and short in long and len(long) - len(short) <= 1:
        return True
    if min(len(a), len(b)) < 4:
        return False
    ga, gb = _bigrams(a), _bigrams(b)
    return len(ga & gb) / len(ga | gb) >= 0.7


def assert_labels_use_known_codes(cases: Sequence[Case]) -> None:
    """Every evaluation label is a known first contact: a party, with a sub-code exactly where the party
    has them; only a vague report may expect no contact; other intents carry no contact at all."""
    for c in cases:
        if c.intent not in INTENTS_WITH_CONTACT:
            assert c.party is None and c.sub is None, c.text
        elif c.party is None:
            assert c.intent is Intent.REPORT, c.text  # only vague reports expect no contact
        else:
            subs = SUBS_BY_PARTY.get(Party(c.party))
            assert (c.sub is None) if subs is None else (c.sub in subs), c.text


def assert_distinct(cases: Sequence[Case]) -> None:
    """No two messages of one evaluation set are near duplicates of each other."""
    keys = [_key(c.text) for c in cases]
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert not near_duplicate(a, b), (a, b)


def test_every_file_is_rasa_3_nlu_data() -> None:
    files = [f for f in training_dir().iterdir() if f.name.endswith(".yml")]
    assert files
    for file in files:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
        assert str(doc["version"]) == "3.1", file.name
        for block in doc["nlu"]:
            assert set(block) == {"intent", "examples"}, file.name
            Intent(block["intent"])
            lines = [ln for ln in block["examples"].splitlines() if ln.strip()]
            assert all(ln.startswith("- ") for ln in lines), file.name


def test_enough_examples_for_every_intent(examples: list[TrainingExample]) -> None:
    counts = Counter(e.intent for e in examples)
    assert set(counts) == set(Intent)
    assert min(counts.values()) >= MIN_EXAMPLES, counts


def test_no_example_is_repeated_or_under_two_intents(examples: list[TrainingExample]) -> None:
    seen: dict[str, TrainingExample] = {}
    for e in examples:
        key = _key(e.text)
        assert key, f"{e.source}: nothing left after normalization"
        assert key not in seen, f"{e.source} repeats {seen[key].source}"
        seen[key] = e


def test_annotated_entities_are_what_the_extractor_finds(examples: list[TrainingExample]) -> None:
    """Annotations carry canonical values, so they must agree with bot.nlu.entities."""
    annotated = 0
    for e in examples:
        found = {(x.type.value, x.value) for x in extract_entities(normalize(e.text))}
        for a in e.entities:
            annotated += 1
            assert (a.type, a.value) in found, f"{e.source}: {a} not in {sorted(found)}"
    assert annotated >= 30


def test_markup_is_stripped_with_canonical_values() -> None:
    text, entities = strip_markup('[三号楼]{"entity": "building", "value": "3"}[502](room)漏水')
    assert text == "三号楼502漏水"
    assert [(e.type, e.value, e.text, e.start, e.end) for e in entities] == [
        ("building", "3", "三号楼", 0, 3),
        ("room", "502", "502", 3, 6),
    ]
    with pytest.raises(ValueError):
        strip_markup('[三号楼]{"value": "3"}')


def test_malformed_training_data_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text('version: "3.1"\nnlu:\n- intent: complain\n  examples: |\n    - 哈\n')
    with pytest.raises(ValueError, match=r"bad\.yml.*complain"):
        load_training_data(tmp_path)
    (tmp_path / "bad.yml").write_text("nlu: []\n")
    with pytest.raises(ValueError, match=r"bad\.yml"):
        load_training_data(tmp_path)


# --- the held-out set ------------------------------------------------------------------------------


def test_heldout_is_big_labelled_and_uses_known_codes() -> None:
    cases = load_heldout()
    assert len(cases) >= 320
    assert {c.intent for c in cases} == set(Intent)
    assert sum(c.blind for c in cases) >= 50
    assert sum(c.intent in INTENTS_WITH_CONTACT for c in cases) >= 150
    assert_labels_use_known_codes(cases)


def test_heldout_has_traditional_script_long_and_adapted_messages() -> None:
    raw = yaml.safe_load(HELDOUT.read_text(encoding="utf-8"))["messages"]
    texts = [m["text"] for m in raw]
    assert sum(any(ch in t for ch in "樓電誰該報謝轉們裡門") for t in texts) >= 10
    assert sum(len(t) >= 30 for t in texts) >= 25
    assert sum(len(t) >= 80 for t in texts) >= 8
    assert sum(str(m.get("source", "")).startswith("teddy2020c/") for m in raw) >= 30


def test_heldout_never_overlaps_training(examples: list[TrainingExample]) -> None:
    train_keys = [_key(e.text) for e in examples]
    clashes: list[tuple[str, str]] = []
    for case in load_heldout():
        key = _key(case.text)
        if not key:  # emoji-only probes: nothing to overlap
            continue
        clashes.extend(
            (case.text, e.text) for e, tk in zip(examples, train_keys, strict=True) if near_duplicate(key, tk)
        )
    assert not clashes


def test_near_duplicate_rule() -> None:
    assert near_duplicate(_key("楼道灯坏了！"), _key("楼道灯坏了"))
    assert near_duplicate(_key("樓道燈壞了"), _key("楼道灯坏了"))
    assert near_duplicate(_key("退出吧"), _key("退出"))
    assert not near_duplicate(_key("楼道灯坏了找谁"), _key("电梯坏了"))
