"""The SQL behind the retention period (:mod:`bot.privacy.retention`): finding, in batches, the personal
data kept longer than the period allows, and removing it.

Every write is conditional on the data still being there (``personal_data_removed_at IS NULL``, ``phone IS
NOT NULL``…) and reports what it changed, so that two workers purging at once each remove a row once and
the second finds nothing left. On PostgreSQL the batch is picked ``FOR UPDATE SKIP LOCKED``: a worker
does not wait for the rows another one is purging, it takes the next ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.orm import aliased

from bot.db.models import (
    OPEN_STATUSES,
    Appeal,
    AppealEvent,
    AppealStatus,
    Conversation,
    Handoff,
    HandoffNote,
    HandoffStatus,
    OutboxEntry,
    Person,
    TranscriptMessage,
)
from bot.db.repository.base import RepositoryBase

FINISHED_STATUSES = (
    AppealStatus.RESOLVED,
    AppealStatus.REJECTED,
    AppealStatus.CLOSED,
    AppealStatus.WITHDRAWN,
)
"""An appeal in one of these has nothing left to do: its personal data may go once the period is over."""

_OPEN = [s.value for s in OPEN_STATUSES]
_FINISHED = [s.value for s in FINISHED_STATUSES]


class RetentionRecords(RepositoryBase):
    def __init__(self, session: Any, *, skip_locked: bool = False) -> None:
        super().__init__(session)
        self.skip_locked = skip_locked

    # --- appeals ---------------------------------------------------------------------------------------
    async def finished_appeals(self, cutoff: datetime, limit: int) -> list[tuple[int, list[Any]]]:
        """``(id, photos)`` of up to ``limit`` appeals finished before ``cutoff`` whose personal data is
        still there. An appeal finished when its last status change happened (its withdrawal, its
        resolution…); one without status events (never on a filed appeal) when it was last changed."""
        last_change = (
            select(func.max(AppealEvent.created_at))
            .where(AppealEvent.appeal_id == Appeal.id, AppealEvent.kind == "status")
            .scalar_subquery()
        )
        finished_at = func.coalesce(Appeal.withdrawn_at, last_change, Appeal.updated_at)
        stmt = (
            select(Appeal.id, Appeal.photos)
            .where(
                Appeal.personal_data_removed_at.is_(None),
                Appeal.status.in_(_FINISHED),
                finished_at < cutoff,
            )
            .order_by(Appeal.id)
            .limit(limit)
        )
        return [(int(i), list(p or [])) for i, p in await self.session.execute(self._pick_of(stmt, Appeal))]

    async def remove_appeal_data(self, ids: Sequence[int], now: datetime) -> list[int]:
        """Remove the contact phone, the room and unit, the exact location and the photo references of the
        appeals ``ids`` not purged yet, and mark them purged at ``now``. Returns the ids actually changed
        (another worker may have taken some)."""
        if not ids:
            return []
        rows = await self.session.execute(
            update(Appeal)
            .where(Appeal.id.in_(list(ids)), Appeal.personal_data_removed_at.is_(None))
            .values(
                contact_phone=None,
                room=None,
                unit=None,
                location={},
                photos=[],
                personal_data_removed_at=now,
                updated_at=Appeal.updated_at,  # a purge is not a change to the case: its times stay
            )
            .returning(Appeal.id)
            .execution_options(synchronize_session=False)
        )
        return sorted(int(r[0]) for r in rows)

    async def written_texts(self, appeal_ids: Sequence[int]) -> list[tuple[Any, int, str]]:
        """What people wrote about the appeals ``appeal_ids``, as ``(column, row id, text)``: each appeal's
        description and place, and the notes of its events (staff's progress notes, the resident's
        comment). The caller masks them and writes back the changed ones (:meth:`rewrite`)."""
        if not appeal_ids:
            return []
        ids = list(appeal_ids)
        found: list[tuple[Any, int, str]] = []
        for i, description, place in await self.session.execute(
            select(Appeal.id, Appeal.description, Appeal.place).where(Appeal.id.in_(ids))
        ):
            found.append((Appeal.description, int(i), str(description or "")))
            if place:
                found.append((Appeal.place, int(i), str(place)))
        rows = await self.session.execute(
            select(AppealEvent.id, AppealEvent.note).where(
                AppealEvent.appeal_id.in_(ids), AppealEvent.note != ""
            )
        )
        found.extend((AppealEvent.note, int(i), str(note)) for i, note in rows)
        return found

    async def rewrite(self, column: Any, row_id: int, text: str) -> None:
        """Set ``column`` (one of :meth:`written_texts`') of row ``row_id`` to ``text``; an appeal's times
        stay (a purge is not a change to the case)."""
        table = column.class_
        values: dict[str, Any] = {column.key: text}
        if table is Appeal:
            values["updated_at"] = Appeal.updated_at
        await self.session.execute(
            update(table)
            .where(table.id == row_id)
            .values(values)
            .execution_options(synchronize_session=False)
        )

    async def clear_sent_payloads(self, appeal_ids: Sequence[int]) -> int:
        """Empty the payloads of the appeals' outbox rows that are done with (delivered or given up):
        notifications carry the text sent to the resident. Returns how many rows."""
        if not appeal_ids:
            return 0
        result = await self.session.execute(
            update(OutboxEntry)
            .where(
                OutboxEntry.appeal_id.in_(list(appeal_ids)),
                or_(OutboxEntry.delivered_at.is_not(None), OutboxEntry.failed_at.is_not(None)),
            )
            .values(payload={})
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    # --- conversations -----------------------------------------------------------------------------------
    def _old_conversation(self, cutoff: datetime) -> ColumnElement[bool]:
        """A conversation quiet since before ``cutoff``, with no open appeal and no open handoff. An open
        appeal keeps its conversation and every other conversation of its reporter (a report begun in
        a group goes on in private: the group's transcript has the first words of it)."""
        open_appeal = (
            select(Appeal.id)
            .where(
                or_(Appeal.conversation_id == Conversation.id, Appeal.reporter_id == Conversation.person_id),
                Appeal.status.in_(_OPEN),
            )
            .exists()
        )
        other = aliased(Handoff)  # the caller may be selecting handoffs itself
        open_handoff = (
            select(other.id)
            .where(other.conversation_id == Conversation.id, other.status != HandoffStatus.CLOSED.value)
            .exists()
        )
        return and_(Conversation.last_message_at < cutoff, ~open_appeal, ~open_handoff)

    async def old_transcript(self, cutoff: datetime, limit: int) -> list[int]:
        """Ids of up to ``limit`` transcript messages of old conversations (see :meth:`_old_conversation`)."""
        return await self._of_old_conversations(TranscriptMessage, cutoff, limit)

    async def old_notes(self, cutoff: datetime, limit: int) -> list[int]:
        """Ids of up to ``limit`` staff notes on old conversations."""
        return await self._of_old_conversations(HandoffNote, cutoff, limit)

    async def _of_old_conversations(
        self, model: type[TranscriptMessage] | type[HandoffNote], cutoff: datetime, limit: int
    ) -> list[int]:
        stmt = (
            select(model.id)
            .join(Conversation, Conversation.id == model.conversation_id)
            .where(self._old_conversation(cutoff))
            .order_by(model.id)
            .limit(limit)
        )
        return await self._pick_ids(stmt, model)

    async def delete_rows(
        self, model: type[TranscriptMessage] | type[HandoffNote], ids: Sequence[int]
    ) -> int:
        """Delete the rows ``ids`` of ``model`` (those another worker deleted first are not counted)."""
        if not ids:
            return 0
        result = await self.session.execute(
            delete(model).where(model.id.in_(list(ids))).execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def clear_old_summaries(self, cutoff: datetime, limit: int) -> int:
        """Empty the summaries (what the resident said, for staff) of up to ``limit`` closed handoffs of
        old conversations. Returns how many."""
        stmt = (
            select(Handoff.id)
            .join(Conversation, Conversation.id == Handoff.conversation_id)
            .where(
                self._old_conversation(cutoff),
                Handoff.status == HandoffStatus.CLOSED.value,
                func.coalesce(Handoff.closed_at, Handoff.last_activity_at) < cutoff,
            )
            .order_by(Handoff.id)
            .limit(limit)
        )
        candidates = await self._pick_ids(stmt, Handoff)
        if not candidates:
            return 0
        # A JSON column holds no comparable "empty" on every backend: the candidates are read back and
        # only those still holding a summary are written.
        rows = await self.session.execute(
            select(Handoff.id, Handoff.summary).where(Handoff.id.in_(candidates))
        )
        full = [int(i) for i, s in rows if s]
        if not full:
            return 0
        await self.session.execute(
            update(Handoff)
            .where(Handoff.id.in_(full))
            .values(summary={})
            .execution_options(synchronize_session=False)
        )
        return len(full)

    async def clear_old_dialog_states(self, cutoff: datetime, limit: int) -> int:
        """Drop the durable copy of a dialog left half-finished in an old conversation (it holds the
        form's answers). Returns how many."""
        stmt = (
            select(Conversation.id)
            .where(self._old_conversation(cutoff), Conversation.dialog_state.is_not(None))
            .order_by(Conversation.id)
            .limit(limit)
        )
        ids = await self._pick_ids(stmt, Conversation)
        if not ids:
            return 0
        result = await self.session.execute(
            update(Conversation)
            .where(Conversation.id.in_(ids), Conversation.dialog_state.is_not(None))
            .values(dialog_state=None)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def _pick_of(self, stmt: Any, model: Any) -> Any:
        return stmt.with_for_update(of=model, skip_locked=True) if self.skip_locked else stmt

    async def _pick_ids(self, stmt: Any, model: Any) -> list[int]:
        """The ids ``stmt`` selects, locked for this pass (skipping rows another worker has locked)."""
        return [int(i) for i in (await self.session.execute(self._pick_of(stmt, model))).scalars()]

    # --- people ------------------------------------------------------------------------------------------
    async def remove_idle_phones(self, cutoff: datetime, limit: int) -> int:
        """Forget the saved phone number (and the consent to keep it) of up to ``limit`` people with no
        open appeal and nothing said in any conversation since ``cutoff``. Returns how many."""
        open_appeal = (
            select(Appeal.id)
            .where(
                or_(Appeal.reporter_id == Person.id, Appeal.relayed_by_id == Person.id),
                Appeal.status.in_(_OPEN),
            )
            .exists()
        )
        recent = (
            select(Conversation.id)
            .where(Conversation.person_id == Person.id, Conversation.last_message_at >= cutoff)
            .exists()
        )
        stmt = (
            select(Person.id)
            .where(Person.phone.is_not(None), Person.created_at < cutoff, ~open_appeal, ~recent)
            .order_by(Person.id)
            .limit(limit)
        )
        ids = await self._pick_ids(stmt, Person)
        if not ids:
            return 0
        result = await self.session.execute(
            update(Person)
            .where(Person.id.in_(ids), Person.phone.is_not(None))
            .values(phone=None, consent_at=None)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)
