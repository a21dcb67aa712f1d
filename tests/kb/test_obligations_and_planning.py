"""Who comes first for developers' obligations, planning, illegal building outside the estate, street
vendors and factories (messages written for this test, not knowledge-base examples)."""

from __future__ import annotations

import pytest

from bot.nlu.normalize import normalize
from kb import load_knowledge_base


@pytest.mark.parametrize(
    ("text", "matter", "party"),
    [
        ("开发商逾期交房半年了", "home_delivery_issues", "developer"),
        ("承诺的配套设施一直没兑现", "home_delivery_issues", "developer"),
        ("开发商没交维修基金", "developer_maintenance_fund", "developer"),
        ("开发商把规划改了 绿地变成了车位", "planning_change", "department:natural_resources"),
        ("小区外面马路边有人违章建房", "illegal_construction_outside_estate", "department:natural_resources"),
        ("楼下宵夜摊占道经营吵到半夜", "street_vendors", "department:urban_management"),
        ("附近工厂晚上排污 一股刺鼻异味", "pollution_factory", "department:environment"),
    ],
)
def test_first_contact(text: str, matter: str, party: str) -> None:
    answer = load_knowledge_base().lookup(normalize(text), "demo")
    assert answer is not None and answer.matter_id == matter
    contact = answer.first_contact
    assert (f"{contact.party}:{contact.sub}" if contact.sub else contact.party) == party


@pytest.mark.parametrize(
    ("matter", "escalation"),
    [
        ("developer_maintenance_fund", "department:housing"),
        ("planning_change", "department:natural_resources"),
        ("illegal_construction_outside_estate", "department:urban_management"),
    ],
)
def test_escalation_reaches_the_department(matter: str, escalation: str) -> None:
    answer = load_knowledge_base().answer(matter, "demo")
    chain = [answer.first_contact, *answer.escalation]
    assert escalation in [f"{c.party}:{c.sub}" if c.sub else c.party for c in chain]
    assert answer.legal_basis
