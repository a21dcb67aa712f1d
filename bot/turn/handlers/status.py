""" "我的诉求怎么样了" / ``/status [HY-…]``: the resident's appeals and their latest progress, always in
private (a group only hears that the answer went there)."""

from __future__ import annotations

from bot.db.models import AppealStatus
from bot.nlu.base import EntityType, Intent
from bot.turn.context import TurnContext
from bot.turn.handlers.base import Handler, Outcome


class StatusHandler(Handler):
    commands = frozenset({"status"})

    def check(self, turn: TurnContext) -> bool:
        command = turn.command_name
        if command is not None:
            return command == "status"
        return turn.intent is Intent.STATUS

    async def handle(self, turn: TurnContext) -> Outcome:
        services, message, out = self.services, turn.message, turn.out
        words = services.words
        private = message.is_group
        if private:
            out.say(words.get("status.in_private", name=message.sender_name or "您"))
        asked = turn.understanding.first(EntityType.APPEAL_ID)
        if asked is not None:  # "/status HY-…": that appeal, when the resident is connected to it
            out.say(await services.follow_up.status_of(turn.repo, turn.ref, asked.value), private=private)
            return Outcome.DONE
        appeals = await turn.repo.appeals.appeals_of(turn.ref.person_id)
        if not appeals:
            out.say(words.get("status.none", bot_name=services.settings.bot_name), private=private)
            return Outcome.DONE
        lines = [words.get("status.header")]
        for appeal in appeals:
            latest = await services.follow_up.progress_note(turn.repo, appeal)
            note = f"\n  {latest}" if latest and appeal.status != AppealStatus.SUBMITTED else ""
            lines.append(
                words.get(
                    "status.item",
                    public_id=appeal.public_id,
                    status=AppealStatus(appeal.status).label,
                    summary=appeal.description[:24],
                    date=appeal.created_at.astimezone(services.tz).strftime("%m-%d"),
                    note=note,
                )
            )
        out.say("\n".join(lines), private=private)
        return Outcome.DONE
