"""Who comes first, per matter, follows the routing rules and the routing table (kb/README.md).

Where several first contacts could act, the first one listed is the matter's first contact; the others are
in the escalation chain or the text.
Also: the knowledge base never echoes the held-out evaluation set.
"""

from __future__ import annotations

import re

import pytest

from bench.nlu_bench import load_heldout
from bot.nlu.normalize import normalize
from kb import KnowledgeBase, load_knowledge_base


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return load_knowledge_base()


# (matter id, expected first contact "party" or "party/sub", why)
FIRST_CONTACTS = [
    ("drain_blocked_in_flat", "property", "先找物业 (paid service for the exclusive part)"),
    ("water_outage", "utility/water", "municipal cut → 供水企业 (listed first)"),
    ("water_outage_area", "utility/water", "a cut in the area: 供水企业"),
    ("water_outage_building", "property", "estate 二次供水 → P"),
    ("water_quality", "utility/water", "水质发黄 → 供水企业"),
    ("water_quality_secondary_supply", "property", "estate 二次供水 → P"),
    ("street_light_municipal", "department/urban_management", "outside the estate: 城管/市政"),
    ("noise_construction", "department/environment", "construction noise: 生态环境"),
    ("noise_commercial", "department/environment", "commercial noise: 生态环境"),
    ("mahjong_parlour", "department/environment", "a business's noise"),
    ("dog_bite", "emergency/police", "bite → 110 + vaccine"),
    ("parking_fee_dispute", "property", "the fee is in the property contract"),
    ("property_poor_service", "property", "the property's own service"),
    ("suspicious_person", "emergency/police", "110 / 派出所"),
    ("owners_committee_misconduct", "street", "S / 乡镇 + C"),
    ("maintenance_fund_balance", "owners_committee", "业委会 / P"),
    ("neighbour_dispute", "community", "a dispute between neighbours"),
    ("neighbour_camera_privacy", "community", "a dispute between neighbours"),
    ("epidemic_measures", "property", "P carries out the measures"),
    ("electrical_sparks", "emergency/fire", "routing rule 6: smoke or sparks from a fuse box"),
    ("manhole_cover", "department/urban_management", "a municipal manhole: 城管"),
    ("canopy_damaged", "property", "routing rule 1: a common part"),
    ("garbage_station_nuisance", "property", "物业 is the 管理责任人"),
    ("broadband_access_monopoly", "department/communications", "→ 通信管理局"),
]


@pytest.mark.parametrize(("matter_id", "party", "why"), FIRST_CONTACTS)
def test_first_contact_follows_the_routing_rules(
    kb: KnowledgeBase, matter_id: str, party: str, why: str
) -> None:
    contact = kb.answer(matter_id, "demo").first_contact
    got = f"{contact.party}/{contact.sub}" if contact.sub else contact.party
    assert got == party, why


def test_a_past_fire_told_as_background_is_not_the_fire_matter(kb: KnowledgeBase) -> None:
    answer = kb.lookup(normalize("去年楼里发生过一场火灾，到现在楼道的灯还是坏的，也没人打扫"), "demo")
    assert answer is not None and not answer.emergency
    now = kb.lookup(normalize("楼里着火了 好大的烟"), "demo")
    assert now is not None and now.matter_id == "fire"


_SEPARATORS = re.compile(r"[\s\W_]+")


def _bigrams(text: str) -> set[str]:
    key = _SEPARATORS.sub("", normalize(text))
    return {key[i : i + 2] for i in range(len(key) - 1)} or {key}


def test_matter_examples_are_not_copied_from_the_heldout_set(kb: KnowledgeBase) -> None:
    """No example or title shares ≥ 70 % of its bigrams with a held-out message (as for training data)."""
    heldout = [(case.text, _bigrams(case.text), case.blind) for case in load_heldout()]
    clashes = []
    for matter in kb.matters():
        for example in (matter.title, *matter.examples):
            grams = _bigrams(example)
            if len(grams) < 3:
                continue
            for text, other, blind in heldout:
                if len(grams & other) / len(grams | other) >= 0.7:
                    # Never show a blind held-out message, not even in a failing test.
                    clashes.append((matter.id, example, "(a blind held-out message)" if blind else text))
    assert not clashes
