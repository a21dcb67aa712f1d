"""One-shot understanding: a message in, intent + entities + "who should I contact" out.

:func:`route_message` is the contract behind ``huiyin route`` (and the benchmark). It returns exactly::

    {"intent": {"name": "ask_contact", "confidence": 0.93},
     "entities": [{"type": "building", "value": "3", "text": "3栋", "start": 0, "end": 2}, ...],
     "first_contact": {"party": "property", "sub": null, "name": "...", "phone": "..."} | null,
     "escalation": [{"party": ..., "sub": ..., "name": ..., "phone": ...}, ...],
     "kb_id": "corridor_light_broken" | null,
     "answer": "ready-to-send answer text" | null}

Only ``report``, ``ask_contact`` and ``emergency`` have a contact; every other intent gives
``first_contact: null``, an empty ``escalation`` and no answer. For an emergency the contact never comes
from an ordinary matter: if the knowledge base does not match an emergency matter directly, the kind of
danger (gas, fire, trapped, injury, violence) picks the emergency matter, so that the resident always
gets the safety instructions first.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import Any

import click

from bot.nlu.base import Entity, Intent, NLUBackend, Understanding
from bot.nlu.rules import EMERGENCY_PATTERNS, emergency_kind, told_not_live
from bot.settings import Settings
from kb import Contact, KBAnswer, KnowledgeBase
from kb.model import EmergencySub

INTENTS_WITH_CONTACT = frozenset({Intent.REPORT, Intent.ASK_CONTACT, Intent.EMERGENCY})

EMERGENCY_MATTERS: dict[str, str] = {
    "gas": "gas_leak",
    "fire": "fire",
    "trapped": "lift_trapped",
    "injury": "injury_medical",
    "violence": "violence_fight",
}
"""Kind of danger → the knowledge-base matter whose safety instructions answer it."""

KINDS_OF_EMERGENCY_MATTER: dict[str, frozenset[str]] = {
    "fire": frozenset({"fire"}),
    "electrical_sparks": frozenset({"fire"}),
    "gas_leak": frozenset({"gas"}),
    "carbon_monoxide": frozenset({"gas", "injury"}),
    "lift_trapped": frozenset({"trapped"}),
    "child_locked_danger": frozenset({"trapped", "injury"}),
    "injury_medical": frozenset({"injury"}),
    "electrocution": frozenset({"injury"}),
    "drowning": frozenset({"injury"}),
    "burn_scald": frozenset({"injury", "fire"}),
    "dog_bite": frozenset({"injury"}),
    "suicide_risk": frozenset({"injury"}),
    "person_unresponsive": frozenset({"injury"}),
    "falling_object_injury": frozenset({"injury", "violence"}),
    "violence_fight": frozenset({"violence"}),
    "burglary_in_progress": frozenset({"violence"}),
    "domestic_violence": frozenset({"violence"}),
    "personal_threat": frozenset({"violence"}),
    "suspicious_person": frozenset({"violence"}),
}
"""Emergency matter → the kinds of danger (:func:`bot.nlu.rules.emergency_kind`) it answers. When the
message mentions no kind the matched matter answers ("电动车在电梯里自燃了，轿厢里全是烟" matches the
trapped-in-a-lift matter on "电梯"), the kind of danger decides. Matters not listed here answer any kind."""

CONFIDENT_EMERGENCY_MATCH = 0.45
"""A knowledge-base emergency match at least this similar is used even without a danger word (matches on
generic words such as "快来人" score about 0.3–0.4)."""

# Weaker hints, used only to choose *which* emergency answer once the intent already is emergency (the
# model may say emergency without any of the strict words of :func:`emergency_kind`). Order matters.
_EMERGENCY_HINTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("gas", re.compile(r"煤气|燃气|天然气|液化气|煤汽")),
    ("trapped", re.compile(r"电梯")),
    ("fire", re.compile(r"火|烟|烧|119")),
    (
        "injury",
        re.compile(
            r"伤|血|晕|噎|喘不|呼吸|说不出话|动不了|误吞|误喝|吞了|抽筋|高烧|羊水|救护车|120|医院|疼|摔"
        ),
    ),
    ("violence", re.compile(r"刀|棍|打|抢|偷|威胁|跟着我|骚扰|耍流氓|动手|堵着|闹事|砸|110")),
)

INTENT_LABELS: dict[Intent, str] = {
    Intent.REPORT: "报修/反映问题",
    Intent.ASK_CONTACT: "咨询该找谁",
    Intent.STATUS: "查询诉求进度",
    Intent.HUMAN: "转人工",
    Intent.EMERGENCY: "紧急情况",
    Intent.GREET: "问候",
    Intent.THANKS: "感谢",
    Intent.CANCEL: "取消",
    Intent.OTHER: "其他/闲聊",
}

_ENTITY_LABELS = {
    "building": "楼栋",
    "unit": "单元",
    "room": "房号",
    "place": "地点",
    "phone": "电话",
    "appeal_id": "诉求编号",
    "time": "时间",
}

GENERIC_EMERGENCY_ANSWER = (
    "【紧急】请先保证人身安全：有危险请立即拨打110（报警）、119（火警）或120（急救），"
    "说清小区、楼栋和现场情况；远离危险，等待救援。"
)


def _kinds_mentioned(normalized: str) -> set[str]:
    """Every kind of danger the text has a word for, whether now, past or hypothetical ("他吐血了，有人拿刀"
    mentions injury by "吐血" and violence by "刀"). The lift hint ("电梯") is left out: a lift is where
    many things happen, not a danger of its own."""
    kinds = {kind for kind, pattern in EMERGENCY_PATTERNS.items() if pattern.search(normalized)}
    kinds.update(
        kind for kind, pattern in _EMERGENCY_HINTS if kind != "trapped" and pattern.search(normalized)
    )
    return kinds


def _specific_kind(normalized: str) -> str | None:
    """:func:`emergency_kind`, except that a bare call for help ("救命") is no particular kind."""
    kind = emergency_kind(normalized)
    return kind if kind in EMERGENCY_MATTERS else None


def _danger_kind(normalized: str) -> str | None:
    kind = _specific_kind(normalized)
    if kind is not None:
        return kind
    return next((k for k, pattern in _EMERGENCY_HINTS if pattern.search(normalized)), None)


def find_answer(understanding: Understanding, kb: KnowledgeBase, community: str) -> KBAnswer | None:
    """The knowledge-base answer for an understood message, or None when its intent has no contact or
    nothing in the knowledge base fits."""
    intent = understanding.intent.name
    if intent not in INTENTS_WITH_CONTACT:
        return None
    if intent is not Intent.EMERGENCY:
        # A danger told as reported, past or hypothetical ("听说隔壁小区着火了"): never a safety script.
        found = kb.lookup(understanding.text, community, ordinary=told_not_live(understanding.text))
        if found is not None and kb.unsure(understanding.text, found):
            # Too weak to name a party: the hotline, rather than a wrong office.
            return kb.hotline_answer(community, found.score) or found
        return found
    hit = kb.lookup(understanding.text, community)
    # The knowledge base knows more specific emergencies (sparks, carbon monoxide, a child locked in a
    # car …); trust its match when the danger words agree that something is happening, or when the match
    # is strong on its own. A weak match on generic words ("快来人") must not decide the safety advice.
    now = emergency_kind(understanding.text)  # HELP ("救命") says that it is urgent, not what it is
    kind = now if now in EMERGENCY_MATTERS else None
    if hit is not None and hit.emergency and (now is not None or hit.score >= CONFIDENT_EMERGENCY_MATCH):
        answers = KINDS_OF_EMERGENCY_MATTER.get(hit.matter_id)
        if kind is None or answers is None or answers & _kinds_mentioned(understanding.text):
            return hit
    kind = kind or _danger_kind(understanding.text)
    if kind is None:
        return None
    try:
        return kb.answer(EMERGENCY_MATTERS[kind], community)
    except KeyError:  # a knowledge base without that emergency matter: generic answer instead
        return None


def _contact(c: Contact) -> dict[str, Any]:
    return {"party": c.party, "sub": c.sub, "name": c.name, "phone": c.phone}


def _entity(e: Entity) -> dict[str, Any]:
    return {"type": e.type.value, "value": e.value, "text": e.text, "start": e.start, "end": e.end}


def route_understanding(understanding: Understanding, kb: KnowledgeBase, community: str) -> dict[str, Any]:
    """The route object for an already understood message (synchronous; the benchmark times this)."""
    answer = find_answer(understanding, kb, community)
    first_contact: dict[str, Any] | None = None
    escalation: list[dict[str, Any]] = []
    text: str | None = None
    kb_id: str | None = None
    if answer is not None:
        first_contact = _contact(answer.first_contact)
        escalation = [_contact(c) for c in answer.escalation]
        text = answer.text
        kb_id = answer.matter_id
    elif understanding.intent.name is Intent.EMERGENCY:
        line = kb.community(community).emergency_line(EmergencySub.POLICE)
        first_contact = {
            "party": "emergency",
            "sub": EmergencySub.POLICE.value,
            "name": line.name if line else "报警",
            "phone": line.phone if line else "110",
        }
        text = GENERIC_EMERGENCY_ANSWER
    return {
        "intent": {
            "name": understanding.intent.name.value,
            "confidence": round(understanding.intent.confidence, 4),
        },
        "entities": [_entity(e) for e in understanding.entities],
        "first_contact": first_contact,
        "escalation": escalation,
        "kb_id": kb_id,
        "answer": text,
    }


async def route_message(nlu: NLUBackend, kb: KnowledgeBase, text: str, community: str) -> dict[str, Any]:
    """Understand ``text`` and answer "who should I contact" for ``community`` (see the module doc).

    Raises ValueError for an unknown community code; never raises on odd text.
    """
    known = {p.code for p in kb.communities()}
    if community not in known:
        raise ValueError(f"unknown community {community!r}; known: {', '.join(sorted(known))}")
    understanding = await nlu.parse(text)
    return route_understanding(understanding, kb, community)


def render_readable(route: dict[str, Any]) -> str:
    """The route object as a short Chinese text for people (``huiyin route`` without ``--json``)."""
    intent = Intent(route["intent"]["name"])
    lines = [f"意图：{INTENT_LABELS[intent]}（{intent.value}，置信度 {route['intent']['confidence']:.2f}）"]
    if route["entities"]:
        parts = [f"{_ENTITY_LABELS.get(e['type'], e['type'])} {e['value']}" for e in route["entities"]]
        lines.append("识别到：" + "；".join(parts))
    if route["answer"]:
        lines.append("")
        lines.append(route["answer"])
    elif intent in INTENTS_WITH_CONTACT:
        lines.append(
            "没有找到对应的事项。可以说得具体一些（什么东西、在哪里、什么情况），或拨打12345政务服务便民热线咨询。"
        )
    return "\n".join(lines)


async def _route_lines(
    lines: list[str] | None, text: str, community: str, as_json: bool, settings: Settings
) -> None:
    from bot.nlu.registry import build_nlu
    from kb import load_knowledge_base

    kb = load_knowledge_base()
    nlu = await build_nlu(settings)
    messages = lines if lines is not None else [text]
    for i, message in enumerate(messages):
        route = await route_message(nlu, kb, message, community)
        if as_json:
            click.echo(json.dumps(route, ensure_ascii=False))
        else:
            if i:
                click.echo("")
            click.echo(render_readable(route))


@click.command("route")
@click.argument("text")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per message.")
@click.option(
    "--community",
    default=None,
    help="Community code whose contacts answer (default: HUIYIN_DEFAULT_COMMUNITY, i.e. demo).",
)
def route_command(text: str, as_json: bool, community: str | None) -> None:
    """Understand one message and say who to contact.

    \b
    huiyin route "楼道灯坏了找谁"            readable answer
    huiyin route "楼道灯坏了找谁" --json     one JSON object
    huiyin route --json - < messages.txt    one message per line in, one JSON object per line out
    """
    from bot.logs import configure_logging
    from kb import load_knowledge_base

    settings = Settings()
    configure_logging("warning")  # logs go to stderr; stdout carries only the answers
    community = community or settings.default_community
    known = sorted(p.code for p in load_knowledge_base().communities())
    if community not in known:
        raise click.BadParameter(
            f"unknown community {community!r}; known: {', '.join(known)}", param_hint="--community"
        )
    lines: list[str] | None = None
    if text == "-":
        lines = [line.rstrip("\r\n") for line in sys.stdin]
    asyncio.run(_route_lines(lines, text, community, as_json, settings))
