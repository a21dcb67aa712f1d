"""Rule-based extraction of the entities every backend needs in canonical form.

Buildings, units and rooms are written in many ways ("3栋2单元502", "三号楼", "3-2-502", "B座"), phones
with or without separators, and appeal ids in any case. These are closed patterns where rules are exact
and fast, so the embedded NLU and the Rasa adapter both take them from here. Values are canonical:
Arabic numerals, upper-case building letters, appeal ids as ``HY-YYYYMMDD-NNNN``.

Input must already be normalized (:func:`bot.nlu.normalize.normalize`): half-width digits, simplified
script, lower case.
"""

from __future__ import annotations

import re

from bot.nlu.base import Entity, EntityType

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "幺": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
              "六": 6, "七": 7, "八": 8, "九": 9}  # fmt: skip
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_NUM = "零〇一幺二两三四五六七八九十百千"
NUM = rf"(?:\d{{1,4}}|[{_CN_NUM}]{{1,6}})"


def chinese_to_int(text: str) -> int | None:
    """``"3"`` → 3, ``"十二"`` → 12, ``"二十三"`` → 23, ``"一百零五"`` → 105, ``"五零二"`` → 502.

    Returns None when the text is not a number. Digit-by-digit readings (五零二) are common for rooms.
    """
    if text.isdigit():
        return int(text)
    if not text or any(ch not in _CN_NUM for ch in text):
        return None
    if not any(ch in _CN_UNITS for ch in text):
        # 五零二: read digit by digit.
        return int("".join(str(_CN_DIGITS[ch]) for ch in text))
    total, current = 0, 0
    for ch in text:
        if ch in _CN_DIGITS:
            current = _CN_DIGITS[ch]
        else:
            unit = _CN_UNITS[ch]
            total += (current or 1) * unit  # 十二: a leading 十 means 一十
            current = 0
    return total + current


# 3-2-502 / 3栋2单元502 / 3号楼2单元502室 / 三号楼 / b座 / 12幢
_TRIPLE = re.compile(r"(?<![\d-])(\d{1,3})-(\d{1,2})-(\d{3,4})(?![\d-])")
_BUILDING = re.compile(rf"({NUM}|[a-z])\s*(?:号楼|栋|幢|座|号楼栋)")
_UNIT = re.compile(rf"({NUM})\s*(?:单元|门洞)")
_ROOM_EXPLICIT = re.compile(rf"({NUM})\s*(?:室|号房|房间|户)")
_ROOM_AFTER = re.compile(r"\s*-?\s*(\d{3,4})(?![\d])")  # the number right after a building/unit
_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)[\s-]?(\d{4})[\s-]?(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3})-(\d{7,8})(?!\d)")
_APPEAL_ID = re.compile(r"(?<![a-z])([a-z]{2})-?(20\d{6})-?(\d{4})(?!\d)")
_TIME = re.compile(
    r"(?:今天|昨天|前天|今早|今晚|昨晚|昨夜|凌晨|早上|上午|中午|下午|傍晚|晚上|半夜|深夜|周末|每天|天天|"
    r"最近|一直|刚才|刚刚|"
    + NUM
    + r"\s*(?:个)?(?:天|周|星期|个月|年|小时|分钟)(?:了|多了|以上)?|好几天|好久|几天)"
)
# Shared places of an estate, longest first so "地下车库" wins over "车库".
PLACE_WORDS: tuple[str, ...] = tuple(
    sorted(
        {
            "地下车库",
            "地下停车场",
            "车库",
            "停车场",
            "停车位",
            "楼道",
            "楼梯间",
            "楼梯",
            "走廊",
            "电梯间",
            "电梯",
            "大堂",
            "单元门",
            "门禁",
            "小区门口",
            "小区大门",
            "大门",
            "门口",
            "东门",
            "西门",
            "南门",
            "北门",
            "侧门",
            "后门",
            "花园",
            "绿化带",
            "草坪",
            "健身区",
            "健身器材",
            "垃圾站",
            "垃圾房",
            "垃圾桶",
            "垃圾分类点",
            "天台",
            "楼顶",
            "屋顶",
            "地下室",
            "消防通道",
            "人行道",
            "小区道路",
            "广场",
            "篮球场",
            "儿童乐园",
            "游乐场",
            "快递柜",
            "充电桩",
            "自行车棚",
            "车棚",
            "物业中心",
            "物业办公室",
            "水泵房",
            "配电房",
            "化粪池",
            "外墙",
            "井盖",
            "下水道",
            "公共厕所",
            "凉亭",
            "水池",
            "喷泉",
            "围墙",
            "岗亭",
            "道闸",
            "架空层",
            "雨棚",
            "信报箱",
            "消防栓",
            "路口",
            "马路",
            "公交站",
            "菜市场",
            "幼儿园",
            "学校门口",
            "社区服务中心",
            "党群服务中心",
        },
        key=len,
        reverse=True,
    )
)
_PLACE = re.compile("|".join(map(re.escape, PLACE_WORDS)))


def _num(text: str) -> str | None:
    if len(text) == 1 and text.isascii() and text.isalpha():
        return text.upper()
    value = chinese_to_int(text)
    return None if value is None else str(value)


def extract_entities(text: str) -> tuple[Entity, ...]:
    """All entities in normalized ``text``, ordered by position. Never raises."""
    found: list[Entity] = []
    taken: list[tuple[int, int]] = []

    def add(kind: EntityType, value: str | None, start: int, end: int) -> None:
        if value is None or any(s < end and start < e for s, e in taken):
            return
        taken.append((start, end))
        found.append(Entity(type=kind, value=value, text=text[start:end], start=start, end=end))

    for m in _APPEAL_ID.finditer(text):
        add(EntityType.APPEAL_ID, f"{m[1].upper()}-{m[2]}-{m[3]}", m.start(), m.end())
    for m in _PHONE.finditer(text):
        add(EntityType.PHONE, m[1] + m[2] + m[3], m.start(), m.end())
    for m in _LANDLINE.finditer(text):
        add(EntityType.PHONE, f"{m[1]}-{m[2]}", m.start(), m.end())
    for m in _TRIPLE.finditer(text):
        add(EntityType.BUILDING, str(int(m[1])), m.start(1), m.end(1))
        add(EntityType.UNIT, str(int(m[2])), m.start(2), m.end(2))
        add(EntityType.ROOM, m[3], m.start(3), m.end(3))
    last_structural_end = -1
    for pattern, kind in ((_BUILDING, EntityType.BUILDING), (_UNIT, EntityType.UNIT)):
        for m in pattern.finditer(text):
            before = len(found)
            add(kind, _num(m[1]), m.start(), m.end())
            if len(found) > before:
                last_structural_end = max(last_structural_end, m.end())
    for m in _ROOM_EXPLICIT.finditer(text):
        add(EntityType.ROOM, _num(m[1]), m.start(), m.end())
    if last_structural_end >= 0 and not any(e.type is EntityType.ROOM for e in found):
        after = _ROOM_AFTER.match(text, last_structural_end)
        if after:
            add(EntityType.ROOM, after[1], after.start(1), after.end(1))
    for m in _PLACE.finditer(text):
        add(EntityType.PLACE, m[0], m.start(), m.end())
    for m in _TIME.finditer(text):
        add(EntityType.TIME, m[0], m.start(), m.end())
    found.sort(key=lambda e: e.start)
    return tuple(found)
