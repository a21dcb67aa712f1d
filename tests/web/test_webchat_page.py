"""The web chat page's own mechanics, against the scripted stand-in of the REST channel.

These pin what the page does with whatever the bot says: who sends what metadata, where private replies
land, buttons, unread badges, errors, persistence. The real bot is driven in test_webchat_browser.py.
"""

from __future__ import annotations

from typing import Any

from tests.web.webchat_driver import GROUP, WebChat

PHONE = "13812345678"


def test_empty_group_explains_what_to_try(page: Any, mock_server: tuple[str, Any]) -> None:
    base, _ = mock_server
    page.goto(base + "/")
    hint = page.locator(f'.log[data-chat="{GROUP}"] .empty')
    assert "3栋2单元楼道灯坏了" in hint.inner_text()
    assert page.locator("#chat-title").inner_text() == "幸福里3栋业主群"
    assert page.locator("#speaker option").all_inner_texts() == ["王阿姨", "李先生", "小张"]
    assert page.problems == []


def test_group_chatter_without_mention_is_sent_unmentioned(page: Any, mock_server: tuple[str, Any]) -> None:
    base, app = mock_server
    page.goto(base + "/")
    chat = WebChat(page)
    chat.speak_as("李先生", mention=False)
    chat.say("今天天气不错")
    assert chat.bot_messages() == []
    body = app.state.received[-1]
    assert body["sender"].startswith("web-li-")
    assert body["metadata"]["mentioned"] is False
    assert body["metadata"]["chat_type"] == "group"
    assert body["metadata"]["user_name"] == "李先生"
    # Typing the bot's name addresses it even with the box unticked.
    chat.say("@回音 下水道堵了找谁")
    assert app.state.received[-1]["metadata"]["mentioned"] is True
    assert "物业" in chat.bot_messages()[-1].text


def test_appeal_flow_routes_private_replies_and_uses_buttons_once(
    page: Any, mock_server: tuple[str, Any]
) -> None:
    base, app = mock_server
    page.goto(base + "/")
    chat = WebChat(page)
    chat.speak_as("王阿姨")
    chat.say("@回音 3栋2单元楼道灯坏了")
    chat.speak_as("小张")  # someone else holds the switcher when 王阿姨's button is clicked
    chat.click_button("没有照片")
    assert page.locator("button.choice", has_text="没有照片").is_disabled()
    sent = app.state.received[-1]
    assert sent["message"] == "/skip_photo" and sent["sender"].startswith("web-wang-")
    assert sent["metadata"]["reply_to_bot"] is True and sent["metadata"]["mentioned"] is False
    assert page.locator(f'.log[data-chat="{GROUP}"] .msg.resident .bubble').last.inner_text() == "没有照片"

    wang = chat.private_key("王阿姨")
    assert page.locator(f'.chat-item[data-chat="{wang}"] .badge').inner_text() == "1"
    page.click(".msg.system.link")  # "回音私信了王阿姨，点此查看"
    assert page.locator(f'.log[data-chat="{wang}"]').is_visible()
    assert page.locator(f'.chat-item[data-chat="{wang}"] .badge').count() == 0

    chat.say(PHONE)
    meta = app.state.received[-1]["metadata"]
    assert meta["chat_type"] == "private" and meta["chat_id"] == wang and meta["mentioned"] is False
    chat.click_button("确认提交")
    assert "HY-20261122-0001" in chat.log_text(wang)
    # The announcement addressed to the group chat (its chat_id) lands there, with a badge.
    assert "王阿姨的诉求已登记" in chat.log_text(GROUP)
    assert page.locator(f'.chat-item[data-chat="{GROUP}"] .badge').inner_text() == "1"
    assert PHONE not in chat.log_text(GROUP)
    ids = [b["metadata"]["message_id"] for b in app.state.received]
    assert len(set(ids)) == len(ids)

    # A reload keeps the conversation, with used buttons still disabled.
    page.reload()
    assert "HY-20261122-0001" in chat.log_text(wang)
    assert page.locator("button.choice", has_text="确认提交").is_disabled()
    assert page.problems == []


def test_answering_by_typing_retires_the_offered_choices(page: Any, mock_server: tuple[str, Any]) -> None:
    base, _ = mock_server
    page.goto(base + "/")
    chat = WebChat(page)
    chat.speak_as("王阿姨")
    chat.say("@回音 3栋2单元楼道灯坏了")
    chat.speak_as("李先生")
    chat.say("@回音 下水道堵了找谁")  # someone else talking leaves 王阿姨's choice alone
    assert page.locator("button.choice", has_text="没有照片").is_enabled()
    chat.speak_as("王阿姨")
    chat.say("@回音 没有照片")
    assert page.locator("button.choice", has_text="没有照片").is_disabled()


def test_driver_files_an_appeal_on_the_mock(page: Any, mock_server: tuple[str, Any]) -> None:
    base, _ = mock_server
    page.goto(base + "/")
    appeal_id = WebChat(page).file_appeal(
        "王阿姨", "@回音 3栋2单元楼道灯坏了", phone=PHONE, place="3栋2单元", what="楼道灯坏了"
    )
    assert appeal_id == "HY-20261122-0001"


def test_refused_message_shows_red_line_and_keeps_the_text(page: Any, mock_server: tuple[str, Any]) -> None:
    base, _ = mock_server
    page.goto(base + "/")
    chat = WebChat(page)
    for i in range(6):  # enough history that the log scrolls
        chat.say(f"@回音 第{i}条")
    long_text = "楼上装修太吵了" * 400
    chat.say(long_text)
    assert "消息太长了" in chat.errors()[-1]
    assert page.input_value("#text") == long_text
    assert page.locator(".msg.resident .failed").count() == 1
    # The red line is on screen, not hidden below the log's fold by the refilled text box.
    box = page.locator(".msg.system.error").bounding_box()
    composer = page.locator("#composer").bounding_box()
    assert box is not None and composer is not None and 0 <= box["y"] < composer["y"] - box["height"] / 2


def test_unreachable_server_shows_red_line_and_keeps_the_text(
    page: Any, mock_server: tuple[str, Any]
) -> None:
    base, _ = mock_server
    page.goto(base + "/")
    page.route("**/webhooks/rest/webhook", lambda route: route.abort())
    chat = WebChat(page)
    chat.say("@回音 电梯坏了")
    assert "连接不上回音服务" in chat.errors()[-1]
    assert page.input_value("#text") == "@回音 电梯坏了"


def test_added_resident_speaks_in_the_group(page: Any, mock_server: tuple[str, Any]) -> None:
    base, app = mock_server
    page.goto(base + "/")
    page.once("dialog", lambda dialog: dialog.accept("赵大爷"))
    page.click("#add-resident")
    zhao = page.locator(".chat-item", has_text="赵大爷").get_attribute("data-chat")
    assert page.locator("#speaker").input_value() == zhao
    WebChat(page).say("@回音 下水道堵了找谁")
    assert app.state.received[-1]["metadata"]["user_name"] == "赵大爷"


def test_phone_layout_keeps_chat_list_and_composer_on_screen(page: Any, mock_server: tuple[str, Any]) -> None:
    base, _ = mock_server
    page.set_viewport_size({"width": 390, "height": 760})
    page.goto(base + "/")
    chat = WebChat(page)
    for i in range(12):
        chat.say(f"@回音 第{i}条：没太明白的话")
    for selector in (".chat-item", "#chat-header", "#text", "#send"):
        box = page.locator(selector).first.bounding_box()
        assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= 760, selector
