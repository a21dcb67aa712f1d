"""Staff's notices to residents' groups (bot/cases/announcements.py): ``/announce`` in a staff chat posts
one; a resident who asks about a valid notice's topic ("明天几点停水") is answered from it."""

from __future__ import annotations

from bot.addressing import Addressing
from bot.cases.announcements import Announcements, mentions_a_topic
from bot.message import Button
from bot.nlu.base import Intent
from bot.turn.context import TurnContext
from bot.turn.handlers.base import Handler, Outcome
from bot.turn.services import Services

STAFF_CHAT = "staff"


class _AnnouncementsPart(Handler):
    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.announcements = Announcements(services.settings, services.words, services.store.redis)
        self._addressing = Addressing(services.settings.bot_names)


class AnnounceHandler(_AnnouncementsPart):
    """``/announce 文本`` (or ``公告 文本``) in a staff chat, by the community's staff."""

    def check(self, turn: TurnContext) -> bool:
        if turn.ref.chat_purpose != STAFF_CHAT:
            return False
        return Announcements.command(self._addressing.without_address(turn.message.text)) is not None

    async def handle(self, turn: TurnContext) -> Outcome:
        text = Announcements.command(self._addressing.without_address(turn.message.text)) or ""
        staff_of = await turn.repo.roles.staff_community_ids(turn.ref.person_id)
        if turn.ref.community_id not in staff_of:
            turn.out.say(self.services.words.get("announce.staff_only"))
            return Outcome.DONE
        turn.out.say(await self.announcements.post(turn.repo, turn.ref, text))
        return Outcome.DONE


class AnnouncementAnswerHandler(_AnnouncementsPart):
    """A question about the topic of a valid notice: the notice (with a button to report something else
    instead). The check reads only the words; without a notice the message goes on."""

    def check(self, turn: TurnContext) -> bool:
        if turn.command_name is not None or turn.in_dialog or turn.intent is Intent.EMERGENCY:
            return False
        return turn.ref.chat_purpose != STAFF_CHAT and mentions_a_topic(turn.understanding.text)

    async def handle(self, turn: TurnContext) -> Outcome:
        answer = await self.announcements.answer(turn.repo, turn.ref, turn.message)
        if answer is None:
            return Outcome.CONTINUE
        button = Button(self.services.words.get("announce.report_button"), "/report")
        turn.out.say(answer, (button,))
        return Outcome.DONE
