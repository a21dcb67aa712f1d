"""The case desk's operations: accept (受理), assign (派单), progress (进展), finish (办结), return (退回),
and send to the city. One core for the console and the chat commands.

Each operation loads the appeal for changing it (row lock), checks the actor's rights
(:mod:`bot.cases.access`), records an appeal event with its actor, writes an audit entry, and queues the
messages it causes in the same transaction: the resident, the relaying building leader and the
supporters through :func:`bot.appeals.status.change_status`, the handler's chat for a new assignment.
The caller commits. A refused operation raises :class:`CaseError` and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from bot.appeals.status import TERMINAL, change_status, flag, record_note
from bot.cases.access import CaseActor
from bot.cases.config import CITY, CITY_NAME, CaseDeskConfig, case_desk_config
from bot.cases.notices import queue_chat_message, tell_handler, tell_staff
from bot.db.models import Appeal, AppealEvent, AppealStatus, Handler, Person, utcnow
from bot.db.repository.appeal_records import AppealRecords
from bot.db.repository.appeals import AppealRepository
from bot.db.repository.cases import CaseRepository
from bot.dialog.slots import mask_personal
from bot.dialog.spec import Responses
from bot.roles import audit
from bot.settings import Settings
from kb import KnowledgeBase
from kb.model import HandlerKind

log = structlog.get_logger(__name__)

FLAG_RETURNED = "returned"
_INSIDE_PARTIES = frozenset({"property", "community", "owners_committee", "owner"})
TEXT_LIMIT = 500


class CaseError(Exception):
    """An operation refused; ``key`` names its wording under ``case.`` in responses.yml."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass(frozen=True, slots=True)
class CaseStep:
    """What an operation did: the appeal after it, the event it recorded, the handler it concerns."""

    appeal: Appeal
    event: AppealEvent | None
    handler: Handler | None = None
    told_chats: int = 0


@dataclass(frozen=True, slots=True)
class HandlerChoice:
    """A handler of a community, and whether the KB's first contact suggests it for an appeal."""

    handler: Handler
    suggested: bool = False


