"""Case-desk commands in chat, for staff and handlers' people away from the console:

    /accept HY-…            受理 HY-…
    /assign HY-… 物业        派单 HY-… 物业          (staff only; 市平台 sends it to the city)
    /progress HY-… 内容      进展 HY-… 内容
    /done HY-… 结果          办结 HY-… 结果
    /return HY-… 原因        退回 HY-… 原因          (staff: 不予受理; a handler: back to the community)
    /cases                  待办                     (open appeals they may act on)
    /handlers               处理单位                 (the community's handlers)

The Chinese words act as commands only when an appeal id follows them (or alone, for 待办 and 处理单位),
so ordinary chatter never triggers them. To anyone who is neither staff nor a handler's person every one
of them answers the same "not allowed" line, and an id they may not see is answered like an unknown id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.addressing import Addressing
from bot.cases.access import CaseActor, case_actor
from bot.cases.desk import CaseDesk, CaseError, CaseStep
from bot.db.models import AppealStatus
from bot.db.repository.cases import CaseRepository
from bot.handoff.model import TurnOutput
from bot.message import IncomingMessage
from bot.roles import person_by_identity

SLASH = {
    "/accept": "accept",
    "/assign": "assign",
    "/progress": "progress",
    "/done": "done",
    "/return": "return",
    "/cases": "cases",
    "/handlers": "handlers",
    "/help": "help",  # a handler's person's help; staff get theirs from the staff desk first
}
WORDS_WITH_ID = {
    "受理": "accept",
    "派单": "assign",
    "转派": "assign",
    "进展": "progress",
    "办结": "done",
    "退回": "return",
    "不予受理": "return",
}
WORDS_ALONE = {"待办": "cases", "我的待办": "cases", "待处理诉求": "cases", "处理单位": "handlers"}

_ID_AND_REST = re.compile(r"^[#＃]?([A-Za-z]{1,8}-\d{8}-\d{1,6})(?:[\s,，:：]+(.*))?$", re.S)


@dataclass(frozen=True, slots=True)
class CaseCommand:
    operation: str
    public_id: str = ""
    argument: str = ""


class CaseCommands:
    def __init__(self, cases: CaseDesk) -> None:
        self.cases = cases
        self.words = cases.words
        self._addressing = Addressing(cases.settings.bot_names)
        self._tz = ZoneInfo(cases.settings.timezone)

    def parse(self, text: str) -> CaseCommand | None:
        """The case command in ``text``, or None. Cheap: it runs for every message."""
        text = self._addressing.without_address(text)
        if not text:
            return None
        if text.startswith("/"):
            head, _, rest = text.partition(" ")
            operation = SLASH.get(head.split("@", 1)[0].lower())
            if operation is None:
                return None
            return self._with_id(operation, rest.strip()) or CaseCommand(operation)
        if text in WORDS_ALONE:
            return CaseCommand(WORDS_ALONE[text])
        for word, operation in WORDS_WITH_ID.items():
            if text.startswith(word):
                found = self._with_id(operation, text[len(word) :].strip())
                if found is not None:
                    return found
        return None

    @staticmethod
    def _with_id(operation: str, rest: str) -> CaseCommand | None:
        found = _ID_AND_REST.match(rest)
        if found is None:
            return None
        return CaseCommand(operation, found.group(1).upper(), (found.group(2) or "").strip())

    async def handle(self, session: AsyncSession, message: IncomingMessage, out: TurnOutput) -> bool:
        """Carry out a case command; False when the message is not one."""
        command = self.parse(message.text)
        if command is None:
            return False
        person = await person_by_identity(session, message.platform.value, message.sender_id)
        actor = (
            await case_actor(session, person.id, person.display_name or message.sender_name, via="chat")
            if person is not None
            else None
        )
        if command.operation == "help" and (actor is None or not actor.anyone):
            return False  # a resident's /help: the bot's own
        if actor is None or not actor.anyone:
            out.say(self.words.get("staff.not_allowed"))
            return True
        try:
            out.say(await self._run(session, actor, command))
        except CaseError as exc:
            out.say(self.words.get(f"case.{exc.key}", **exc.values))
        return True

    async def _run(self, session: AsyncSession, actor: CaseActor, command: CaseCommand) -> str:
        w, op, public_id, arg = self.words, command.operation, command.public_id, command.argument
        if op == "cases":
            return await self._open_list(session, actor)
        if op == "handlers":
            return await self._handler_list(session, actor)
        if op == "help":
            return w.get("case.usage" if actor.staff_of else "case.usage_handler")
        if not public_id:
            return w.get("case.usage")
        desk = self.cases
        if op == "accept":
            step = await desk.accept(session, actor, public_id, arg)
            return w.get("case.accepted", public_id=step.appeal.public_id)
        if op == "assign":
            if not arg:  # the KB's suggestion, for staff to confirm or change
                return await self.cases.suggestion_text(session, actor, public_id)
            wanted, _, note = arg.partition(" ")
            step = await desk.assign(session, actor, public_id, wanted, note.strip())
            return self._assigned(step)
        if op == "progress":
            step = await desk.progress(session, actor, public_id, arg)
            return w.get("case.progressed", public_id=step.appeal.public_id)
        if op == "done":
            step = await desk.done(session, actor, public_id, arg)
            return w.get("case.done", public_id=step.appeal.public_id)
        step = await desk.return_(session, actor, public_id, arg)
        if step.appeal.status == AppealStatus.REJECTED.value:
            return w.get("case.rejected", public_id=step.appeal.public_id)
        return w.get("case.handed_back", public_id=step.appeal.public_id)

    def _assigned(self, step: CaseStep) -> str:
        assert step.handler is not None
        if step.handler.kind == "city":
            return self.words.get("case.to_city", public_id=step.appeal.public_id)
        told = self.words.get("case.assigned_told" if step.told_chats else "case.assigned_untold")
        return self.words.get(
            "case.assigned", public_id=step.appeal.public_id, handler=step.handler.name, told=told
        )

    async def _open_list(self, session: AsyncSession, actor: CaseActor) -> str:
        repo = CaseRepository(session)
        appeals = await repo.open_appeals_for(sorted(actor.staff_of), sorted(actor.handler_ids))
        if not appeals:
            return self.words.get("case.open_empty")
        names = {}
        for a in appeals:
            if a.handler_id is not None and a.handler_id not in names:
                handler = await repo.handler(a.handler_id)
                names[a.handler_id] = handler.name if handler else ""
        lines = [self.words.get("case.open_header", count=len(appeals))]
        for a in appeals:
            due = a.resolution_due_at or a.first_response_due_at
            lines.append(
                self.words.get(
                    "case.open_item",
                    public_id=a.public_id,
                    status=AppealStatus(a.status).label,
                    summary=a.description[:20],
                    handler=names.get(a.handler_id, "未派单") if a.handler_id else "未派单",
                    due=due.astimezone(self._tz).strftime("%m-%d %H:%M") if due else "—",
                )
            )
        return "\n".join(lines)

    async def _handler_list(self, session: AsyncSession, actor: CaseActor) -> str:
        repo = CaseRepository(session)
        lines = [self.words.get("case.handlers_header")]
        for community_id in sorted(actor.staff_of):
            for h in await self.cases.handlers(session, community_id):
                chat = self.words.get("case.handler_has_chat") if await repo.handler_chats(h.id) else ""
                lines.append(self.words.get("case.handlers_item", name=h.name, code=h.code, chat=chat))
        return "\n".join(lines) if len(lines) > 1 else self.words.get("case.usage_handler")
