"""``/listen on|off`` in a group: whether the bot may offer help on a likely appeal nobody addressed to it
(see :mod:`bot.turn.etiquette`). Staff and building leaders may change it; until a community has any,
any member may (so that a new group can be set up)."""

from __future__ import annotations

from bot.turn.context import TurnContext
from bot.turn.handlers.base import Handler, Outcome

IN_CHARGE = ("staff", "building_leader")


class ListenHandler(Handler):
    commands = frozenset({"listen"})

    def check(self, turn: TurnContext) -> bool:
        return turn.command_name == "listen"

    async def handle(self, turn: TurnContext) -> Outcome:
        message, out, words = turn.message, turn.out, self.services.words
        arg = turn.command[1]
        if not message.is_group or arg not in {"on", "off"}:
            out.say(words.get("listen.usage"))
            return Outcome.DONE
        if not await self._may_change_group_settings(turn):
            out.say(words.get("listen.not_allowed"))
            return Outcome.DONE
        chat = await turn.repo.conversations.find_chat(message.platform.value, message.chat_id)
        assert chat is not None
        chat.listen = arg == "on"
        await self.services.store.set_chat_settings(
            message.platform,
            message.chat_id,
            {"listen": "1" if chat.listen else "0", "community": turn.ref.community_code},
        )
        out.say(words.get(f"listen.{arg}", bot_name=self.services.settings.bot_name))
        return Outcome.DONE

    @staticmethod
    async def _may_change_group_settings(turn: TurnContext) -> bool:
        roles = await turn.repo.people.roles_of(turn.ref.person_id, turn.ref.community_id)
        if set(IN_CHARGE) & roles.keys():
            return True
        return not await turn.repo.people.anyone_holds(turn.ref.community_id, IN_CHARGE)