@dataclass
class CaseDesk:
    settings: Settings
    kb: KnowledgeBase
    words: Responses
    _seeded: set[tuple[int, bool]] = field(default_factory=set)  # (community id, has a city backend)
    # Built from the knowledge base, which a process loads once: read for every appeal filed.
    _configs: dict[str, CaseDeskConfig] = field(default_factory=dict)

    # --- configuration ---------------------------------------------------------------------------------
    def config(self, community_code: str) -> CaseDeskConfig:
        """The community's case desk (its profile's ``case_desk``; defaults for an unknown community)."""
        config = self._configs.get(community_code)
        if config is None:
            config = self._configs[community_code] = self._build_config(community_code)
        return config

    def _build_config(self, community_code: str) -> CaseDeskConfig:
        try:
            profile = self.kb.community(community_code)
        except KeyError:
            profile = None
        if profile is None:
            return CaseDeskConfig(
                handlers=(),
                first_response_hours=self.settings.first_response_hours,
                resolution_hours=72,
            )
        return case_desk_config(profile, default_first_response_hours=self.settings.first_response_hours)

    def has_city(self, community_code: str) -> bool:
        return self.settings.backend_kind(community_code) != "none"

    async def handlers(self, session: AsyncSession, community_id: int) -> list[Handler]:
        """The community's active handlers, seeded from its profile the first time they are asked for."""
        repo = CaseRepository(session)
        community = await repo.community(community_id)
        seed = (community_id, community is not None and self.has_city(community.code))
        if seed not in self._seeded:
            if community is not None:
                config = self.config(community.code)
                rows: list[dict[str, object]] = [
                    {
                        "code": h.code,
                        "name": h.name[:200],
                        "kind": h.kind,
                        "phone": h.phone,
                        "sees_contact": h.sees_contact,
                        "active": True,
                        "created_at": utcnow(),
                    }
                    for h in config.handlers
                ]
                if self.has_city(community.code):
                    rows.append(
                        {
                            "code": CITY,
                            "name": CITY_NAME,
                            "kind": HandlerKind.CITY.value,
                            "phone": None,
                            "sees_contact": True,
                            "active": True,
                            "created_at": utcnow(),
                        }
                    )
                await repo.add_missing_handlers(community_id, rows)
                self._seeded.add(seed)
        found = await repo.handlers(community_id)
        if community is not None and not self.has_city(community.code):
            found = [h for h in found if h.kind != HandlerKind.CITY.value]
        return found

    async def choices(self, session: AsyncSession, appeal: Appeal) -> list[HandlerChoice]:
        """The handlers staff may assign ``appeal`` to, the KB's suggestion marked (and first)."""
        handlers = await self.handlers(session, appeal.community_id)
        suggested = await self.suggestion(session, appeal, handlers)
        items = [HandlerChoice(h, suggested is not None and h.id == suggested.id) for h in handlers]
        return sorted(items, key=lambda c: not c.suggested)

    async def suggestion(
        self, session: AsyncSession, appeal: Appeal, handlers: list[Handler] | None = None
    ) -> Handler | None:
        """The handler the KB's first contact for the appeal points to, if the community has it."""
        community = await CaseRepository(session).community(appeal.community_id)
        if community is None:
            return None
        handlers = handlers if handlers is not None else await self.handlers(session, appeal.community_id)
        if appeal.destination == "city":
            return next((h for h in handlers if h.code == CITY), None)
        code = self.config(community.code).suggest(
            appeal.responsible_party, appeal.responsible_sub, appeal.building
        )
        return next((h for h in handlers if h.code == code), None)

    async def find_handler(self, session: AsyncSession, community_id: int, wanted: str) -> Handler | None:
        """A handler of the community by its code, its name, or a part of its name ("物业", "城管")."""
        wanted = wanted.strip()
        if not wanted:
            return None
        handlers = await self.handlers(session, community_id)
        for h in handlers:
            if h.code == wanted.lower() or h.name == wanted:
                return h
        aliases = {
            "物业": "property",
            "社区": "office",
            "居委会": "office",
            "工作站": "office",
            "市平台": CITY,
        }
        code = aliases.get(wanted)
        for h in handlers:
            if code is not None and h.code == code:
                return h
        partial = [h for h in handlers if wanted in h.name]
        return partial[0] if len(partial) == 1 else None

    async def suggestion_text(self, session: AsyncSession, actor: CaseActor, public_id: str) -> str:
        """What ``派单 HY-…`` without a handler answers: the KB's suggestion and how to confirm it."""
        appeal = await self._load(session, actor, public_id)
        if not actor.is_staff_for(appeal):
            raise CaseError("staff_only")
        suggested = await self.suggestion(session, appeal)
        if suggested is None:
            return self.words.get("case.assign_usage")
        return self.words.get(
            "case.suggested", public_id=appeal.public_id, handler=suggested.name, code=_short(suggested)
        )

    async def announce(self, session: AsyncSession, appeal_id: int, community_id: int) -> int:
        """Tell the community's staff chats of a newly filed appeal, with the handler the KB suggests
        and the command that assigns it (no phone or room number: a staff group is still a group).

        A filing is a resident's turn: where the community has no staff chat this costs one query."""
        chats = await CaseRepository(session).staff_chats(community_id)
        if not chats:
            return 0
        appeal = await session.get(Appeal, appeal_id)
        if appeal is None:
            return 0
        suggested = await self.suggestion(session, appeal)
        hint = (
            self.words.get(
                "case.new_suggest", public_id=appeal.public_id, handler=suggested.name, code=suggested.code
            )
            if suggested is not None
            else self.words.get("case.new_choose", public_id=appeal.public_id)
        )
        text = self.words.get(
            "case.new_appeal",
            public_id=appeal.public_id,
            summary=mask_personal(appeal.description)[:60],
            place=mask_personal(_place(appeal)) or "未填写",
            urgent="⚠️" if appeal.urgent else "",
            hint=hint,
        )
        for chat in chats:
            queue_chat_message(session, appeal, chat, text, occasion="filed")
        return len(chats)

    # --- the operations --------------------------------------------------------------------------------
    async def accept(
        self, session: AsyncSession, actor: CaseActor, public_id: str, note: str = ""
    ) -> CaseStep:
        """受理: the community takes the appeal on. From 已提交 (or a reopened case)."""
        appeal = await self._load(session, actor, public_id)
        reopenable = (AppealStatus.SUBMITTED.value, AppealStatus.REOPENED.value, AppealStatus.REJECTED.value)
        if appeal.status not in reopenable or (
            appeal.status == AppealStatus.REJECTED.value and not actor.is_staff_for(appeal)
        ):  # staff may take back a refusal they made by mistake
            raise CaseError("already_past", public_id=appeal.public_id, status=_label(appeal))
        text = _clip(note)
        if not text:
            handler = await CaseRepository(session).handler(appeal.handler_id) if appeal.handler_id else None
            by = (
                handler.name
                if handler is not None and actor.handles(appeal) and not actor.is_staff_for(appeal)
                else ""
            )
            text = (
                self.words.get("case.note_accepted_by", handler=by)
                if by
                else self.words.get("case.note_accepted")
            )
        event = await self._change(session, actor, appeal, AppealStatus.ACCEPTED, text, "accept")
        return CaseStep(appeal, event)

    async def assign(
        self, session: AsyncSession, actor: CaseActor, public_id: str, wanted: str, note: str = ""
    ) -> CaseStep:
        """派单: hand the appeal to a handler of its community (staff only). The handler's chat gets the
        summary; the resident hears that it was passed on. The city's handler sends it to the city."""
        appeal = await self._load(session, actor, public_id)
        if not actor.is_staff_for(appeal):
            raise CaseError("staff_only")
        if AppealStatus(appeal.status) in TERMINAL:
            raise CaseError("not_open", public_id=appeal.public_id, status=_label(appeal))
        handler = await self.find_handler(session, appeal.community_id, wanted)
        if handler is None:
            handlers = await self.handlers(session, appeal.community_id)
            alike = [h.name for h in handlers if wanted.strip() and wanted.strip() in h.name]
            if len(alike) > 1:  # "网格": which one?
                raise CaseError("ambiguous_handler", wanted=wanted[:30], names="、".join(alike))
            names = "、".join(h.name for h in handlers)
            raise CaseError("unknown_handler", wanted=wanted[:30], names=names or "（未配置）")
        if handler.code == CITY:
            return await self._to_city(session, actor, appeal, handler)
        if appeal.handler_id == handler.id:
            raise CaseError("already_assigned", public_id=appeal.public_id, handler=handler.name)
        now = utcnow()
        previous = appeal.handler_id
        appeal.handler_id, appeal.assigned_at = handler.id, now
        # The resident reads who has the case; staff's words with the assignment are for the handler.
        text = self.words.get("case.note_assigned", handler=handler.name)
        instruction = _clip(note)
        current = AppealStatus(appeal.status)
        event: AppealEvent | None
        if current in (AppealStatus.SUBMITTED, AppealStatus.ACCEPTED, AppealStatus.REOPENED):
            event = await self._change(
                session,
                actor,
                appeal,
                AppealStatus.ASSIGNED,
                text,
                "assign",
                handler=handler,
                instruction=instruction,
            )
        else:  # reassigned while being handled: the resident's case goes on, the new handler is told
            event = record_note(
                session,
                appeal,
                kind="assigned",
                note=instruction or text,
                actor=actor.label_for(appeal),
                payload={"handler": handler.code, "previous_handler_id": previous},
            )
            await session.flush()
            self._audit(session, actor, appeal, "assign", handler=handler.code)
        told = await tell_handler(
            session,
            appeal,
            handler.id,
            await self.assignment_text(session, appeal, handler, note=_clip(note)),
            occasion=f"assign:{event.id}",
        )
        return CaseStep(appeal, event, handler, told)

    async def progress(self, session: AsyncSession, actor: CaseActor, public_id: str, text: str) -> CaseStep:
        """进展: a note the resident reads; the appeal is 处理中 from now on."""
        text = _clip(text)
        if not text:
            raise CaseError("progress_usage")
        appeal = await self._load_open(session, actor, public_id)
        event = await self._change(
            session, actor, appeal, AppealStatus.IN_PROGRESS, text, "progress", again=True
        )
        return CaseStep(appeal, event)

    async def done(self, session: AsyncSession, actor: CaseActor, public_id: str, result: str) -> CaseStep:
        """办结: the result, which the resident reads and rates."""
        result = _clip(result)
        if not result:
            raise CaseError("done_usage")
        appeal = await self._load_open(session, actor, public_id)
        event = await self._change(session, actor, appeal, AppealStatus.RESOLVED, result, "done")
        return CaseStep(appeal, event)

    async def return_(self, session: AsyncSession, actor: CaseActor, public_id: str, reason: str) -> CaseStep:
        """退回. Staff: 不予受理 — the resident reads the reason and, where the KB knows, who to turn to
        instead. A handler's person: the appeal goes back to the community's staff to assign again."""
        reason = _clip(reason)
        if not reason:
            raise CaseError("return_usage")
        appeal = await self._load_open(session, actor, public_id)
        if actor.is_staff_for(appeal):
            community = await CaseRepository(session).community(appeal.community_id)
            referral = self.referral(appeal, community.code if community is not None else "")
            note = self.words.get("case.note_rejected", reason=reason.rstrip("。.！!；;"), referral=referral)
            event = await self._change(
                session, actor, appeal, AppealStatus.REJECTED, note, "return", reason=reason
            )
            return CaseStep(appeal, event)
        handler = await CaseRepository(session).handler(appeal.handler_id) if appeal.handler_id else None
        appeal.handler_id = None
        name = handler.name if handler is not None else ""
        event = record_note(
            session,
            appeal,
            kind="returned",
            note=self.words.get("case.note_returned", handler=name, reason=reason),
            actor=actor.label_for(appeal),
            payload={"handler": handler.code if handler else None, "reason": reason},
        )
        await session.flush()
        flag(session, appeal, FLAG_RETURNED, f"{name}退回：{reason}"[:200])
        self._audit(session, actor, appeal, "handback", handler=handler.code if handler else None)
        told = await tell_staff(
            session,
            appeal,
            self.words.get("case.staff_returned", public_id=appeal.public_id, handler=name, reason=reason),
            occasion=f"returned:{event.id}",
        )
        return CaseStep(appeal, event, handler, told)

    # --- texts -------------------------------------------------------------------------------------------
    async def assignment_text(
        self, session: AsyncSession, appeal: Appeal, handler: Handler, *, note: str
    ) -> str:
        """What a handler's chat reads about a new assignment: the problem, the place, the deadline, and
        the resident's contact only where the handler may see it (a department calls back through the
        community)."""
        tz = _tz(self.settings)
        contact = ""
        if handler.sees_contact:
            reporter = await session.get(Person, appeal.reporter_id)
            phone = appeal.contact_phone or (reporter.phone if reporter else None)
            name = reporter.display_name if reporter else ""
            if phone or name:
                contact = self.words.get(
                    "case.handler_contact", name=name or "居民", phone=phone or "未留电话"
                )
            if phone:
                # A resident's phone leaving for a handler's chat is recorded like a view in the console.
                audit(
                    session,
                    actor_person_id=None,
                    action="appeal.phone_sent",
                    target_type="appeal",
                    target_id=appeal.public_id,
                    community_id=appeal.community_id,
                    detail={"handler": handler.code},
                )
        description = appeal.description if handler.sees_contact else mask_personal(appeal.description)
        place = _place(appeal) if handler.sees_contact else mask_personal(_place(appeal))
        due = appeal.resolution_due_at or appeal.first_response_due_at
        return self.words.get(
            "case.handler_assigned",
            public_id=appeal.public_id,
            handler=handler.name,
            description=description[:300],
            place=place or "未填写",
            contact_line=f"\n{contact}" if contact else "",
            note_line=f"\n· 说明：{note}" if note else "",
            due=due.astimezone(tz).strftime("%m-%d %H:%M") if due else "—",
        )

    def referral(self, appeal: Appeal, community_code: str) -> str:
        """Who the resident may turn to instead, from the KB's answer to the appeal's matter in its
        community."""
        if not appeal.kb_matter_id:
            return self.words.get("case.referral_hotline")
        try:
            answer = self.kb.answer(appeal.kb_matter_id, community_code)
        except KeyError:
            answer = None
        if answer is None:
            return self.words.get("case.referral_hotline")
        # Staff turning an appeal down say it is not the community's to handle: refer to a party outside
        # it (a department, a utility, the street, the developer…), never back to the estate's own.
        outside = [c for c in (answer.first_contact, *answer.escalation) if c.party not in _INSIDE_PARTIES]
        if not outside:
            return self.words.get("case.referral_hotline")
        contact = outside[0]
        phone = f"（{contact.phone}）" if contact.phone and contact.phone not in contact.name else ""
        return self.words.get("case.referral", name=contact.name, phone=phone)

    # --- internals ---------------------------------------------------------------------------------------
    async def _load_open(self, session: AsyncSession, actor: CaseActor, public_id: str) -> Appeal:
        """:meth:`_load`, refusing an appeal that is finished (resolved, turned down, closed)."""
        appeal = await self._load(session, actor, public_id)
        if AppealStatus(appeal.status) in TERMINAL:
            raise CaseError("not_open", public_id=appeal.public_id, status=_label(appeal))
        return appeal

    async def _load(self, session: AsyncSession, actor: CaseActor, public_id: str) -> Appeal:
        """The appeal named by ``public_id``, locked for changing, if ``actor`` may see it; else the same
        error as for an id that does not exist."""
        repo = CaseRepository(session)
        found = await repo.appeal_by_public_id(public_id.strip()[:32])
        if found is None or not actor.may_see(found):
            raise CaseError("unknown_id", public_id=public_id.strip()[:32])
        appeal = await AppealRecords(session).lock(found.id)
        if appeal is None:
            raise CaseError("unknown_id", public_id=public_id.strip()[:32])
        return appeal

    async def _change(
        self,
        session: AsyncSession,
        actor: CaseActor,
        appeal: Appeal,
        new: AppealStatus,
        note: str,
        operation: str,
        *,
        handler: Handler | None = None,
        again: bool = False,
        reason: str | None = None,
        instruction: str = "",
    ) -> AppealEvent:
        payload: dict[str, Any] = {"via": actor.via, "operation": operation}
        if handler is not None:
            payload["handler"] = handler.code
        if instruction:  # kept with the event for staff; never in what the resident reads
            payload["instruction"] = instruction
        event = await change_status(
            session,
            appeal,
            new,
            note=note,
            actor=actor.label_for(appeal),
            words=self.words,
            payload=payload,
            again=again,
        )
        if event is None:
            raise CaseError("already_past", public_id=appeal.public_id, status=_label(appeal))
        self._audit(
            session, actor, appeal, operation, handler=handler.code if handler else None, reason=reason
        )
        return event

    async def _to_city(
        self, session: AsyncSession, actor: CaseActor, appeal: Appeal, city: Handler
    ) -> CaseStep:
        """Send the appeal to the city's case backend: its statuses come back as the appeal's events."""
        if appeal.destination == "city":
            raise CaseError("already_city", public_id=appeal.public_id)
        appeal.destination = "city"
        appeal.handler_id, appeal.assigned_at = city.id, utcnow()
        queue_city_case(session, appeal)
        note = self.words.get("case.note_to_city")
        current = AppealStatus(appeal.status)
        if current in (AppealStatus.SUBMITTED, AppealStatus.ACCEPTED, AppealStatus.REOPENED):
            event = await self._change(
                session, actor, appeal, AppealStatus.ASSIGNED, note, "to_city", handler=city
            )
        else:
            event = record_note(
                session,
                appeal,
                kind="assigned",
                note=note,
                actor=actor.label_for(appeal),
                payload={"handler": CITY},
            )
            await session.flush()
            self._audit(session, actor, appeal, "to_city", handler=CITY)
        return CaseStep(appeal, event, city)

    def _audit(
        self,
        session: AsyncSession,
        actor: CaseActor,
        appeal: Appeal,
        operation: str,
        *,
        handler: str | None = None,
        reason: str | None = None,
    ) -> None:
        detail: dict[str, Any] = {"via": actor.via, "status": appeal.status}
        if handler:
            detail["handler"] = handler
        if reason:
            detail["reason"] = reason[:200]
        audit(
            session,
            actor_person_id=actor.person_id,
            action=f"appeal.{operation}",
            target_type="appeal",
            target_id=appeal.public_id,
            community_id=appeal.community_id,
            detail=detail,
        )


def queue_city_case(session: AsyncSession, appeal: Appeal) -> None:
    """The outbox row that files ``appeal`` with the city's case backend (idempotent on its key)."""
    AppealRepository(session).queue_city_case(appeal.id, appeal.public_id)


_SHORT_NAMES = {"property": "物业", "office": "社区", "city": "市平台"}


def _short(handler: Handler) -> str:
    """What staff type to name ``handler`` in 派单 (a word, not a code): 物业, 社区, or its name."""
    return _SHORT_NAMES.get(handler.code) or handler.name


def _clip(text: str) -> str:
    return (text or "").strip()[:TEXT_LIMIT]


def _label(appeal: Appeal) -> str:
    return AppealStatus(appeal.status).label


def _summary(appeal: Appeal) -> str:
    text = appeal.description
    return text if len(text) <= 30 else text[:29] + "…"


def _place(appeal: Appeal) -> str:
    parts = [f"{appeal.building}栋" if appeal.building else "", f"{appeal.unit}单元" if appeal.unit else ""]
    if appeal.room:
        parts.append(appeal.room)
    text = "".join(parts)
    return " ".join(p for p in (text, appeal.place or "") if p)


def _tz(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.timezone)
