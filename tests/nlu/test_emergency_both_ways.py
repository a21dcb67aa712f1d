"""Emergencies both ways: a live danger in colloquial, typo-ridden words is an emergency; a danger that is
reported, past, hypothetical, a nuisance or a request for safety equipment is an ordinary appeal or
question, answered by an ordinary matter (never by a safety script).

The messages were written for this test (neither training, development nor evaluation data).
"""

from __future__ import annotations

import pytest

from bot.nlu.base import NLUBackend
from bot.nlu.normalize import normalize
from bot.nlu.route import route_understanding
from bot.nlu.rules import emergency_kind, told_not_live
from kb import load_knowledge_base


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("燃起泄漏了快来人", "gas"),  # 燃气 typed as 燃起
        ("好像是然气漏了", "gas"),
        ("小孩摸电线被电了", "injury"),
        ("我家老人摔地上起不来了", "injury"),
        ("奶奶在厕所滑倒了起不来", "injury"),
        ("刚才听说3栋着火了 现在还在烧", "fire"),  # heard of it, but burning now
    ],
)
def test_live_danger_in_colloquial_words(text: str, kind: str) -> None:
    assert emergency_kind(normalize(text)) == kind


@pytest.mark.parametrize(
    "text",
    [
        "燃气灶打不着火",  # the stove will not light
        "楼下餐馆的烟囱冒烟熏到我家",
        "邻居在楼道烧纸冒烟",
        "小区里的狗没拴绳很吓人怕咬到孩子",
    ],
)
def test_no_danger_now_by_the_rule(text: str) -> None:
    assert emergency_kind(normalize(text)) is None


@pytest.mark.parametrize(
    "text",
    [
        "我怕 楼下着火了 烟都上来了",  # fear said apart from the fire: the fire is now
        "救命 听说楼下着火了",
    ],
)
def test_fear_or_hearsay_does_not_hide_an_urgent_danger(text: str) -> None:
    normalized = normalize(text)
    assert emergency_kind(normalized) is not None
    assert not told_not_live(normalized)


NOT_LIVE = [
    "听说隔壁小区着火了",
    "听说3栋昨天着火了",
    "万一着火怎么办",
    "新闻里说有个小区燃气爆炸了",
    "据说前几天有人触电了",
    "以前有人在这里摔倒过",
    "小区里的狗没拴绳很吓人怕咬到孩子",
    "电动车在楼道充电有火灾隐患",
    "楼下烧烤摊油烟很大",
    "邻居在楼道烧纸冒烟",
    "燃气灶打不着火",
    "楼下餐馆的烟囱冒烟熏到我家",
    "有人在楼道抽烟",
]


ORDINARY_ANSWERS = [
    *NOT_LIVE,
    "上个月电梯困过人",
    "去年电梯困过人到现在也没修",
    "防止老人摔倒能不能装扶手",
    "上周有人被狗咬了物业也不管",
]


@pytest.mark.parametrize("text", ORDINARY_ANSWERS)
async def test_no_safety_script_for_a_danger_not_happening_now(shared_nlu: NLUBackend, text: str) -> None:
    kb = load_knowledge_base()
    route = route_understanding(await shared_nlu.parse(text), kb, "demo")
    assert route["intent"]["name"] in ("report", "ask_contact")
    assert route["kb_id"] is None or not kb.matter(route["kb_id"]).emergency


@pytest.mark.parametrize(
    ("text", "kb_id"),
    [("上个月电梯困过人", "lift_broken"), ("去年电梯困过人到现在也没修", "lift_broken")],
)
async def test_a_lift_that_trapped_people_before_is_a_lift_repair(
    shared_nlu: NLUBackend, text: str, kb_id: str
) -> None:
    route = route_understanding(await shared_nlu.parse(text), load_knowledge_base(), "demo")
    assert route["kb_id"] == kb_id


@pytest.mark.parametrize(
    "text",
    [
        "老人摔倒了起不来",
        "我家老人摔地上起不来了",
        "楼道里一股煤汽味",
        "燃起泄漏了快来人",
        "有人被困在电梯里了",
        "孩子被狗咬了",
        "有人触电了",
        "小孩摸电线被电了",
        "楼道全是烟呛得不行",
        "隔壁家着伙了",
        "刚才听说3栋着火了 现在还在烧",
    ],
)
async def test_live_danger_stays_an_emergency(shared_nlu: NLUBackend, text: str) -> None:
    route = route_understanding(await shared_nlu.parse(text), load_knowledge_base(), "demo")
    assert route["intent"]["name"] == "emergency"
    assert route["answer"]


@pytest.mark.parametrize(
    "text",
    [
        # Long written appeals: fires, fights and injuries as background, statistics or arguments.
        "关于我们小区物业管理混乱的问题。自2016年交房以来，物业服务一直很差，绿化无人打理，垃圾随处可见，"
        "业主多次反映都没有结果，开发商承诺的配套也没有兑现，希望有关部门督促整改。小区配电箱起火了好几回，"
        "物业至今没有给出说法。",
        "反映夜宵一条街占道经营扰民的问题。每天晚上十点以后烧烤摊摆满人行道，喝酒划拳到凌晨两三点，"
        "周边居民根本无法休息，还经常发生打架斗殴流血事件，请求城管部门依法取缔。",
        "请求在老社区安装监控设备。我们社区道路四通八达，没有门禁，入室盗窃案件时有发生，居民很没有安全感。",
        "投诉开发商延期交房。合同约定去年底交房，现在一拖再拖，业主还着房贷又交着房租，苦不堪言，请领导救救我们。",
        "小区门口的井盖缺了一个，晚上没有灯，稍有不慎就会有小孩掉进去，希望尽快补上。",
        "小区里随意张贴小广告，带头破坏文明创建的成果，希望社区管一管。",
    ],
)
def test_a_long_appeal_mentioning_dangers_is_not_an_emergency(text: str) -> None:
    assert emergency_kind(normalize(text)) is None
