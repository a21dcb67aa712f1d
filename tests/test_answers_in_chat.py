"""How a "who should I contact" answer reaches the chat: the hotline with an honest line when the
knowledge base is unsure, and a brief answer in a group (the full one privately)."""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import pytest

from bot.message import ChatType
from bot.nlu.base import Intent, IntentScore, Understanding
from bot.nlu.normalize import normalize
from bot.nlu.route import route_understanding
from bot.runtime import Runtime
from bot.turn.context import TurnContext
from bot.turn.handlers import routing_handlers, run_handlers
from bot.turn.handlers.answers import say_answer
from kb import KBAnswer, KnowledgeBase, load_knowledge_base
from tests.test_turn_handlers import turn, words

MAX_GROUP_LINES = 5


def test_a_weak_answer_the_party_classifier_does_not_back_is_unsure() -> None:
    kb = load_knowledge_base()
    weak = replace(kb.answer("public_toilet", "demo"), score=0.24)
    assert kb.unsure(normalize("车站太脏了"), weak)  # nothing in it says 城管
    assert not kb.unsure(normalize("公厕太脏了"), weak)  # the classifier backs the party
    assert not kb.unsure(normalize("车站太脏了"), replace(weak, score=0.6))  # a confident match
    fire = replace(kb.answer("fire", "demo"), score=0.24)
    assert not kb.unsure(normalize("车站冒烟了"), fire)  # an emergency keeps its safety script


def test_route_answers_the_hotline_when_unsure(monkeypatch: pytest.MonkeyPatch) -> None:
    kb = load_knowledge_base()
    weak = replace(kb.answer("public_toilet", "demo"), score=0.24)

    def lookup(self: KnowledgeBase, text: str, community: str, *, ordinary: bool = False) -> KBAnswer:
        return weak

    monkeypatch.setattr(KnowledgeBase, "lookup", lookup)
    text = normalize("车站太脏了")
    understanding = Understanding(text=text, intent=IntentScore(Intent.REPORT, 0.9), entities=(), ranking=())
    route = route_understanding(understanding, kb, "demo")
    assert route["first_contact"]["party"] == "hotline"
    assert route["first_contact"]["phone"] == "12345"


async def test_an_unsure_answer_says_so_and_gives_the_hotline(runtime: Runtime) -> None:
    kb = load_knowledge_base()
    unsure = kb.hotline_answer("demo", 0.24)
    assert unsure is not None and unsure.unsure
    t = turn(runtime, "车站太脏了", Intent.ASK_CONTACT)
    say_answer(runtime.dispatcher.services, t, unsure)
    assert [p.text for p in t.out.prompts] == [words(runtime, "kb_unsure").replace("{phone}", "12345")]
    assert "12345" in t.out.prompts[0].text


def group_turn(runtime: Runtime, text: str, intent: Intent) -> TurnContext:
    t = turn(runtime, text, intent)
    t.message = replace(t.message, chat_type=ChatType.GROUP, chat_id="grp-3")
    return t


@pytest.mark.parametrize("text", ["楼道灯坏了找谁", "楼上漏水到我家了找谁", "小区门口有人摆摊占道 归谁管"])
async def test_a_group_gets_a_brief_answer_and_the_full_one_privately(runtime: Runtime, text: str) -> None:
    t = group_turn(runtime, normalize(text), Intent.ASK_CONTACT)
    await run_handlers(routing_handlers(runtime.dispatcher.services), t)
    in_group = [p for p in t.out.prompts if not p.private]
    private = [p for p in t.out.prompts if p.private]
    assert len(in_group) == 1 and len(private) == 1
    assert len(in_group[0].text.splitlines()) <= MAX_GROUP_LINES
    answer = cast(KBAnswer, runtime.dispatcher.services.kb.lookup(normalize(text), "demo"))
    assert answer.first_contact.phone and answer.first_contact.phone in in_group[0].text
    assert private[0].text == answer.text
    assert len(answer.text.splitlines()) > MAX_GROUP_LINES  # the full answer would flood the group


async def test_a_private_chat_gets_the_full_answer(runtime: Runtime) -> None:
    t = turn(runtime, normalize("楼道灯坏了找谁"), Intent.ASK_CONTACT)
    await run_handlers(routing_handlers(runtime.dispatcher.services), t)
    answer = cast(KBAnswer, runtime.dispatcher.services.kb.lookup(normalize("楼道灯坏了找谁"), "demo"))
    assert [p.text for p in t.out.prompts] == [answer.text]


async def test_an_emergency_in_a_group_keeps_its_safety_script(runtime: Runtime) -> None:
    kb = load_knowledge_base()
    t = group_turn(runtime, "楼道着火了", Intent.ASK_CONTACT)
    say_answer(runtime.dispatcher.services, t, kb.answer("fire", "demo"))
    assert [p.text for p in t.out.prompts] == [kb.answer("fire", "demo").text]
