"""The typo and homophone corrections of bot.nlu.normalize: fix what residents mistype, never real words."""

from __future__ import annotations

import pytest

from bot.nlu.normalize import normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("物叶的电话多少", "物业的电话多少"),
        ("電悌又壞了", "电梯又坏了"),
        ("着伙了 快来人", "着火了 快来人"),
        ("楼到灯不亮", "楼道灯不亮"),
        ("下水到堵了", "下水道堵了"),
        ("楼上装修燥音太大", "楼上装修噪音太大"),
        ("天燃气味道很重", "天然气味道很重"),
        ("暖器不热", "暖气不热"),
        ("拉圾没人清", "垃圾没人清"),
        ("家里暖汽片冰凉", "家里暖气片冰凉"),
        ("电体门关不上", "电梯门关不上"),
        ("消防拴里没水", "消防栓里没水"),
        ("楼下酒吧躁声太大", "楼下酒吧噪声太大"),
    ],
)
def test_common_typos_are_corrected(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    "text",
    [
        "植物叶子黄了",  # 物叶 inside a real word
        "跟着伙伴去玩",  # 着伙 inside 跟着伙伴
        "从一楼到三楼都没电",  # 楼到 across two words
        "楼上漏下水到我家",  # 下水到 across two words
        "取暖器坏了",  # 暖器 inside 取暖器
        "带电体不要碰",  # 电体 inside 带电体
        "导电体和绝缘体",  # 电体 inside 导电体
    ],
)
def test_real_words_are_left_alone(text: str) -> None:
    assert normalize(text) == text


def test_corrections_keep_the_length() -> None:
    """Entity offsets point into the normalized text: a correction must not shift them."""
    raw = "3栋物叶楼到灯坏了 下水到堵了 着伙了"
    assert len(normalize(raw)) == len(raw)
