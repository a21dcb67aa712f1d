"""The dialog engine alone: data-driven appeal dialog, without database, Redis or trained NLU."""

from __future__ import annotations

from typing import Any

from bot.dialog.engine import DialogEngine, PromptContext, Turn
from bot.dialog.spec import load_bundle
from bot.message import Attachment, AttachmentKind, ChatType, IncomingMessage, Platform
from bot.nlu.base import Intent, IntentScore, Understanding
from bot.nlu.entities import extract_entities
from bot.nlu.normalize import normalize

ENGINE = DialogEngine(load_bundle())
PRIVATE = PromptContext(bot_name="回音", in_group=False, sender_name="王阿姨")
GROUP = PromptContext(bot_name="回音", in_group=True, sender_name="王阿姨", chat_title="3栋业主群")


def understand(text: str, intent: Intent = Intent.REPORT, confidence: float = 0.9) -> Understanding:
    n = normalize(text)
    return Understanding(text=n, intent=IntentScore(intent, confidence), entities=extract_entities(n))


def msg(text: str, *, group: bool = False, attachments: tuple[Attachment, ...] = ()) -> IncomingMessage:
    return IncomingMessage(
        platform=Platform.TERMINAL,
        chat_id="g" if group else "u",
        chat_type=ChatType.GROUP if group else ChatType.PRIVATE,
        sender_id="u",
        text=text,
        attachments=attachments,
    )


def say(state: dict[str, Any], text: str, ctx: PromptContext = PRIVATE, **kw: Any) -> Turn:
    intent = kw.pop("intent", Intent.OTHER)
    return ENGINE.step(state, understand(text, intent, kw.pop("confidence", 0.9)), msg(text, **kw), ctx)


def test_first_message_fills_what_it_says_and_asks_the_rest() -> None:
    turn = ENGINE.start("appeal", understand("3栋2单元502厨房漏水"), msg("3栋2单元502厨房漏水"), PRIVATE)
    assert turn.state is not None
    assert turn.state["slots"]["place"] == {"building": "3", "unit": "2", "room": "502"}
    assert turn.state["slots"]["description"] == "3栋2单元502厨房漏水"
    assert turn.state["state"] == "photo"


def test_bare_report_asks_what_happened_then_where() -> None:
    turn = ENGINE.start("appeal", understand("我要报修"), msg("我要报修"), PRIVATE)
    assert turn.state is not None and turn.state["state"] == "description"
    turn = say(turn.state, "灯不亮了，晚上黑漆漆的")
    assert turn.state is not None and turn.state["state"] == "place"
    turn = say(turn.state, "三号楼")
    assert turn.state is not None and turn.state["slots"]["place"] == {"building": "3"}
    assert turn.state["state"] == "photo"


def test_an_answer_that_also_says_where_fills_both() -> None:
    turn = ENGINE.start("appeal", understand("我要报修"), msg("我要报修"), PRIVATE)
    assert turn.state is not None
    turn = say(turn.state, "5栋外墙瓷砖掉下来了")
    assert turn.state is not None and turn.state["state"] == "photo"
    assert turn.state["slots"]["place"] == {"building": "5", "place": "外墙"}


def test_shared_place_and_free_text_place() -> None:
    turn = ENGINE.start("appeal", understand("我要报修"), msg("我要报修"), PRIVATE)
    assert turn.state is not None
    turn = say(turn.state, "有人乱扔垃圾很臭")
    assert turn.state is not None
    turn = say(turn.state, "东门岗亭旁边的空地")
    assert turn.state is not None and turn.state["slots"]["place"]["place"] == "东门"


def test_full_flow_to_confirmation_action() -> None:
    turn = ENGINE.start("appeal", understand("地下车库积水了"), msg("地下车库积水了"), PRIVATE)
    assert turn.state is not None and turn.state["state"] == "photo"
    photo = Attachment(AttachmentKind.PHOTO, file_id="f1")
    turn = say(turn.state, "", attachments=(photo,))
    assert turn.state is not None and turn.state["state"] == "contact"
    turn = say(turn.state, "我的手机13912345678")
    assert turn.state is not None and turn.state["state"] == "confirm"
    summary = turn.prompts[-1].text
    assert "地下车库" in summary and "13912345678" in summary and "已收到 1 张" in summary
    assert [b.payload for b in turn.prompts[-1].buttons] == ["/confirm", "/edit", "/cancel"]
    turn = say(turn.state, "/confirm")
    assert turn.action == "create_appeal"


def test_cancel_at_any_step() -> None:
    for words in ("取消", "算了", "不报了", "算了不报了", "/cancel"):
        turn = ENGINE.start("appeal", understand("我要报修"), msg("我要报修"), PRIVATE)
        assert turn.state is not None
        turn = say(turn.state, words)
        assert turn.state is None, words
        assert "取消" in turn.prompts[0].text


def test_skip_words_in_an_optional_step_do_not_cancel() -> None:
    turn = ENGINE.start("appeal", understand("3栋楼道灯坏了"), msg("3栋楼道灯坏了"), PRIVATE)
    assert turn.state is not None and turn.state["state"] == "photo"
    turn = say(turn.state, "不用了")
    assert turn.state is not None and turn.state["state"] == "contact"
    assert "photo" in turn.state["skipped"]


