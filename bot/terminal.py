"""``huiyin chat``: the terminal channel. Several residents of one simulated group, and their private
chats with the bot, all through the same ``TurnPipeline.handle`` as every other channel."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from dataclasses import dataclass, field

from bot.message import Button, ChatType, IncomingMessage, Platform, Reply, Target
from bot.runtime import Runtime
from bot.settings import Settings


@dataclass(slots=True)
class TerminalSession:
    """Who is typing where, and the buttons the bot last offered each chat (answerable by number)."""

    group_id: str
    group_title: str
    speaker: str
    in_private: bool = False
    buttons: dict[str, tuple[Button, ...]] = field(default_factory=dict)

    @staticmethod
    def resident_id(name: str) -> str:
        return "term-" + hashlib.sha1(name.encode()).hexdigest()[:10]

    @property
    def chat_id(self) -> str:
        return self.resident_id(self.speaker) if self.in_private else self.group_id

    def message(self, text: str) -> IncomingMessage:
        offered = self.buttons.get(self.chat_id, ())
        if text.strip().isdigit() and 1 <= int(text.strip()) <= len(offered):
            text = offered[int(text.strip()) - 1].payload
        return IncomingMessage(
            platform=Platform.TERMINAL,
            chat_id=self.chat_id,
            chat_type=ChatType.PRIVATE if self.in_private else ChatType.GROUP,
            sender_id=self.resident_id(self.speaker),
            sender_name=self.speaker,
            text=text,
            chat_title="" if self.in_private else self.group_title,
        )

    def render(self, reply: Reply) -> str:
        self.buttons[reply.chat_id] = reply.buttons
        where = (
            f"[私聊→{self.speaker}]"
            if reply.target is Target.PRIVATE or reply.chat_id != self.group_id
            else "[群]"
        )
        return f"回音 {where} {reply.as_text()}"


def _command(session: TerminalSession, line: str) -> str | None:
    """Handle a ':' command; returns what to print, or None when the line is a message."""
    if not line.startswith(":"):
        return None
    cmd, _, arg = line[1:].partition(" ")
    if cmd == "as" and arg.strip():
        session.speaker = arg.strip()
        return f"(现在以「{session.speaker}」的身份在{'私聊' if session.in_private else '群里'}发言)"
    if cmd == "private":
        session.in_private = True
        return f"(进入「{session.speaker}」与回音的私聊)"
    if cmd == "group":
        session.in_private = False
        return f"(回到群「{session.group_title}」)"
    if cmd == "who":
        return f"({session.speaker} @ {'私聊' if session.in_private else session.group_title})"
    return "(命令：:as 名字 / :private / :group / :who / :quit)"


async def run_terminal_chat(settings: Settings, *, group_title: str, speaker: str) -> None:
    runtime = await Runtime.start(settings)
    session = TerminalSession(group_id="term-group-" + hashlib.sha1(group_title.encode()).hexdigest()[:8],
                              group_title=group_title, speaker=speaker)  # fmt: skip
    print(
        f"回音 terminal chat — 群「{group_title}」，你是「{speaker}」。@回音 开头和机器人说话；:quit 退出。"
    )
    try:
        while True:
            prompt = f"{session.speaker}{'(私聊)' if session.in_private else ''}> "
            try:
                line = await asyncio.to_thread(input, prompt)
            except EOFError:
                break
            line = line.strip()
            if not line:
                continue
            if line in {":quit", ":q", ":exit"}:
                break
            note = _command(session, line)
            if note is not None:
                print(note)
                continue
            replies = await runtime.dispatcher.handle(session.message(line))
            for reply in replies:
                print(session.render(reply))
    finally:
        await runtime.close()
        sys.stdout.flush()
