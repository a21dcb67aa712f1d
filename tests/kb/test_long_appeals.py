"""A long written appeal is understood by its opening, which names the problem and the place, not by
the history and indignation after it (messages written for this test)."""

from __future__ import annotations

import pytest

from bot.nlu.normalize import normalize
from kb import load_knowledge_base

_TAIL = (
    "我们小区物业服务一直很差，物业费年年涨，停车费也乱收，业主们意见很大，找物业多次都没有结果，"
    "物业经理也不接电话，希望领导重视。"
)


@pytest.mark.parametrize(
    ("opening", "matter"),
    [
        ("反映小区门口马路上井盖缺失的问题。", "manhole_municipal"),
        ("投诉小区旁边工厂夜里排放废气的问题。", "pollution_factory"),
        ("反映小区外马路上路灯不亮的问题。", "street_light_municipal"),
        ("反映小区门口共享单车堆积的问题。", "shared_bikes_piled"),
    ],
)
def test_a_long_appeal_is_read_by_its_opening(opening: str, matter: str) -> None:
    answer = load_knowledge_base().lookup(normalize(opening + _TAIL), "demo")
    assert answer is not None and answer.matter_id == matter
