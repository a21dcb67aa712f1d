"""What a resident may ask of huiyin about their own data, whichever way they ask (a chat command, or
staff through ``huiyin admin`` for a request made by telephone):

- **withdraw** an appeal they filed: it becomes 已撤回, its handler, the community's staff chats and
  the city's case backend (for an appeal sent there) are told, supporters hear of it as of any status;
- **see** what is held about them (:meth:`PrivacyRights.held_text`);
- **erase** it: everything personal is removed (:class:`bot.db.repository.privacy.PrivacyRepository`),
  including the dialog states Redis holds, then their open appeals nobody else joined are withdrawn.

Every operation works in the caller's transaction; the caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from bot.appeals.status import change_status, lock_appeal, queue_for_city
from bot.cases.notices import tell_handler, tell_staff
from bot.db.models import OPEN_STATUSES, Appeal, AppealStatus, utcnow
from bot.db.repository.privacy import Erased, HeldData, PrivacyRepository
from bot.dialog.spec import Responses
from bot.settings import Settings
from bot.state import StateStore

log = structlog.get_logger(__name__)

PRIVACY_PATH = "/privacy"


class NotYours(Exception):
    """The appeal does not exist or the person did not file it."""


class Shared(Exception):
    """Neighbours joined the appeal (+1, or an area-wide incident's case): it stays open for them."""

    def __init__(self, appeal: Appeal) -> None:
        super().__init__(appeal.public_id)
        self.appeal = appeal


class Finished(Exception):
    """The appeal is no longer being handled: nothing to withdraw."""

    def __init__(self, appeal: Appeal) -> None:
        super().__init__(appeal.public_id)
        self.appeal = appeal


@dataclass(frozen=True, slots=True)
class Withdrawn:
    public_id: str


class PrivacyRights:
    def __init__(self, settings: Settings, words: Responses) -> None:
        self.settings = settings
        self.words = words
        self.tz = ZoneInfo(settings.timezone)

    def notice(self) -> str:
        """The short notice a resident reads at their first private contact."""
        return self.words.get(
            "privacy.notice",
            retention_days=self.settings.retention_days,
            privacy_url=self.settings.link(PRIVACY_PATH),
        )

    async def withdraw(
        self, session: AsyncSession, person_id: int, public_id: str, *, actor: str | None = None
    ) -> Withdrawn:
        """Withdraw appeal ``public_id`` filed (or relayed) by ``person_id``; raises :class:`NotYours`,
        :class:`Finished` or :class:`Shared`. ``actor``: who did it (default: the resident)."""
        found = await PrivacyRepository(session).appeal_of(person_id, public_id)
        if found is None:
            raise NotYours(public_id)
        appeal = await lock_appeal(session, found.id)
        assert appeal is not None
        if AppealStatus(appeal.status) not in OPEN_STATUSES:
            raise Finished(appeal)
        if appeal.supporters > 1:
            raise Shared(appeal)
        await self._withdraw(session, appeal, actor or f"resident:{person_id}", notify_except=(person_id,))
        return Withdrawn(appeal.public_id)

    async def open_appeals(self, session: AsyncSession, person_id: int) -> list[Appeal]:
        return await PrivacyRepository(session).open_appeals_of(person_id, [s.value for s in OPEN_STATUSES])

    async def held(self, session: AsyncSession, person_id: int) -> HeldData | None:
        return await PrivacyRepository(session).held(person_id)

    def held_text(self, held: HeldData | None) -> str:
        """``我的信息``: what is held, in the resident's private chat (their own data, unmasked)."""
        w = self.words
        if held is None or (not held.phone and not held.appeals and not held.messages):
            return w.get("privacy.held_none")
        phone = held.phone or w.get("privacy.no_phone")
        if held.phone and held.consent_at is not None:
            phone += w.get(
                "privacy.consent_line", date=held.consent_at.astimezone(self.tz).strftime("%Y-%m-%d")
            )
        items = []
        for a in held.appeals:
            key = "privacy.held_appeal" if a.reporter else "privacy.held_supported"
            items.append(
                w.get(
                    key,
                    public_id=a.public_id,
                    status=AppealStatus(a.status).label,
                    date=a.created_at.astimezone(self.tz).strftime("%Y-%m-%d"),
                    summary=a.description if len(a.description) <= 30 else f"{a.description[:30]}…",
                )
            )
        return w.get(
            "privacy.held",
            names="、".join(held.names) or w.get("privacy.no_phone"),
            phone=phone,
            messages=held.messages,
            appeals="".join(items) or w.get("privacy.no_appeals"),
            retention_days=self.settings.retention_days,
        )

    async def erase(
        self, session: AsyncSession, store: StateStore | None, person_id: int, *, actor: str | None = None
    ) -> Erased:
        """Erase ``person_id``'s personal data, then withdraw their open appeals nobody else joined (their
        handlers told). ``store``: Redis, whose copies of their dialog states go too (after the caller
        commits, a turn may not write them again: the caller holds the conversation lock or the person
        is not chatting)."""
        now = utcnow()
        still_open = [a.id for a in await self.open_appeals(session, person_id)]
        erased = await PrivacyRepository(session).erase(person_id, now)
        # Withdrawn once anonymised: the handler, the staff chat, the city and the neighbours who joined
        # hear of it without a word of what the resident wrote.
        for appeal_id in still_open:
            appeal = await lock_appeal(session, appeal_id)
            # One that neighbours joined stays open for them, without the resident's data.
            if appeal is not None and appeal.supporters <= 1:
                who = actor or f"resident:{person_id}"
                await self._withdraw(session, appeal, who, notify_except=(person_id,))
        if store is not None and erased.conversation_keys:
            await store.forget_dialogs(erased.conversation_keys)
        log.info(
            "personal data erased",
            person_id=person_id,
            appeals=erased.appeals,
            conversations=erased.conversations,
            messages=erased.messages,
        )
        return erased

    async def _withdraw(
        self, session: AsyncSession, appeal: Appeal, actor: str, *, notify_except: tuple[int, ...]
    ) -> None:
        w = self.words
        handler_id = appeal.handler_id
        await change_status(
            session,
            appeal,
            AppealStatus.WITHDRAWN,
            note=w.get("privacy.withdrawn_city"),
            actor=actor,
            words=w,
            notify_except=notify_except,
        )
        appeal.withdrawn_at = utcnow()
        told = w.get("privacy.withdrawn_handler", public_id=appeal.public_id)
        await tell_handler(session, appeal, handler_id, told, occasion="withdrawn")
        await tell_staff(session, appeal, told, occasion="withdrawn")
        queue_for_city(
            session,
            appeal,
            "withdrawn",
            f"{appeal.public_id}:withdrawn",
            {"kind": "withdrawn", "text": w.get("privacy.withdrawn_city"), "case_open": False},
        )
        log.info("appeal withdrawn", public_id=appeal.public_id)
