"""What the turn's handlers work with, built once per process (:class:`Services`)."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot.appeals.filing import AppealFiling
from bot.appeals.flow import FollowUp
from bot.appeals.incidents import IncidentDesk
from bot.cases.desk import CaseDesk
from bot.dialog.engine import DialogEngine
from bot.dialog.spec import DialogBundle, Responses
from bot.handoff import HandoffDesk, TurnHooks
from bot.metrics import Metrics
from bot.privacy.rights import PrivacyRights
from bot.settings import Settings
from bot.state import StateStore
from kb import KnowledgeBase


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    store: StateStore
    kb: KnowledgeBase
    dialogs: DialogBundle
    engine: DialogEngine
    metrics: Metrics
    desk: HandoffDesk
    hooks: TurnHooks
    follow_up: FollowUp
    filing: AppealFiling
    cases: CaseDesk
    privacy: PrivacyRights
    tz: ZoneInfo

    @property
    def incidents(self) -> IncidentDesk:
        return self.filing.incidents

    @property
    def words(self) -> Responses:
        return self.dialogs.responses

    def community_name(self, code: str) -> str:
        try:
            return self.kb.community(code).name
        except KeyError:
            return code
