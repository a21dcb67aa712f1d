"""Ask before answering when the party depends on where the thing is, and answer the most specific
matter when the message says it (messages written for this test)."""

from __future__ import annotations

import pytest

from bot.nlu.normalize import normalize
from kb import load_knowledge_base


@pytest.mark.parametrize("text", ["有人违建找谁", "举报违章建筑", "发现有人私自盖房子 该向谁举报"])
def test_illegal_building_without_a_place_asks_where(text: str) -> None:
    kb = load_knowledge_base()
    answer = kb.lookup(normalize(text), "demo")
    assert answer is not None and answer.clarify is not None
    options = dict((matter, label) for label, matter in answer.clarify.options)
    assert set(options) == {"illegal_construction", "illegal_construction_outside_estate"}
    parties = {kb.answer(m, "demo").first_contact.party for m in options}
    assert parties == {"property", "department"}


@pytest.mark.parametrize("text", ["楼下油烟味很大", "油烟味太大了找谁", "家里总有股油烟味"])
def test_fumes_without_a_source_ask_whether_a_shop_or_a_neighbour(text: str) -> None:
    kb = load_knowledge_base()
    answer = kb.lookup(normalize(text), "demo")
    assert answer is not None and answer.clarify is not None
    options = {matter for _, matter in answer.clarify.options}
    assert options == {"cooking_fumes_restaurant", "neighbour_smoking_smell"}
    parties = {kb.answer(m, "demo").first_contact.party for m in options}
    assert parties == {"property", "department"}


@pytest.mark.parametrize(
    ("text", "matter"),
    [
        ("顶楼私自加盖了一层", "illegal_construction"),
        ("一楼住户在院子里盖房子", "illegal_construction"),
        ("小区外面马路边有人违章建房", "illegal_construction_outside_estate"),
        ("邻居做饭油烟飘到我家", "neighbour_smoking_smell"),
        ("烧烤店油烟太大", "cooking_fumes_restaurant"),
        ("楼上装修电钻声太吵", "noise_renovation"),
        ("楼上一大早就在电钻", "noise_renovation"),
    ],
)
def test_a_message_that_says_where_gets_the_specific_matter(text: str, matter: str) -> None:
    answer = load_knowledge_base().lookup(normalize(text), "demo")
    assert answer is not None and answer.matter_id == matter
    assert answer.clarify is None
