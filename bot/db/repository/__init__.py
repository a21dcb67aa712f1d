"""Domain-level reads and writes, one repository per aggregate, over the session of a unit of work.
The core never builds SQL itself.

:class:`Repository` holds the repositories of one unit of work: ``repo.conversations`` (communities,
chats, conversations, dialog state, transcript), ``repo.people`` (people, identities, phones, roles) and
``repo.appeals`` (filing appeals, reading them back), and, made when first used, ``repo.appeal_records``
(status changes, flags, supporters, duplicates), ``repo.handoffs`` and ``repo.handoff_reads`` (the staff
desk), ``repo.incidents`` (area-wide incidents), ``repo.announcements`` (staff's notices to groups), ``repo.roles`` (grants, accounts, invites), ``repo.outbox`` (the forwarder's rows),
``repo.privacy`` (a person's data: shown, erased), ``repo.console`` and ``repo.admin`` (the console's and ``huiyin admin``'s writes). The console's read
models are in :mod:`bot.staff.queries`.
"""

from __future__ import annotations

from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.repository.admin import AdminRepository
from bot.db.repository.announcements import AnnouncementRepository
from bot.db.repository.appeal_records import AppealRecords
from bot.db.repository.appeals import AppealRepository
from bot.db.repository.cases import CaseRepository
from bot.db.repository.console import ConsoleRepository
from bot.db.repository.conversation_records import ConversationRecords
from bot.db.repository.conversations import ConversationRepository
from bot.db.repository.handoffs import HandoffRepository
from bot.db.repository.incidents import IncidentRepository
from bot.db.repository.outbox import OutboxRepository
from bot.db.repository.people import PeopleRepository
from bot.db.repository.privacy import PrivacyRepository
from bot.db.repository.records import (
    CONVERSATION_TABLE,
    PENDING_TOUCH,
    PENDING_TRANSCRIPT,
    PERSON_TABLE,
    SKIP_PENDING,
    SKIP_PENDING_OPTION,
    TRANSCRIPT_TABLE,
    ConversationRef,
    FiledAppeal,
    NewAppeal,
)
from bot.db.repository.roles import RoleRepository


class Repository:
    """The repositories of one unit of work, sharing its session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.conversations = ConversationRepository(session)
        self.people = PeopleRepository(session)
        self.appeals = AppealRepository(session)

    # The rest are made when first used: a turn needs the three above.
    @cached_property
    def appeal_records(self) -> AppealRecords:
        return AppealRecords(self.session)

    @cached_property
    def handoffs(self) -> HandoffRepository:
        return HandoffRepository(self.session)

    @cached_property
    def handoff_reads(self) -> ConversationRecords:
        return ConversationRecords(self.session)

    @cached_property
    def cases(self) -> CaseRepository:
        return CaseRepository(self.session)

    @cached_property
    def announcements(self) -> AnnouncementRepository:
        return AnnouncementRepository(self.session)

    @cached_property
    def incidents(self) -> IncidentRepository:
        return IncidentRepository(self.session)

    @cached_property
    def roles(self) -> RoleRepository:
        return RoleRepository(self.session)

    @cached_property
    def outbox(self) -> OutboxRepository:
        return OutboxRepository(self.session)

    @cached_property
    def console(self) -> ConsoleRepository:
        return ConsoleRepository(self.session)

    @cached_property
    def privacy(self) -> PrivacyRepository:
        return PrivacyRepository(self.session)

    @cached_property
    def admin(self) -> AdminRepository:
        return AdminRepository(self.session)


__all__ = [
    "CONVERSATION_TABLE",
    "PENDING_TOUCH",
    "PENDING_TRANSCRIPT",
    "PERSON_TABLE",
    "SKIP_PENDING",
    "SKIP_PENDING_OPTION",
    "TRANSCRIPT_TABLE",
    "AdminRepository",
    "AnnouncementRepository",
    "AppealRecords",
    "AppealRepository",
    "ConsoleRepository",
    "ConversationRecords",
    "ConversationRef",
    "ConversationRepository",
    "FiledAppeal",
    "HandoffRepository",
    "IncidentRepository",
    "NewAppeal",
    "OutboxRepository",
    "PeopleRepository",
    "Repository",
    "RoleRepository",
]
