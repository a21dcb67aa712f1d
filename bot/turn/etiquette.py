"""Group etiquette, before anything costly: which command a message gives, and what becomes of group
chatter that does not address the bot.

Chatter is answered with nothing, unless the group lets the bot listen (``/listen on``) and the message
is an emergency or a likely appeal: then one short offer of help, at most once per resident per
cooldown. Ignored chatter is not recorded anywhere.
"""

from __future__ import annotations

import re

from bot.addressing import Addressing
from bot.db.session import Database
from bot.dialog.engine import Prompt
from bot.dialog.slots import bare
from bot.message import IncomingMessage, Reply
from bot.nlu.base import Intent, NLUBackend
from bot.privacy.masking import GroupMasker
from bot.turn.render import to_reply
from bot.turn.services import Services

# How sure the NLU must be of a report in an unaddressed group message before listen mode offers help.
LISTEN_OFFER_CONFIDENCE = 0.75
_ARGUMENT = re.compile(r"\d")


class Etiquette:
    def __init__(self, services: Services, db: Database, nlu: NLUBackend) -> None:
        self.services = services
        self.db = db
        self.nlu = nlu
        self.addressing = Addressing(services.settings.bot_names)
        self.group_mask = GroupMasker.from_kb(services.kb)

    def addressed(self, message: IncomingMessage) -> bool:
        return self.addressing.addressed(message)

    def command(self, message: IncomingMessage) -> tuple[str | None, str]:
        """The command ``message`` gives and its argument: ``/status HY-…`` → ``("status", "HY-…")``, a
        command word that is the whole message ("进度", in a group after the bot's name) → ``("status",
        "")``; ``(None, "")`` when it gives none (``/kb`` is the answer buttons' own command)."""
        text = self.addressing.without_address(message.text) if message.is_group else ""
        text = text or message.text.strip()
        rules = self.services.dialogs.rules
        if text.startswith("/"):
            head, _, arg = text.partition(" ")
            name = rules.commands.get(head.lower())
            if name is None and head == "/kb":
                name = "kb"
            return name, arg.strip()
        word = rules.command_words.get(bare(text))
        if word is not None:
            return word, ""
        for prefix, name in rules.command_prefixes:
            # "撤回 HY-…": the prefix, then an argument with a number in it (a bare "撤回" inside a
            # form cancels the form instead).
            if text.startswith(prefix) and _ARGUMENT.search(text[len(prefix) :]):
                return name, text[len(prefix) :].strip(" ：:，,")
        return None, ""

    async def chatter(self, message: IncomingMessage, chat_settings: dict[str, str]) -> list[Reply]:
        """Group chatter: nothing, unless the group lets the bot listen (``chat_settings``, as cached in
        Redis; empty when they are not) and the message is an emergency or a likely appeal."""
        services = self.services
        services.metrics.chatter(message.platform)
        if not chat_settings:
            chat_settings = await self._chat_settings(message)
        if chat_settings.get("listen") != "1":
            return []
        u = await self.nlu.parse(message.text)
        if u.intent.name is Intent.EMERGENCY and u.intent.confidence >= LISTEN_OFFER_CONFIDENCE:
            community = chat_settings.get("community") or services.settings.default_community
            answer = services.kb.lookup(u.text, community)
            if answer is not None and answer.emergency:
                return [to_reply(message, Prompt(answer.text), self.group_mask)]
        if u.intent.name is not Intent.REPORT or u.intent.confidence < LISTEN_OFFER_CONFIDENCE:
            return []
        if not await services.store.take_offer_slot(
            message.platform, message.chat_id, message.sender_id, services.settings.listen_offer_cooldown_s
        ):
            return []
        offer = services.words.get("listen.offer", bot_name=services.settings.bot_name)
        return [to_reply(message, Prompt(offer))]

    async def _chat_settings(self, message: IncomingMessage) -> dict[str, str]:
        """The group's settings from the database, cached in Redis (they are read for every message of
        group chatter)."""
        settings = self.services.settings
        async with self.db.unit_of_work() as uow:
            chat = await uow.repo.conversations.find_chat(message.platform.value, message.chat_id)
            listen = chat.listen if chat else settings.group_listen_default
            community = await uow.repo.conversations.community_code(chat.community_id) if chat else None
        cached = {"listen": "1" if listen else "0", "community": community or settings.default_community}
        await self.services.store.set_chat_settings(message.platform, message.chat_id, cached)
        return cached
