"""Failed understandings are counted from facts the turn records, not from the wording of its replies:
the transcript flags the "not understood" line, and the desk replaces that line by its place."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot.db.models import TranscriptMessage
from bot.db.repository.conversation_records import NOT_UNDERSTOOD
from bot.dialog.engine import Prompt
from bot.handoff.hooks import _replace_not_understood, _say_before_resume
from tests.staff.conftest import World


async def _sent(world: World, conversation_id: int) -> list[tuple[str, dict[str, Any]]]:
    async with world.rt.db.unit_of_work() as uow:
        rows = await uow.session.execute(
            select(TranscriptMessage.text, TranscriptMessage.payload)
            .where(TranscriptMessage.conversation_id == conversation_id, TranscriptMessage.direction == "out")
            .order_by(TranscriptMessage.id)
        )
        return [(text, payload or {}) for text, payload in rows.all()]


async def test_the_transcript_flags_the_not_understood_reply(world: World) -> None:
    await world.say("啊啊啊呜呜呜")
    await world.say("下水道堵了找谁")
    sent = await _sent(world, await world.conversation_of("res-wang"))
    assert [p.get(NOT_UNDERSTOOD) for _t, p in sent] == [True, None]
    assert "没太明白" in sent[0][0]


async def test_rewording_the_reply_does_not_change_the_count(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    words = world.rt.dispatcher.words
    get = words.get
    await world.say("啊啊啊呜呜呜")
    # responses.yml edited between two turns: the earlier reply no longer matches any wording.
    monkeypatch.setattr(
        words,
        "get",
        lambda key, **values: "换了说法：请再说一遍" if key == "not_understood" else get(key, **values),
    )
    second = await world.say("嗯嗯哦哦哈")
    assert any("已请社区工作人员来帮您" in r for r in second), second
    handoff = await world.handoff(await world.conversation_of("res-wang"))
    assert handoff is not None and handoff.reason == "not_understood"
    # The queued line is not a failure of its own: it is not flagged.
    assert [p.get(NOT_UNDERSTOOD) for _t, p in await _sent(world, handoff.conversation_id)] == [True, None]


async def test_without_staff_the_again_reply_keeps_counting(runtime_world_without_staff: World) -> None:
    world = runtime_world_without_staff
    for text in ("啊啊啊呜呜呜", "嗯嗯哦哦哈", "呜呜呜啊啊"):
        await world.say(text, who="res-x", chat_id="res-x")
    sent = await _sent(world, await world.conversation_of("res-x"))
    assert [p.get(NOT_UNDERSTOOD) for _t, p in sent] == [True, True, True]
    assert "没太明白" in sent[0][0] and "还是没太明白" not in sent[0][0]
    assert all("还是没太明白" in t for t, _p in sent[1:]), sent


class _Out:
    def __init__(self, prompts: list[str], *, state: dict[str, Any] | None = None) -> None:
        self.prompts = [Prompt(p) for p in prompts]
        self.state = state
        self.not_understood_at: int | None = None

    def say(self, text: str, buttons: tuple[Any, ...] = (), *, private: bool = False) -> None:
        self.prompts.append(Prompt(text, buttons, private))


def test_the_not_understood_line_is_replaced_by_its_place_not_its_text() -> None:
    out = _Out(["没太明白", "没太明白"])
    out.not_understood_at = 0
    _replace_not_understood(out, "已请工作人员")  # type: ignore[arg-type]
    assert [p.text for p in out.prompts] == ["已请工作人员", "没太明白"]
    missing = _Out(["好的"])
    _replace_not_understood(missing, "已请工作人员")  # type: ignore[arg-type]
    assert [p.text for p in missing.prompts] == ["好的", "已请工作人员"]


def test_a_line_said_before_the_resume_line_keeps_the_marker_on_its_line() -> None:
    out = _Out(["没太明白", "请告诉我地点"], state={"dialog": "appeal"})
    out.not_understood_at = 1
    _say_before_resume(out, "已为您转接")  # type: ignore[arg-type]
    assert [p.text for p in out.prompts] == ["没太明白", "已为您转接", "请告诉我地点"]
    assert out.not_understood_at == 2