def test_correction_keeps_unit_and_room() -> None:
    turn = ENGINE.start("appeal", understand("3栋2单元502厨房漏水"), msg("3栋2单元502厨房漏水"), PRIVATE)
    assert turn.state is not None
    turn = say(turn.state, "不对，是4栋")
    assert turn.state is not None
    assert turn.state["slots"]["place"] == {"building": "4", "unit": "2", "room": "502"}
    assert turn.state["state"] == "photo"  # the question it was at, asked again
    assert "4栋" in turn.prompts[0].text


def test_interrupting_question_is_handed_back() -> None:
    turn = ENGINE.start("appeal", understand("我要报修"), msg("我要报修"), PRIVATE)
    assert turn.state is not None
    turn = ENGINE.step(turn.state, understand("灯不亮了"), msg("灯不亮了"), PRIVATE)
    assert turn.state is not None and turn.state["state"] == "place"
    question = "物业电话多少"
    turn2 = ENGINE.step(turn.state, understand(question, Intent.ASK_CONTACT), msg(question), PRIVATE)
    assert turn2.interrupted and turn2.state is not None and turn2.state["state"] == "place"
    resumed = ENGINE.resume(turn2.state, PRIVATE)
    assert resumed.text.startswith("我们继续")


def test_contact_is_asked_privately_from_a_group() -> None:
    turn = ENGINE.start(
        "appeal", understand("3栋2单元502厨房漏水"), msg("3栋2单元502厨房漏水", group=True), GROUP
    )
    assert turn.state is not None
    turn = say(turn.state, "跳过", ctx=GROUP, group=True)
    assert turn.move_private
    assert turn.prompts[0].private is False and "私聊" in turn.prompts[0].text
    assert turn.prompts[1].private is True and "手机号" in turn.prompts[1].text


def test_group_summary_masks_room_and_phone() -> None:
    # The summary is shown in private (the contact question moves a group dialog there); rendered for a
    # group it shows no room and no phone, not even one inside the description.
    text = "3栋2单元502厨房漏水 电话13812345678"
    turn = ENGINE.start("appeal", understand(text), msg(text), PRIVATE)
    assert turn.state is not None
    turn = say(turn.state, "/skip")
    assert turn.state is not None and turn.state["state"] == "contact"
    turn = say(turn.state, "13900001111")
    assert turn.state is not None and turn.state["state"] == "confirm"
    summary = ENGINE.current_prompt(turn.state, GROUP).text
    for private_detail in ("502", "13812345678", "13900001111"):
        assert private_detail not in summary, summary
    assert "***室" in summary and "138****5678" in summary and "139****1111" in summary


def test_a_phone_in_the_description_is_not_the_contact() -> None:
    # "楼上邻居电话…": someone else's number, part of what happened. Only the answer to the contact
    # question is the resident's contact.
    text = "3栋楼上邻居电话13800001234一直漏水"
    turn = ENGINE.start("appeal", understand(text), msg(text, group=True), GROUP)
    assert turn.state is not None and "contact" not in turn.state["slots"]
    assert turn.state["slots"]["description"] == text
    turn = say(turn.state, "没有照片", ctx=GROUP, group=True)
    assert turn.move_private and turn.state is not None and turn.state["state"] == "contact"
    assert "13800001234" not in "".join(p.text for p in turn.prompts)
    turn = say(turn.state, "13912345678")
    assert turn.state is not None and turn.state["slots"]["contact"] == "13912345678"
    # An answer to another question that happens to carry a phone does not fill the contact either.
    turn = ENGINE.start("appeal", understand("我要报修"), msg("我要报修"), PRIVATE)
    assert turn.state is not None
    turn = say(turn.state, "物业电话13700001111一直打不通，电梯坏了")
    assert turn.state is not None and "contact" not in turn.state["slots"]


def test_a_given_contact_can_be_corrected_at_the_summary() -> None:
    turn = ENGINE.start("appeal", understand("地下车库积水了"), msg("地下车库积水了"), PRIVATE)
    assert turn.state is not None
    turn = say(turn.state, "跳过")
    assert turn.state is not None
    turn = say(turn.state, "13900001111")
    assert turn.state is not None and turn.state["state"] == "confirm"
    turn = say(turn.state, "不对，电话是13912345678")
    assert turn.state is not None and turn.state["slots"]["contact"] == "13912345678"


def test_edit_from_summary_returns_to_summary() -> None:
    turn = ENGINE.start("appeal", understand("地下车库积水了"), msg("地下车库积水了"), PRIVATE)
    assert turn.state is not None
    turn = say(turn.state, "跳过")
    assert turn.state is not None
    turn = say(turn.state, "不留")
    assert turn.state is not None and turn.state["state"] == "confirm"
    turn = say(turn.state, "/edit place")
    assert turn.state is not None and turn.state["state"] == "place"
    turn = say(turn.state, "5栋门口")
    assert turn.state is not None and turn.state["state"] == "confirm"
    assert "5栋" in turn.prompts[-1].text


def test_expiry() -> None:
    turn = ENGINE.start("appeal", understand("我要报修"), msg("我要报修"), PRIVATE)
    assert turn.state is not None
    assert not ENGINE.expired(turn.state, 1800)
    assert ENGINE.expired(turn.state, 1800, now=turn.state["updated_at"] + 1801)
