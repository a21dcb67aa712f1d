"""Filing an appeal: the one way every path that files one — the resident's form, a building leader's
relay, staff — creates it, with its id, its deadlines (the community's case desk), where it goes (the
community's handlers, or the city's case backend where one is configured and the community sends this
kind of appeal there), and its count in the metrics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.appeals.incidents import IncidentDesk
from bot.cases.desk import CaseDesk
from bot.db.repository import ConversationRef, FiledAppeal, NewAppeal, Repository
from bot.metrics import Metrics
from bot.settings import Settings

RESIDENT_NOTE = "居民通过回音提交"


def appeal_from_form(
    *,
    draft_key: str,
    description: str,
    slots: Mapping[str, Any],
    meta: Mapping[str, Any],
    origin: Mapping[str, str],
    place: Mapping[str, Any] | None = None,
) -> NewAppeal:
    """The appeal a form's state describes: its ``slots`` (place, photos, phone), its ``meta`` (the KB's
    category, matter and party, urgency) and where it was reported (``origin``). ``place`` stands in for
    the place slot when the caller found the place elsewhere."""
    where: Mapping[str, Any] = place if place is not None else (slots.get("place") or {})
    return NewAppeal(
        draft_key=draft_key,
        description=description,
        origin_platform=origin["platform"],
        origin_chat=origin["chat_id"],
        origin_chat_type=origin["chat_type"],
        building=where.get("building"),
        unit=where.get("unit"),
        room=where.get("room"),
        place=where.get("place") or where.get("text"),
        location=where.get("location") or {},
        photos=slots.get("photo") or [],
        contact_phone=slots.get("contact"),
        category=meta.get("category"),
        kb_matter_id=meta.get("kb"),
        responsible_party=meta.get("party"),
        responsible_sub=meta.get("party_sub"),
        urgent=bool(meta.get("urgent")),
    )


class AppealFiling:
    def __init__(self, settings: Settings, metrics: Metrics, cases: CaseDesk) -> None:
        self.settings = settings
        self.metrics = metrics
        self.cases = cases
        self.incidents = IncidentDesk(settings, cases.kb, cases.words)
        self._tz = ZoneInfo(settings.timezone)

    async def file(
        self,
        repo: Repository,
        new: NewAppeal,
        ref: ConversationRef,
        *,
        source: str,
        actor: str | None = None,
        note: str = RESIDENT_NOTE,
    ) -> tuple[FiledAppeal, bool]:
        """File ``new`` for the reporter of ``ref``, in the caller's transaction (the caller commits).

        Idempotent on the draft key: ``(appeal, False)`` when this draft was filed already, and then
        nothing is written or counted. ``source`` labels the count (``dialog``, ``relay``); ``actor`` and
        ``note`` are the first status event's (default: the reporter, through huiyin).

        A report of an area-wide incident's kind counts towards it (:mod:`bot.appeals.incidents`): when
        it is merged into the incident's case, the result's ``incident_case`` names the case, and the
        staff chats hear of it through the incident's alert, not as a new appeal.
        """
        now = datetime.now(self._tz)
        config = self.cases.config(ref.community_code)
        to_city = self.cases.has_city(ref.community_code) and config.goes_to_city(
            new.category, new.kb_matter_id
        )
        appeal, created = await repo.appeals.create_appeal(
            new,
            ref,
            public_id_prefix=self.settings.appeal_id_prefix,
            day=now.strftime("%Y%m%d"),
            first_response_due_at=now + timedelta(hours=config.first_response_hours),
            resolution_due_at=now + config.resolution_time(new.category),
            to_city=to_city,
            actor=actor,
            note=note,
        )
        self.metrics.appeal_filed(repo.session, new.origin_platform, source, created=created)
        if not created:
            return appeal, created
        case = await self.incidents.observe(
            repo,
            appeal,
            ref,
            category=new.category,
            matter_id=new.kb_matter_id,
            building=new.building,
        )
        if case is not None:
            return replace(appeal, incident_case=case), created
        await self.cases.announce(repo.session, appeal.id, ref.community_id)
        return appeal, created
