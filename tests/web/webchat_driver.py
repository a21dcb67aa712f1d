"""Drives the web chat page like a resident would, without knowing the dialog's exact wording.

The driver reads the bot's latest question, answers it (clicking a button whose title confirms, skips or
picks the shared place, or typing the value of the slot it asks for), and repeats until an appeal id
appears. It speaks only through the page's own controls, so it exercises the page and the app together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the tests skip cleanly when Playwright is missing, so import it only for typing
    from playwright.sync_api import Page

APPEAL_ID = re.compile(r"HY-\d{8}-\d{4}")
GROUP = "group"  # the page's key for the group chat; private chats are keyed by the resident's id

CONFIRM_BUTTON = re.compile(r"确认|提交|是的|对的|没问题|正确")
NEGATIVE_BUTTON = re.compile(r"取消|不|修改|人工|重新|算了")
SKIP_BUTTON = re.compile(r"跳过|没有|不用|暂无|稍后|无")
SHARED_PLACE_BUTTON = re.compile(r"公共|楼道|多户|共用")

ASKS_PHONE = re.compile(r"手机|电话|联系方式|号码")
ASKS_PHOTO = re.compile(r"照片|图片|拍")
ASKS_PLACE = re.compile(r"哪里|哪儿|位置|地点|哪栋|几栋|哪个单元|门牌|具体在")
ASKS_WHAT = re.compile(r"什么问题|什么事|什么情况|描述|具体说说|发生了什么")
ASKS_NAME = re.compile(r"称呼|姓名|怎么叫")
ASKS_CONFIRM = re.compile(r"确认|对吗|是否|核对|没问题的话")

_LATEST_JS = """(afterSeq) => [...document.querySelectorAll('.msg.bot')]
  .filter((m) => Number(m.dataset.seq) > afterSeq)
  .map((m) => ({
    seq: Number(m.dataset.seq),
    chat: m.closest('.log').dataset.chat,
    text: m.querySelector('.bubble').textContent,
    buttons: [...m.querySelectorAll('button.choice:not(:disabled)')].map((b) => b.textContent),
  }))"""

_TRANSCRIPT_JS = """() => [...document.querySelectorAll('.log')].map((log) =>
  `[${log.dataset.chat}]\\n` + [...log.querySelectorAll('.msg')].map((m) =>
    m.classList.contains('system') ? `  (系统) ${m.textContent}`
      : `  ${m.querySelector('.name').textContent}: ${m.querySelector('.bubble').textContent}`
        + [...m.querySelectorAll('button.choice')].map((b) => ` [${b.textContent}]`).join('')
  ).join('\\n')).join('\\n')"""


@dataclass(frozen=True)
class BotMessage:
    seq: int
    chat: str
    text: str
    buttons: tuple[str, ...]


class DriverError(AssertionError):
    """The conversation went somewhere the driver cannot follow; the message carries the transcript."""


class WebChat:
    """The page, seen as a resident sees it."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.last_seq = 0

    # --- reading --------------------------------------------------------------------------------
    def transcript(self) -> str:
        return str(self.page.evaluate(_TRANSCRIPT_JS))

    def bot_messages(self, after_seq: int = 0) -> list[BotMessage]:
        raw = self.page.evaluate(_LATEST_JS, after_seq)
        return [BotMessage(m["seq"], m["chat"], m["text"], tuple(m["buttons"])) for m in raw]

    def log_text(self, chat: str) -> str:
        return self.page.locator(f'.log[data-chat="{chat}"]').text_content() or ""

    def errors(self) -> list[str]:
        return self.page.locator(".msg.system.error").all_inner_texts()

    def private_key(self, name: str) -> str:
        """The page's key (the resident's sender id) of `name`'s private chat."""
        return str(self.page.locator(".chat-item", has_text=name).last.get_attribute("data-chat"))

    # --- acting ---------------------------------------------------------------------------------
    def _seq_now(self) -> int:
        return int(
            self.page.evaluate(
                "() => Math.max(0, ...[...document.querySelectorAll('.msg')]"
                ".map((m) => Number(m.dataset.seq) || 0))"
            )
        )

    def _settle(self) -> None:
        self.page.wait_for_selector('body[data-pending="0"]', timeout=20_000)

    def open_chat(self, chat: str) -> None:
        self.page.click(f'.chat-item[data-chat="{chat}"]')

    def speak_as(self, name: str, *, mention: bool = True) -> None:
        self.open_chat(GROUP)
        self.page.select_option("#speaker", label=name)
        self.page.set_checked("#mention", mention)

    def say(self, text: str, chat: str | None = None) -> None:
        if chat is not None:
            self.open_chat(chat)
        self.last_seq = self._seq_now()
        self.page.fill("#text", text)
        self.page.press("#text", "Enter")
        self._settle()

    def click_button(self, title: str) -> None:
        self.last_seq = self._seq_now()
        self.page.locator("button.choice:not(:disabled)", has_text=title).last.click()
        self._settle()

    # --- the appeal, whatever the wording -------------------------------------------------------
    def file_appeal(
        self, resident: str, first_message: str, *, phone: str, place: str, what: str, max_turns: int = 16
    ) -> str:
        """Files an appeal as `resident` from the group chat; returns the appeal id the bot announced."""
        self.speak_as(resident, mention=True)
        self.say(first_message)
        for _ in range(max_turns):
            if errors := self.errors():
                raise DriverError(f"the page shows an error: {errors[-1]}\n{self.transcript()}")
            new = self.bot_messages(self.last_seq)
            for m in new:
                if found := APPEAL_ID.search(m.text):
                    return found.group()
            if not new:
                raise DriverError(f"the bot did not answer the last message\n{self.transcript()}")
            self._answer(self._question(new), phone=phone, place=place, what=what, resident=resident)
        raise DriverError(f"no appeal id after {max_turns} turns\n{self.transcript()}")

    @staticmethod
    def _question(new: list[BotMessage]) -> BotMessage:
        """Of one turn's replies, the one that asks something.

        Buttons first; then a private message over a group one (a group turn that also writes privately
        has moved the question there, and the group line only says so); then a question; then the last.
        """

        def weight(m: BotMessage) -> tuple[bool, bool, bool, int]:
            return (bool(m.buttons), m.chat != GROUP, bool(re.search(r"[？?]|请", m.text)), m.seq)

        return max(new, key=weight)

    def _answer(self, q: BotMessage, *, phone: str, place: str, what: str, resident: str) -> None:
        if button := self._pick_button(q):
            self.open_chat(q.chat)
            self.click_button(button)
            return
        if ASKS_PHONE.search(q.text):
            if q.chat == GROUP:
                raise DriverError(
                    "the bot asked for a phone number in the group chat; contact details must be "
                    f"asked for only in a private chat\n{self.transcript()}"
                )
            answer = phone
        elif ASKS_PHOTO.search(q.text):
            answer = "没有照片"
        elif ASKS_PLACE.search(q.text):
            answer = place
        elif ASKS_WHAT.search(q.text):
            answer = what
        elif ASKS_NAME.search(q.text):
            answer = resident
        elif ASKS_CONFIRM.search(q.text):
            answer = "确认"
        elif q.buttons:
            self.open_chat(q.chat)
            self.click_button(q.buttons[0])
            return
        else:
            raise DriverError(f"cannot tell what the bot asks: {q.text!r}\n{self.transcript()}")
        if q.chat == GROUP:
            self.speak_as(resident, mention=True)
        self.say(answer, chat=q.chat)

    @staticmethod
    def _pick_button(q: BotMessage) -> str | None:
        """The button a cooperative resident presses, or None when typing the answer fits better.

        A phone question is always answered by typing the number, even when it offers a "不留电话" button:
        the appeal under test is one with a contact.
        """
        confirm = [b for b in q.buttons if CONFIRM_BUTTON.search(b) and not NEGATIVE_BUTTON.search(b)]
        if confirm:
            return confirm[0]
        if ASKS_PHONE.search(q.text):
            return None
        skip = [b for b in q.buttons if SKIP_BUTTON.search(b)] if ASKS_PHOTO.search(q.text) else []
        shared = [b for b in q.buttons if SHARED_PLACE_BUTTON.search(b)]
        positive = [b for b in q.buttons if not NEGATIVE_BUTTON.search(b)]
        picks = skip or shared or positive
        return picks[0] if picks else None
