"""What a group or a neighbour may read of a resident's words: phones and flats masked, in simplified or
traditional characters, with or without the building."""

from __future__ import annotations

import pytest

from bot.dialog.slots import mask_personal


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("3栋2单元502厨房漏水", "3栋2单元***厨房漏水"),
        ("3棟2單元502廚房漏水了", "3棟2單元***廚房漏水了"),
        ("住在3棟1單元201，樓上吵", "住在3棟1單元***，樓上吵"),
        ("我住402，楼上天天剁肉", "我住***，楼上天天剁肉"),
        ("我住在1201", "我住在***"),
        ("502房的水管爆了", "***房的水管爆了"),
        ("我電話13700002222", "我電話137****2222"),
        ("维修师傅10分钟后到502", "维修师傅10分钟后到***"),
        ("电话：138 1234 5678", None),
    ],
)
def test_flats_and_phones_are_masked(text: str, shown: str | None) -> None:
    masked = mask_personal(text)
    if shown is not None:
        assert masked == shown
    for digits in ("502", "201", "402", "1201", "13700002222", "12345678"):
        assert digits not in masked.replace(" ", "")


@pytest.mark.parametrize(
    "text",
    ["2024年3月停过一次水", "等了30分钟", "住3栋的都知道", "12345热线打不通", "到2024年底", "来了300个人"],
)
def test_ordinary_numbers_are_kept(text: str) -> None:
    assert mask_personal(text) == text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("车主是1201的业主", "车主是***的业主"),
        ("502的王阿姨", "***的王阿姨"),
        ("502家漏水", "***家漏水"),
        ("楼上1201天天吵", "楼上***天天吵"),
        ("住12楼1201", "住12楼***"),
        ("师傅去找502", "师傅去找***"),
        ("身份证440301199012345678", "身份证440301********8"),
        ("车牌粤B12345天天堵门", "车牌粤B***45天天堵门"),
        ("业主名叫王秀英，在家", "业主名叫王**，在家"),
        ("王秀英阿姨家漏水", "王**阿姨家漏水"),
        ("李建国先生说", "李**先生说"),
    ],
)
def test_more_of_what_names_a_person_is_masked(text: str, shown: str) -> None:
    assert mask_personal(text) == shown


@pytest.mark.parametrize("text", ["王阿姨家漏水", "隔壁张大爷", "我叫王阿姨", "张师傅修好了", "陈先生"])
def test_a_family_name_and_a_title_stay(text: str) -> None:
    assert mask_personal(text) == text
