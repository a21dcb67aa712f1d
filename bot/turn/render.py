"""From the turn's prompts to the replies a channel sends: where each goes, and how it is addressed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.dialog.engine import Prompt
from bot.message import IncomingMessage, Reply, Target
from bot.state import private_key_for


@dataclass(frozen=True, slots=True)
class GroupNotice(Prompt):
    """A short notice into the group where a dialog started, sent while the dialog runs in private."""

    origin_chat: str = ""


def to_reply(
    message: IncomingMessage, prompt: Prompt, group_mask: Callable[[str], str] | None = None
) -> Reply:
    """``prompt`` as a reply to ``message``: in a group addressed to the sender by name, or privately
    to them when the prompt is private (a status, a form moved out of the group). ``group_mask``: the
    rule every text bound for a residents' group passes (:class:`bot.privacy.masking.GroupMasker`)."""
    mask = group_mask or _unmasked
    if isinstance(prompt, GroupNotice):
        return Reply(
            mask(prompt.text), chat_id=prompt.origin_chat, recipient_id=message.sender_id, target=Target.CHAT
        )
    if prompt.private and message.is_group:
        key = private_key_for(message)
        return Reply(
            prompt.text,
            chat_id=key.chat_id,
            recipient_id=message.sender_id,
            target=Target.PRIVATE,
            buttons=prompt.buttons,
        )
    text = prompt.text
    if message.is_group:
        text = mask(text)
        if message.sender_name:
            text = f"@{message.sender_name} {text}"
    return Reply(text, chat_id=message.chat_id, recipient_id=message.sender_id, buttons=prompt.buttons)


def _unmasked(text: str) -> str:
    return text
