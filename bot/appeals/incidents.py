"""Area-wide incidents (片区性事件): when the water goes off in a whole estate, many residents of many
buildings report it within minutes. Instead of fifty cases, huiyin makes it one:

- **Detection** (:meth:`IncidentDesk.observe`, in the filing path): reports of the same kind (a group of
  KB matters, or a category) across a community — ``reports`` from at least ``buildings`` buildings within
  ``window_minutes`` (:class:`IncidentRule`; defaults here, per community in its profile's
  ``case_desk.incidents``) — open an incident. Only one incident of a kind is open in a community at a
  time, whichever process detects it first (the unique ``open_key``; see
  :meth:`IncidentRepository.try_open`).
- **One case**: the first report's appeal carries the case; every other report is merged into it (its
  appeal closed with a note, its reporter made a supporter), so the case's status changes reach all of
  them — in a residents' group once per group, not once per resident (:mod:`bot.appeals.incident_news`).
- **Alert**: the community's staff chats (and the case's handler, once assigned) get one alert at
  detection, with the counts, buildings and the first messages (masked); then an update as more reports
  arrive, at most every ``incident_update_minutes``.
- **Deflection** (:class:`bot.turn.handlers.incidents.IncidentHandler`): while it is open, a resident who
  reports or asks about it is told what is known and may join with a button, without the form; each
  residents' group of the community gets one short notice when the incident opens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.appeals import duplicates
from bot.appeals.duplicates import Joined
from bot.appeals.notify import queue_notify
from bot.appeals.status import lock_appeal
from bot.cases.notices import queue_chat_message, tell_handler
from bot.db.models import (
    OPEN_STATUSES,
    Appeal,
    AppealEvent,
    AppealStatus,
    Incident,
    utcnow,
)
from bot.db.repository import ConversationRef, FiledAppeal, Repository
from bot.db.repository.appeal_records import AppealRecords
from bot.db.repository.cases import CaseRepository
from bot.db.repository.incidents import IncidentRepository, open_key
from bot.dialog.slots import mask_personal
from bot.dialog.spec import Responses
from bot.message import Button, ChatType, IncomingMessage, Reply
from bot.settings import Settings
from kb import KnowledgeBase

_OPEN = frozenset(s.value for s in OPEN_STATUSES)
FIRST_MESSAGES = 3  # how many of the first reports the staff alert quotes
JOIN = "/incident"  # the join button's payload: "/incident HY-…"


@dataclass(frozen=True, slots=True)
class IncidentRule:
    """When reports of one kind make an incident, and how residents speak of it."""

    kind: str
    label: str
    matters: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    reports: int = 5
    buildings: int = 3
    window: timedelta = timedelta(minutes=30)

    def covers(self, category: str | None, matter_id: str | None) -> bool:
        return (matter_id is not None and matter_id in self.matters) or (
            category is not None and category in self.categories
        )

    def mentioned_in(self, text: str) -> bool:
        return any(w in text for w in self.words)


DEFAULT_RULES: tuple[IncidentRule, ...] = (
    IncidentRule(
        "water",
        "停水",
        matters=("water_outage", "water_outage_building", "water_outage_area"),
        words=("停水", "没水", "来水", "断水", "水停了", "没有水", "供水"),
    ),
    IncidentRule(
        "power",
        "停电",
        matters=("power_outage", "power_outage_building", "power_outage_area"),
        words=("停电", "没电", "来电", "断电", "电停了", "没有电", "供电"),
    ),
)
"""The kinds huiyin knows: a supply cut affects many buildings at once. (A broken lift is one building's:
its reports are duplicates of one appeal, :mod:`bot.appeals.duplicates`, not an area-wide incident.)"""


@dataclass(frozen=True, slots=True)
class Known:
    """What a resident asking about an open incident is told."""

    incident: Incident
    case_public_id: str
    rule: IncidentRule


@dataclass
class IncidentDesk:
    settings: Settings
    kb: KnowledgeBase
    words: Responses
    _rules: dict[str, tuple[IncidentRule, ...]] = field(default_factory=dict)

    # --- configuration ---------------------------------------------------------------------------------
    def rules(self, community_code: str) -> tuple[IncidentRule, ...]:
        """The community's incident rules: the defaults, with its profile's ``case_desk.incidents``
        thresholds (and new kinds) applied; a kind with ``reports: 0`` is off."""
        cached = self._rules.get(community_code)
        if cached is not None:
            return cached
        try:
            configured = self.kb.community(community_code).case_desk.incidents
        except KeyError:
            configured = {}
        found: list[IncidentRule] = []
        known = {r.kind: r for r in DEFAULT_RULES}
        for kind in [*known, *(k for k in configured if k not in known)]:
            base = known.get(kind, IncidentRule(kind, kind))
            own = configured.get(kind)
            if own is not None:
                base = IncidentRule(
                    kind,
                    own.label or base.label,
                    matters=tuple(own.matters) or base.matters,
                    categories=tuple(c.value for c in own.categories) or base.categories,
                    words=tuple(own.words) or base.words,
                    reports=own.reports if own.reports is not None else base.reports,
                    buildings=own.buildings or base.buildings,
                    window=timedelta(minutes=own.window_minutes) if own.window_minutes else base.window,
                )
            if base.reports > 0 and (base.matters or base.categories):
                found.append(base)
        rules = tuple(found)
        self._rules[community_code] = rules
        return rules

    def rule_for(
        self, community_code: str, category: str | None, matter_id: str | None
    ) -> IncidentRule | None:
        return next((r for r in self.rules(community_code) if r.covers(category, matter_id)), None)

    def mentioned(self, community_code: str, text: str) -> list[IncidentRule]:
        """The rules whose words the text uses ("怎么又停水了": water). No I/O."""
        return [r for r in self.rules(community_code) if r.mentioned_in(text)]

    # --- detection, in the filing path ----------------------------------------------------------------
    async def observe(
        self,
        repo: Repository,
        filed: FiledAppeal,
        ref: ConversationRef,
        *,
        category: str | None,
        matter_id: str | None,
        building: str | None,
    ) -> str | None:
        """A newly filed appeal: count it towards its kind's incident. Opens the incident when the
        threshold is reached (merging the reports so far), or merges the appeal into the open one.
        Returns the case's public id when the appeal was merged into it (None: it stands on its own).
        In the filing's transaction: the caller commits."""
        rule = self.rule_for(ref.community_code, category, matter_id)
        if rule is None:
            return None
        incidents = IncidentRepository(repo.session)
        # Locks are taken case appeal first, then incident, as every path does (a join, a status
        # change): the other order deadlocks against them.
        incident = await incidents.open_incident(ref.community_id, rule.kind)
        now = utcnow()
        if incident is not None and not await self._case_open(repo, incident):
            # Its case was closed some other way (withdrawn, turned down…): the incident is over, and
            # this report may start a new one.
            await incidents.close(incident.id, now)
            incident = None
        if incident is None:
            reports = await incidents.recent_reports(
                ref.community_id, matters=rule.matters, categories=rule.categories, since=now - rule.window
            )
            buildings = _buildings(r.building for r in reports)
            if len(reports) < rule.reports or len(buildings) < rule.buildings:
                return None
            incident = await incidents.try_open(
                {
                    "community_id": ref.community_id,
                    "kind": rule.kind,
                    "label": rule.label,
                    "status": "open",
                    "open_key": open_key(ref.community_id, rule.kind),
                    "case_appeal_id": reports[0].id,
                    "buildings": buildings,
                    "reports": len(reports),
                    "first_report_at": reports[0].created_at,
                    "last_report_at": now,
                    "restore_text": "",
                    "alerted_reports": len(reports),
                    "alerted_at": now,
                    "created_at": now,
                }
            )
            if incident is not None:
                return await self._open(repo, incident, rule, reports, filed.id)
            # Another process opened it first (and has committed): join it like any later report.
            incident = await incidents.open_incident(ref.community_id, rule.kind)
            if incident is None:
                return None
        return await self._attach(repo, incident, filed.id, building, now)

    async def _open(
        self,
        repo: Repository,
        incident: Incident,
        rule: IncidentRule,
        reports: Sequence[Any],
        filed_id: int,
    ) -> str | None:
        session = repo.session
        case = await lock_appeal(session, reports[0].id)
        assert case is not None
        # The alert first: the outbox delivers one case's messages in order, and staff should not wait
        # behind the residents' notices.
        await self._alert(session, incident, case, rule, reports)
        for report in reports[1:]:
            await self._merge(repo, incident, case, report.id, tell=report.id != filed_id)
        await self._tell_groups(session, incident, case, rule)
        return case.public_id if filed_id != case.id else None

    async def _case_open(self, repo: Repository, incident: Incident) -> bool:
        status = await IncidentRepository(repo.session).case_status(incident)
        return status in _OPEN

    async def _attach(
        self,
        repo: Repository,
        incident: Incident,
        filed_id: int,
        building: str | None,
        now: datetime,
    ) -> str | None:
        if incident.case_appeal_id is None or incident.case_appeal_id == filed_id:
            return None
        case = await lock_appeal(repo.session, incident.case_appeal_id)
        if case is None or case.status not in _OPEN:
            return None
        locked = await IncidentRepository(repo.session).open_incident(
            incident.community_id, incident.kind, lock=True
        )
        if locked is None or locked.id != incident.id:  # resolved meanwhile
            return None
        incident = locked
        await self._merge(repo, incident, case, filed_id, tell=False)
        await self._counted(repo.session, incident, case, building, now)
        return case.public_id

    async def _counted(
        self, session: AsyncSession, incident: Incident, case: Appeal, building: str | None, now: datetime
    ) -> None:
        """One more report of ``incident`` (locked): its counts, and the staff's update when one is due
        (at most every ``incident_update_minutes``, whatever the pace of the reports)."""
        incident.reports += 1
        incident.last_report_at = now
        if building and building not in incident.buildings:
            incident.buildings = [*incident.buildings, building]
        due = incident.alerted_at is None or now - incident.alerted_at >= timedelta(
            minutes=self.settings.incident_update_minutes
        )
        if due and incident.reports > incident.alerted_reports:
            await self._update(session, incident, case)

    async def join(
        self, repo: Repository, ref: ConversationRef, message: IncomingMessage, public_id: str
    ) -> Joined:
        """The resident pressed the join button of the incident whose case is ``public_id``: they become
        a supporter of the case (and count as a report). ``Joined(None, False)`` when it is no open
        incident's case of their community."""
        joined = await duplicates.join_here(repo, public_id, ref, message, self.words)
        if joined.appeal is None:
            return joined
        incidents = IncidentRepository(repo.session)
        found = await incidents.by_case(joined.appeal.id)
        if found is None:
            return Joined(None, False)
        incident = await incidents.open_incident(ref.community_id, found.kind, lock=True)
        if incident is None or incident.id != found.id:  # resolved meanwhile
            return Joined(None, False)
        if joined.added:
            await self._counted(repo.session, incident, joined.appeal, None, utcnow())
        return joined

    async def _merge(
        self, repo: Repository, incident: Incident, case: Appeal, appeal_id: int, *, tell: bool
    ) -> None:
        """Close the appeal ``appeal_id`` into ``case``: its reporter becomes a supporter of the case
        (the supporter mechanism: they hear of its progress, the backend hears "+1"). ``tell``: the
        reporter, when they have a private chat with the bot, hears of it there (in a group, the group's
        one notice tells everyone)."""
        session = repo.session
        appeal = await lock_appeal(session, appeal_id)
        if appeal is None or appeal.id == case.id or appeal.status not in _OPEN:
            return
        previous = appeal.status
        appeal.status = AppealStatus.CLOSED.value
        note = self.words.get("incident.merged_note", public_id=case.public_id, label=incident.label)
        session.add(
            AppealEvent(
                appeal_id=appeal.id,
                kind="status",
                status_from=previous,
                status_to=AppealStatus.CLOSED.value,
                note=note,
                actor="huiyin",
                payload={"incident": incident.id, "merged_into": case.public_id},
            )
        )
        if appeal.destination == "city":
            await IncidentRepository(session).withhold_city_filing(appeal.id, utcnow(), note)
        await duplicates.join(
            repo,
            case.public_id,
            appeal.reporter_id,
            community_id=case.community_id,
            origin_platform=appeal.origin_platform,
            origin_chat=appeal.origin_chat,
            origin_chat_type=appeal.origin_chat_type,
            words=self.words,
        )
        if not tell:
            return
        records = AppealRecords(session)
        identity = await records.identity_on(appeal.reporter_id, appeal.origin_platform)
        if identity is None:
            return
        external_id = str(identity[0])
        if appeal.origin_chat_type != ChatType.PRIVATE.value and not await records.has_private_chat(
            appeal.origin_platform, external_id
        ):
            return
        text = self.words.get(
            "incident.merged_private", public_id=appeal.public_id, case=case.public_id, label=incident.label
        )
        reply = Reply(text, chat_id=external_id, recipient_id=external_id)
        queue_notify(
            session,
            case,
            appeal.origin_platform,
            reply,
            f"{case.public_id}:incident:{incident.id}:merged:{appeal.reporter_id}",
            role="supporter",
            person_id=appeal.reporter_id,
        )

    # --- the staff's alert ------------------------------------------------------------------------------
    async def _alert(
        self,
        session: AsyncSession,
        incident: Incident,
        case: Appeal,
        rule: IncidentRule,
        reports: Sequence[Any],
    ) -> None:
        tz = ZoneInfo(self.settings.timezone)
        first = "\n".join(
            self.words.get("incident.alert_quote", text=_quote(r.description))
            for r in reports[:FIRST_MESSAGES]
        )
        text = self.words.get(
            "incident.alert",
            label=incident.label,
            minutes=int(rule.window.total_seconds() // 60),
            reports=incident.reports,
            count=len(incident.buildings),
            buildings=_building_list(incident.buildings),
            since=incident.first_report_at.astimezone(tz).strftime("%H:%M"),
            first=first,
            public_id=case.public_id,
        )
        await self._tell_desk(session, incident, case, text, occasion=f"incident:{incident.id}:alert")

    async def _update(self, session: AsyncSession, incident: Incident, case: Appeal) -> None:
        text = self.words.get(
            "incident.alert_update",
            label=incident.label,
            reports=incident.reports,
            added=incident.reports - incident.alerted_reports,
            count=len(incident.buildings),
            buildings=_building_list(incident.buildings),
            public_id=case.public_id,
        )
        incident.alerted_reports, incident.alerted_at = incident.reports, utcnow()
        occasion = f"incident:{incident.id}:update:{incident.reports}"
        await self._tell_desk(session, incident, case, text, occasion=occasion)

    async def _tell_desk(
        self, session: AsyncSession, incident: Incident, case: Appeal, text: str, *, occasion: str
    ) -> None:
        for chat in await CaseRepository(session).staff_chats(incident.community_id):
            queue_chat_message(session, case, chat, text, occasion=occasion)
        await tell_handler(session, case, case.handler_id, text, occasion=occasion)

    async def _tell_groups(
        self, session: AsyncSession, incident: Incident, case: Appeal, rule: IncidentRule
    ) -> None:
        """One short notice in each residents' group of the community: neighbours need not ask."""
        text = self.words.get("incident.group_opened", label=incident.label, public_id=case.public_id)
        for chat in await IncidentRepository(session).resident_groups(incident.community_id):
            reply = Reply(
                text,
                chat_id=chat.external_id,
                recipient_id=chat.external_id,
                buttons=_join(self.words, rule, case.public_id),
            )
            key = f"{case.public_id}:incident:{incident.id}:opened:{chat.id}"
            queue_notify(session, case, chat.platform, reply, key, role="group", person_id=None, group=True)

    # --- deflection ------------------------------------------------------------------------------------
    async def known(
        self, repo: Repository, ref: ConversationRef, rules: Iterable[IncidentRule]
    ) -> Known | None:
        """The open incident of one of ``rules`` in the resident's community, if there is one."""
        incidents = IncidentRepository(repo.session)
        for rule in rules:
            incident = await incidents.open_incident(ref.community_id, rule.kind)
            if incident is None or incident.case_appeal_id is None:
                continue
            case = await repo.session.get(Appeal, incident.case_appeal_id)
            if case is not None and case.status in _OPEN:
                return Known(incident, case.public_id, rule)
        return None

    def known_text(self, known: Known, *, joined: bool = False) -> str:
        """ "已知悉…": what is known of the incident, for a resident asking about it; ``joined``: they are
        on its case already (no offer to join)."""
        incident = known.incident
        status = (
            mask_personal(incident.restore_text)
            if incident.restore_text
            else self.words.get("incident.no_news")
        ).rstrip("。.！!；;，, ")  # the wording ends the sentence
        return self.words.get(
            "incident.known_joined" if joined else "incident.known",
            label=incident.label,
            reports=incident.reports,
            count=len(incident.buildings),
            status=status,
            public_id=known.case_public_id,
        )

    def join_buttons(self, known: Known) -> tuple[Button, ...]:
        return _join(self.words, known.rule, known.case_public_id)


def _join(words: Responses, rule: IncidentRule, public_id: str) -> tuple[Button, ...]:
    return (Button(words.get("incident.join_button", label=rule.label), f"{JOIN} {public_id}"),)


def _buildings(values: Iterable[str | None]) -> list[str]:
    seen: list[str] = []
    for value in values:
        if value and value not in seen:
            seen.append(value)
    return seen


def _building_list(buildings: Sequence[str], most: int = 8) -> str:
    shown = "、".join(f"{b}栋" for b in buildings[:most])
    return f"{shown}等" if len(buildings) > most else shown


def _quote(description: str) -> str:
    text = mask_personal(description)
    return text if len(text) <= 30 else text[:29] + "…"
