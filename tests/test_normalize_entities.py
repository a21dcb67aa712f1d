"""Normalization and rule-based entities: the canonical forms every component matches against."""

from __future__ import annotations

import pytest

from bot.nlu.base import EntityType
from bot.nlu.entities import chinese_to_int, extract_entities
from bot.nlu.normalize import normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("樓道燈壞了好幾天了！！", "楼道灯坏了好几天了!!"),
        ("３栋２单元　５０２", "3栋2单元 502"),
        ("@回音 下水道堵了😭😭", "下水道堵了"),
        ("@回音3栋灯坏了", "3栋灯坏了"),
        ("@王阿姨\u2005您好", "您好"),
        ("HY-20261122-0001", "hy-20261122-0001"),
        ("", ""),
        ("\x00\x01\x02", ""),
        ("👍👍👍", ""),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_normalize_bounds_work_on_huge_input() -> None:
    assert len(normalize("漏水" * 10_000)) <= 1000


@pytest.mark.parametrize(
    ("text", "number"),
    [("3", 3), ("十二", 12), ("二十三", 23), ("一百零五", 105), ("五零二", 502), ("两", 2), ("abc", None)],
)
def test_chinese_numerals(text: str, number: int | None) -> None:
    assert chinese_to_int(text) == number


def _values(text: str) -> dict[str, str]:
    return {e.type.value: e.value for e in extract_entities(normalize(text))}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3栋2单元502厨房漏水", {"building": "3", "unit": "2", "room": "502"}),
        ("三号楼楼道灯坏了", {"building": "3", "place": "楼道"}),
        ("地下车库有积水", {"place": "地下车库"}),
        ("3-2-502", {"building": "3", "unit": "2", "room": "502"}),
        ("十二幢五零二室", {"building": "12", "room": "502"}),
        ("B座1单元1201", {"building": "B", "unit": "1", "room": "1201"}),
        ("不对，是4栋", {"building": "4"}),
        ("我电话138 1234 5678", {"phone": "13812345678"}),
        ("座机0755-88881234", {"phone": "0755-88881234"}),
        ("hy-20261122-0001进度怎么样", {"appeal_id": "HY-20261122-0001"}),
        ("HY202611220001", {"appeal_id": "HY-20261122-0001"}),
    ],
)
def test_entities(text: str, expected: dict[str, str]) -> None:
    found = _values(text)
    for kind, value in expected.items():
        assert found.get(kind) == value, found


def test_floor_is_not_a_building() -> None:
    # "5楼" is the fifth floor, not building 5.
    assert EntityType.BUILDING.value not in _values("5楼的邻居天天吵")


def test_entity_spans_point_into_the_normalized_text() -> None:
    text = normalize("麻烦看看 3栋2单元502 的水管")
    for e in extract_entities(text):
        assert text[e.start : e.end] == e.text
