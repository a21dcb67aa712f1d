"""An area-wide incident that is open (bot/appeals/incidents.py): a resident who reports it or asks about
it ("怎么又停水了", "几点来水") is told at once what is known, with a button to join — no form; the button
("/incident HY-…") makes them a supporter of the incident's case, also from the middle of a form."""

from __future__ import annotations

import re

from bot.appeals.incidents import JOIN
from bot.db.models import Appeal
from bot.nlu.base import Intent
from bot.turn.context import TurnContext
from bot.turn.handlers.base import Handler, Outcome

_JOIN = re.compile(rf"{re.escape(JOIN)}\s+(\S+)")


class IncidentJoinHandler(Handler):
    """The join button of an incident's notice: the resident joins its case (a form they were filling
    in about it ends: the case is theirs now)."""

    def check(self, turn: TurnContext) -> bool:
        return _JOIN.search(turn.message.text) is not None

    async def handle(self, turn: TurnContext) -> Outcome:
        found = _JOIN.search(turn.message.text)
        assert found is not None
        words = self.services.words
        public_id = found.group(1)
        joined = await self.services.incidents.join(turn.repo, turn.ref, turn.message, public_id)
        if joined.appeal is None:
            turn.out.say(words.get("incident.closed"))
            return Outcome.DONE
        key = "incident.joined" if joined.added else "incident.already"
        turn.out.say(words.get(key, public_id=public_id))
        if turn.dialog_state is not None:
            turn.out.state = None
        return Outcome.DONE


class IncidentHandler(Handler):
    """A report of, or a question about, an open incident of the resident's community: what is known
    and the join button. The check reads only the words (no I/O); without an open incident the message
    goes on to the report and the answers."""

    def check(self, turn: TurnContext) -> bool:
        if turn.command_name is not None or turn.in_dialog or turn.intent is Intent.EMERGENCY:
            return False
        return bool(self.services.incidents.mentioned(turn.ref.community_code, turn.understanding.text))

    async def handle(self, turn: TurnContext) -> Outcome:
        desk = self.services.incidents
        rules = desk.mentioned(turn.ref.community_code, turn.understanding.text)
        known = await desk.known(turn.repo, turn.ref, rules)
        if known is None:
            return Outcome.CONTINUE
        case = await turn.repo.session.get(Appeal, known.incident.case_appeal_id)
        person = turn.ref.person_id
        if case is not None and (
            case.reporter_id == person or await turn.repo.appeal_records.is_supporter(case.id, person)
        ):
            turn.out.say(desk.known_text(known, joined=True))
            return Outcome.DONE
        turn.out.say(desk.known_text(known), desk.join_buttons(known))
        return Outcome.DONE
