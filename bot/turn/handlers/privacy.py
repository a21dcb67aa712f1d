"""A resident's rights over their data, in chat: ``撤回 HY-…`` (withdraw an appeal), ``我的信息`` (what is
held about them, always in private) and ``删除我的信息`` (erase it, after a confirmation asked in private
and answered within a few minutes)."""

from __future__ import annotations

from bot.db.models import AppealStatus
from bot.message import Button
from bot.nlu.base import EntityType
from bot.privacy.rights import Finished, NotYours, Shared
from bot.turn.context import TurnContext
from bot.turn.handlers.base import Handler, Outcome

ERASE_CONFIRM = "/erase confirm"
ERASE_CANCEL = "/erase cancel"
CONFIRM_WITHIN_S = 600


class PrivacyHandler(Handler):
    commands = frozenset({"withdraw", "my_data", "erase", "erase_confirm"})

    def check(self, turn: TurnContext) -> bool:
        return turn.command_name in self.commands

    async def handle(self, turn: TurnContext) -> Outcome:
        command = turn.command_name
        if command == "withdraw":
            await self._withdraw(turn)
        elif command == "my_data":
            await self._my_data(turn)
        else:
            await self._erase(turn)
        if turn.dialog_state is not None and turn.out.state is not None:
            # Asked in the middle of a form: the form waits for its answer.
            turn.out.prompts.append(self.services.engine.resume(turn.out.state, turn.prompt_context))
        return Outcome.DONE

    async def _withdraw(self, turn: TurnContext) -> None:
        services, out = self.services, turn.out
        words, rights = services.words, services.privacy
        asked = turn.understanding.first(EntityType.APPEAL_ID)
        session = turn.repo.session
        if asked is None:
            open_appeals = await rights.open_appeals(session, turn.ref.person_id)
            if not open_appeals:
                out.say(words.get("privacy.withdraw_none"))
                return
            listed = "".join(f"\n  {a.public_id} {_short(a.description)}" for a in open_appeals[:5])
            out.say(
                words.get("privacy.withdraw_which", example=open_appeals[0].public_id, appeals=listed),
                tuple(Button(f"撤回 {a.public_id}", f"撤回 {a.public_id}") for a in open_appeals[:3]),
            )
            return
        try:
            done = await rights.withdraw(session, turn.ref.person_id, asked.value)
        except NotYours:
            out.say(words.get("privacy.withdraw_not_yours", public_id=asked.value))
            return
        except Shared as shared:
            out.say(
                words.get(
                    "privacy.withdraw_shared",
                    public_id=shared.appeal.public_id,
                    others=shared.appeal.supporters - 1,
                )
            )
            return
        except Finished as finished:
            out.say(
                words.get(
                    "privacy.withdraw_finished",
                    public_id=finished.appeal.public_id,
                    status=_status_label(finished.appeal.status),
                )
            )
            return
        out.say(words.get("privacy.withdrawn", public_id=done.public_id))

    async def _my_data(self, turn: TurnContext) -> None:
        services, message = self.services, turn.message
        words, rights = services.words, services.privacy
        if message.is_group:
            turn.out.say(words.get("privacy.held_in_private", name=message.sender_name or "您"))
        held = await rights.held(turn.repo.session, turn.ref.person_id)
        turn.out.say(rights.held_text(held), private=message.is_group)

    async def _erase(self, turn: TurnContext) -> None:
        services, message, out = self.services, turn.message, turn.out
        words, rights = services.words, services.privacy
        if message.is_group:
            out.say(words.get("privacy.in_private", name=message.sender_name or "您", command="删除我的信息"))
            return
        answer = "confirm" if turn.command_name == "erase_confirm" else turn.command[1].strip()
        session = turn.repo.session
        if answer == "cancel":
            out.say(words.get("privacy.erase_cancelled"))
            return
        if answer != "confirm":
            if await turn.repo.privacy.is_staff(turn.ref.person_id):
                out.say(words.get("privacy.erase_staff"))
                return
            out.say(
                words.get("privacy.erase_ask"),
                (
                    Button(words.get("privacy.erase_confirm_button"), ERASE_CONFIRM),
                    Button(words.get("privacy.erase_cancel_button"), ERASE_CANCEL),
                ),
            )
            return
        asked = await turn.repo.conversations.last_buttons(
            turn.ref.conversation_id, within_s=CONFIRM_WITHIN_S
        )
        if ERASE_CONFIRM not in asked:
            out.say(words.get("privacy.erase_stale"))
            return
        if await turn.repo.privacy.is_staff(turn.ref.person_id):
            out.say(words.get("privacy.erase_staff"))
            return
        erased = await rights.erase(session, services.store, turn.ref.person_id)
        # This conversation is gone with the rest: nothing of this turn is written back for it.
        out.state = None
        out.erased = True
        out.say(words.get("privacy.erased", appeals=erased.appeals, messages=erased.messages))


def _short(text: str, limit: int = 16) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…"


def _status_label(status: str) -> str:
    return AppealStatus(status).label
