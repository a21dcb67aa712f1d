"""Domain-level reads and writes, one repository per aggregate, over the session of a unit of work.
The core never builds SQL itself.

:class:`Repository` holds the repositories of one unit of work: ``repo.conversations`` (communities,
chats, conversations, dialog state, transcript), ``repo.people`` (people, identities, phones, roles) and
``repo.appeals`` (appeals, their events and outbox rows).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.repository.appeals import AppealRepository
from bot.db.repository.conversations import ConversationRepository
from bot.db.repository.people import PeopleRepository
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


class Repository:
    """The repositories of one unit of work, sharing its session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.conversations = ConversationRepository(session)
        self.people = PeopleRepository(session)
        self.appeals = AppealRepository(session)


__all__ = [
    "CONVERSATION_TABLE",
    "PENDING_TOUCH",
    "PENDING_TRANSCRIPT",
    "PERSON_TABLE",
    "SKIP_PENDING",
    "SKIP_PENDING_OPTION",
    "TRANSCRIPT_TABLE",
    "AppealRepository",
    "ConversationRef",
    "ConversationRepository",
    "FiledAppeal",
    "NewAppeal",
    "PeopleRepository",
    "Repository",
]
