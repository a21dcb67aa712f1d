"""``route_message`` and ``huiyin route``: their JSON contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bot.nlu.base import Intent, IntentScore, NLUBackend, Understanding
from bot.nlu.route import render_readable, route_command, route_message, route_understanding
from kb import KnowledgeBase, load_knowledge_base

KEYS = {"intent", "entities", "first_contact", "escalation", "kb_id", "answer"}
CONTACT_KEYS = {"party", "sub", "name", "phone"}


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return load_knowledge_base()


def assert_shape(route: dict[str, Any]) -> None:
    assert set(route) == KEYS
    assert set(route["intent"]) == {"name", "confidence"}
    Intent(route["intent"]["name"])
    assert 0.0 <= route["intent"]["confidence"] <= 1.0
    for entity in route["entities"]:
        assert set(entity) == {"type", "value", "text", "start", "end"}
    if route["first_contact"] is not None:
        assert set(route["first_contact"]) == CONTACT_KEYS
    for contact in route["escalation"]:
        assert set(contact) == CONTACT_KEYS
    json.dumps(route, ensure_ascii=False)  # serializable as is


async def test_ask_contact_names_the_property_company(shared_nlu: NLUBackend, kb: KnowledgeBase) -> None:
    route = await route_message(shared_nlu, kb, "3栋2单元的楼道灯坏了找谁修", "demo")
    assert_shape(route)
    assert route["intent"]["name"] == "ask_contact"
    assert route["first_contact"]["party"] == "property"
    assert route["first_contact"]["phone"]
    assert route["escalation"] and route["kb_id"] and route["answer"]
    assert {(e["type"], e["value"]) for e in route["entities"]} >= {("building", "3"), ("unit", "2")}


async def test_a_gas_smell_gets_safety_first(shared_nlu: NLUBackend, kb: KnowledgeBase) -> None:
    route = await route_message(shared_nlu, kb, "樓道裡一股煤氣味", "demo")
    assert_shape(route)
    assert route["intent"]["name"] == "emergency"
    assert route["first_contact"]["party"] == "utility" and route["first_contact"]["sub"] == "gas"
    assert route["answer"].startswith("【紧急】")


@pytest.mark.parametrize(
    "text", ["你好", "谢谢", "算了", "转人工", "我的诉求办到哪了", "晚饭吃什么", "", "😀"]
)
async def test_intents_without_a_contact_have_none(
    shared_nlu: NLUBackend, kb: KnowledgeBase, text: str
) -> None:
    route = await route_message(shared_nlu, kb, text, "demo")
    assert_shape(route)
    assert route["intent"]["name"] not in {"report", "ask_contact", "emergency"}
    assert route["first_contact"] is None
    assert route["escalation"] == [] and route["kb_id"] is None and route["answer"] is None


@pytest.mark.parametrize(
    ("kind_text", "party", "sub"),
    [
        ("有人被困在电梯里 喊也没人应", "property", None),  # lift_trapped: the lift's user unit first
        ("快来人 有个小孩被开水烫伤了", "emergency", "ambulance"),
        ("有个男的拿着棍子在楼下追着人打", "emergency", "police"),
        ("厨房冒黑烟了 救命", "emergency", "fire"),
        # The lift matter matches on "电梯", but the danger is a fire.
        ("电动车在电梯里自燃了 轿厢都是烟", "emergency", "fire"),
        ("救命 我爸突然吐血了", "emergency", "ambulance"),
        # "救命" says nothing of the kind: the stroke signs decide (not the police).
        ("救命 我妈突然说不出话了 嘴也歪了", "emergency", "ambulance"),
        ("救命 有人拿刀", "emergency", "police"),
    ],
)
def test_emergency_always_gets_an_emergency_answer(
    kb: KnowledgeBase, kind_text: str, party: str, sub: str | None
) -> None:
    # Built by hand so that the test is about routing, whatever the model says about the wording.
    from bot.nlu.normalize import normalize

    score = IntentScore(Intent.EMERGENCY, 0.9)
    understanding = Understanding(text=normalize(kind_text), intent=score, ranking=(score,))
    route = route_understanding(understanding, kb, "demo")
    assert route["first_contact"]["party"] == party
    assert route["first_contact"]["sub"] == sub
    assert route["answer"].startswith("【紧急】")


def test_a_bare_call_for_help_gets_the_generic_emergency_answer(kb: KnowledgeBase) -> None:
    score = IntentScore(Intent.EMERGENCY, 0.95)
    route = route_understanding(Understanding(text="救命", intent=score, ranking=(score,)), kb, "demo")
    assert route["kb_id"] is None  # not the violence matter: nothing says what happened
    assert route["first_contact"]["party"] == "emergency"
    assert all(number in route["answer"] for number in ("110", "119", "120"))


def test_emergency_without_any_hint_still_points_to_110(kb: KnowledgeBase) -> None:
    score = IntentScore(Intent.EMERGENCY, 0.6)
    route = route_understanding(Understanding(text="快来人啊", intent=score, ranking=(score,)), kb, "demo")
    assert route["first_contact"]["party"] == "emergency"
    assert route["first_contact"]["phone"] == "110"
    assert "110" in route["answer"]


async def test_unknown_community_is_refused(shared_nlu: NLUBackend, kb: KnowledgeBase) -> None:
    with pytest.raises(ValueError, match="unknown community"):
        await route_message(shared_nlu, kb, "物业电话多少", "atlantis")


def test_readable_answer_is_chinese(kb: KnowledgeBase) -> None:
    score = IntentScore(Intent.GREET, 0.97)
    text = render_readable(
        route_understanding(Understanding(text="你好", intent=score, ranking=(score,)), kb, "demo")
    )
    assert text.startswith("意图：问候")


# --- the command -----------------------------------------------------------------------------------


@pytest.fixture
def runner(nlu_cache_dir: Path, shared_nlu: NLUBackend, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    # Reuse the session's trained model (no second training) and keep files out of the working dir.
    monkeypatch.setenv("HUIYIN_DATA_DIR", str(nlu_cache_dir))
    return CliRunner()


def test_command_prints_one_json_object(runner: CliRunner) -> None:
    result = runner.invoke(route_command, ["楼上漏水到我家了找谁", "--json"])
    assert result.exit_code == 0, result.output
    route = json.loads(result.stdout)
    assert_shape(route)
    assert route["first_contact"] is not None


def test_command_reads_stdin_one_json_line_per_message(runner: CliRunner) -> None:
    messages = ["你好", "闻到煤气味了", "", "物业电话多少", "谢谢"]
    result = runner.invoke(route_command, ["--json", "-"], input="\n".join(messages) + "\n")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(messages)
    routes = [json.loads(line) for line in lines]
    for route in routes:
        assert_shape(route)
    assert [r["intent"]["name"] for r in routes] == ["greet", "emergency", "other", "ask_contact", "thanks"]


def test_command_without_json_prints_readable_text(runner: CliRunner) -> None:
    result = runner.invoke(route_command, ["楼道灯坏了找谁", "--community", "demo"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("意图：咨询该找谁")
    assert "先找" in result.stdout


def test_command_refuses_an_unknown_community(runner: CliRunner) -> None:
    result = runner.invoke(route_command, ["你好", "--community", "atlantis"])
    assert result.exit_code == 2
    assert "unknown community" in result.output
