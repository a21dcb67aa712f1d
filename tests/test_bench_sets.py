"""The product-like evaluation sets of bench.nlu_bench: their data, their scorers on hand-made input, and
the group-transcript runner through the real turn pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.group_dialogs import (
    GROUP_ID,
    GroupDialog,
    Reader,
    Turn,
    check_turn,
    load_dialogs,
    run_dialog,
)
from bench.nlu_bench import main as nlu_bench_main
from bench.product_sets import (
    DangerCase,
    Review,
    Routed,
    load_emergency_set,
    load_review,
    most_named_department,
    score_emergency_set,
    score_false_emergencies,
    score_real_appeals,
)
from bench.real_appeals import RealAppeal, load
from bot.dialog.spec import load_bundle
from bot.message import Reply, Target
from bot.nlu.base import NLUBackend
from bot.nlu.training_data import load_training_data
from kb import load_knowledge_base
from tests.nlu.test_training_data import _key, near_duplicate


def _routed(
    intent: str = "report", party: str | None = None, sub: str | None = None, *, emergency: bool = False
) -> Routed:
    contact = None if party is None else {"party": party, "sub": sub, "name": "", "phone": ""}
    return Routed(
        {"intent": {"name": intent, "confidence": 0.9}, "first_contact": contact}, emergency, 1.0, 10
    )


def _appeal(id: int, *parties: str) -> RealAppeal:
    return RealAppeal(
        id=id, source="附件4" if parties else "附件3", topic="t", detail="d", parties=frozenset(parties)
    )


# --- data ------------------------------------------------------------------------------------------


def test_emergency_set_is_big_enough_and_distinct() -> None:
    cases = load_emergency_set()
    live = [c for c in cases if c.emergency]
    calm = [c for c in cases if not c.emergency]
    assert len(live) >= 60 and len(calm) >= 60
    assert {c.kind for c in live} >= {"trapped", "dog_bite", "fall", "gas", "fire", "electric_shock", "flood"}
    assert {c.kind for c in calm} >= {"reported", "past", "hypothetical", "fire_lane", "equipment"}
    texts = [c.text for c in cases]
    assert len(set(texts)) == len(texts)


def test_emergency_set_is_not_in_the_training_data_nor_the_knowledge_base() -> None:
    """An item copied into the NLU's examples or a matter's would flatter the figure: add new items
    to the set instead of moving them into the training data."""
    known = [_key(e.text) for e in load_training_data()]
    known += [_key(ex) for m in load_knowledge_base().matters() for ex in (m.title, *m.examples)]
    clashes = [c.text for c in load_emergency_set() if any(near_duplicate(_key(c.text), k) for k in known)]
    assert not clashes, clashes


def test_group_dialogs_load_with_the_cases_the_set_is_for() -> None:
    dialogs = load_dialogs()
    assert len(dialogs.dialogs) >= 15
    turns = [t for d in dialogs.dialogs for t in d.turns]
    assert sum(t.private for t in turns) >= 3
    assert any("没回音" in t.text and t.expect.get("silent") for t in turns)
    assert any(t.text.startswith("回音，") for t in turns)
    assert len({t.who for t in turns}) >= 5


def test_group_dialogs_refuse_an_unknown_expectation(tmp_path: Path) -> None:
    path = tmp_path / "g.yml"
    path.write_text(
        "residents: {wang: 王阿姨}\ndialogs:\n- id: a\n  turns:\n  - {who: wang, text: 你好, expect: {silnt: true}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="silnt"):
        load_dialogs(path)


def test_the_review_of_flagged_real_appeals_names_real_ids() -> None:
    review = load_review()
    ids = {a.id for a in load()}
    assert review.not_live and review.not_live <= ids
    assert set(review.live) <= ids


def test_an_unknown_set_is_refused() -> None:
    with pytest.raises(SystemExit):
        nlu_bench_main(["--sets", "heldout,nonsense"])


# --- scorers on hand-made input --------------------------------------------------------------------


def test_real_appeals_score_counts_a_contact_among_the_reply_parties() -> None:
    appeals = [
        _appeal(1, "property", "street"),
        _appeal(3, "department:housing"),
        _appeal(5, "department:urban_management", "community"),
        _appeal(7),  # no reply: intents only
    ]
    routed = [
        _routed(party="property"),  # strict and party-level right
        _routed(party="department", sub="environment"),  # party right, sub wrong
        _routed(party=None),  # no contact
        _routed(intent="emergency", party="emergency", sub="fire"),
    ]
    s = score_real_appeals("x", appeals, routed, "department:housing")
    assert (s.appeals, s.scored) == (4, 3)
    assert (s.strict, s.party_only, s.no_contact) == (1, 2, 1)
    assert s.right_intent == 3 and s.intents["emergency"] == 1
    assert s.baselines == {
        "always department (party only)": 2,
        "always department:housing": 1,
        "always property": 1,
    }
    assert [a.id for a, _ in s.misses] == [3, 5]


def test_the_department_baseline_guesses_the_most_named_department() -> None:
    appeals = [
        _appeal(2, "department:police"),
        _appeal(4, "department:police", "property"),
        _appeal(6, "department:housing"),
    ]
    assert most_named_department(appeals) == "department:police"


def test_false_emergencies_split_flagged_appeals_by_review() -> None:
    appeals = [_appeal(1), _appeal(2), _appeal(3), _appeal(4)]
    routed = [_routed(emergency=True), _routed(emergency=True), _routed(), _routed(emergency=True)]
    review = Review(live={2: "on fire now", 3: "trapped now"}, not_live=frozenset({1}))
    s = score_false_emergencies("x", appeals, routed, review)
    assert s.flagged == [1, 2, 4]
    assert (s.false, s.live, s.unreviewed, s.missed_live) == ([1], [2], [4], [3])
    assert s.false_total == 2


def test_emergency_set_score_is_recall_and_false_alarms() -> None:
    cases = [
        DangerCase("a", "fire", True),
        DangerCase("b", "gas", True),
        DangerCase("c", "past", False),
        DangerCase("d", "reported", False),
        DangerCase("e", "drill", False),
    ]
    routed = [_routed(emergency=True), _routed(), _routed(), _routed(emergency=True), _routed()]
    s = score_emergency_set("x", cases, routed)
    assert (s.caught, s.live, s.false_alarms, s.calm) == (1, 2, 1, 3)
    assert s.missed_by_kind == {"gas": 1} and s.alarms_by_kind == {"reported": 1}


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader(load_bundle().responses, load_knowledge_base())


def _reply(text: str, *, private: bool = False, chat_id: str = GROUP_ID) -> Reply:
    return Reply(
        text=text, chat_id=chat_id, recipient_id="wang", target=Target.PRIVATE if private else Target.CHAT
    )


def _turn(**expect: Any) -> Turn:
    return Turn(who="wang", text="x", expect=expect)


def test_check_turn_reads_the_bots_own_wording(reader: Reader) -> None:
    words = load_bundle().responses
    photo = _reply("@王阿姨 " + words.get("appeal.ask_photo"))
    assert check_turn(_turn(asks="photo", form_started=True, max_group_lines=1), [photo], reader) == []
    assert check_turn(_turn(asks="phone"), [photo], reader) == ["asks phone"]
    assert check_turn(_turn(silent=True), [photo], reader) == ["silent"]
    assert check_turn(_turn(silent=True), [], reader) == []
    assert check_turn(_turn(answered=True), [], reader) == ["answered"]
    assert check_turn(_turn(private=True), [photo], reader) == ["private"]
    assert check_turn(_turn(private=True), [_reply("hi", private=True)], reader) == []
    two = [_reply("一\n二"), _reply("三", chat_id="wang")]  # the second goes to the private chat
    assert check_turn(_turn(max_group_lines=2), two, reader) == []
    assert check_turn(_turn(max_group_lines=1), two, reader) == ["≤ 1 group lines (got 2)"]
    assert check_turn(_turn(contains=["二"], lacks=["三"]), two, reader) == ["lacks '三'"]


def test_reader_names_the_first_contact_and_the_safety_script(reader: Reader) -> None:
    first = load_knowledge_base().answer("corridor_light_broken", "demo").first_contact
    assert first.party == "property"
    answer = _reply(
        f"【楼道灯坏了】\n先找：{first.name}\n如果没有解决，可以依次找：\n1. 12345政务服务便民热线"
    )
    assert reader.party([answer]) == "property"
    assert check_turn(_turn(party="property", emergency=False), [answer], reader) == []
    assert check_turn(_turn(party="department:environment"), [answer], reader) == [
        "party department:environment (got property)"
    ]
    assert reader.party([_reply("没有联系人")]) is None
    assert check_turn(_turn(emergency=True), [_reply("【紧急】请先保证人身安全")], reader) == []


# --- the runner through the turn pipeline --------------------------------------------------------


async def test_a_transcript_runs_through_the_turn_pipeline(
    shared_nlu: NLUBackend, reader: Reader, tmp_path: Path
) -> None:
    dialog = GroupDialog(
        "t",
        "chatter, the name inside a word, a report and its private step",
        (
            Turn("wang", "物业一直没回音", expect={"silent": True}),
            Turn("wang", "回音，3栋2单元楼道灯坏了", expect={"asks": "photo"}),
            Turn("li", "李哥在吗", expect={"silent": True}),
            Turn("wang", "跳过", expect={"asks": "phone", "private": True}),
            Turn("wang", "不留", private=True, expect={"asks": "confirm", "party": "property"}),
            Turn("wang", "/confirm", private=True, expect={"filed": True, "asks": "photo"}),  # must fail
        ),
    )
    results = await run_dialog(dialog, {"wang": "王阿姨", "li": "李哥"}, shared_nlu, reader, tmp_path / "rt")
    assert [r.failed for r in results] == [[], [], [], [], [], ["asks photo"]]
    assert results[3].replies and any(r.chat_id == "wang" for r in results[3].replies)
