"""The appeals aggregate: an appeal with its status events and its outbox rows."""

from __future__ import annotations

import json
from datetime import datetime
from typing import cast

from sqlalchemy import select, text

from bot.db.models import Appeal, AppealEvent, AppealStatus, Counter, OutboxEntry, utcnow
from bot.db.repository.base import RepositoryBase
from bot.db.repository.instance import external_key
from bot.db.repository.records import SKIP_PENDING, ConversationRef, FiledAppeal, NewAppeal

# PostgreSQL: an appeal, its first status event and its outbox row in one statement. The day's counter
# is incremented in the same statement (its row stays locked until the commit, which serializes the
# numbering), unless the dialog's appeal exists already (``draft_key``): then nothing is written and no
# row is returned. (Two processes filing the same dialog at the same instant, which the conversation lock
# prevents, would both pass that check; the loser's ON CONFLICT leaves a gap in the day's numbers and
# nothing else.) Parameters in a SELECT list have no type from the column they go to, hence the casts.
_PG_FILE_APPEAL = text(
    """
    WITH seq AS (
        INSERT INTO counter (name, value)
        SELECT :counter, 1 WHERE NOT EXISTS (SELECT 1 FROM appeal WHERE draft_key = :draft_key)
        ON CONFLICT (name) DO UPDATE SET value = counter.value + 1
        RETURNING value
    ), filed AS (
        INSERT INTO appeal (public_id, draft_key, community_id, reporter_id, relayed_by_id,
            conversation_id, origin_platform, origin_chat, origin_chat_type, description, building, unit,
            room, place, location, photos, contact_phone, category, kb_matter_id, responsible_party,
            responsible_sub, urgent, status, supporters, first_response_due_at, resolution_due_at,
            destination, backend_state, created_at, updated_at)
        SELECT :prefix || lpad(CAST(value AS TEXT), greatest(4, length(CAST(value AS TEXT))), '0'),
            :draft_key, CAST(:community_id AS BIGINT), CAST(:reporter_id AS BIGINT),
            CAST(:relayed_by_id AS BIGINT), CAST(:conversation_id AS BIGINT), :origin_platform,
            :origin_chat, :origin_chat_type, :description, :building, :unit, :room, :place,
            CAST(:location AS JSON), CAST(:photos AS JSON), :contact_phone, :category, :kb_matter_id,
            :responsible_party, :responsible_sub, CAST(:urgent AS BOOLEAN), :status, 1,
            CAST(:first_response_due_at AS TIMESTAMPTZ), CAST(:resolution_due_at AS TIMESTAMPTZ),
            :destination, '{}', CAST(:now AS TIMESTAMPTZ),
            CAST(:now AS TIMESTAMPTZ)
        FROM seq
        ON CONFLICT (draft_key) DO NOTHING
        RETURNING id, public_id
    ), event AS (
        INSERT INTO appeal_event (appeal_id, kind, status_to, note, actor, payload, created_at)
        SELECT id, 'status', :status, :note, :actor, '{}', CAST(:now AS TIMESTAMPTZ) FROM filed
    ), queued AS (
        INSERT INTO outbox (appeal_id, action, idempotency_key, payload, attempts, next_attempt_at,
                            created_at)
        SELECT id, 'create', :key_prefix || public_id || :create_suffix,
               json_build_object('public_id', public_id), 0,
               CAST(:now AS TIMESTAMPTZ), CAST(:now AS TIMESTAMPTZ)
        FROM filed WHERE CAST(:to_city AS BOOLEAN)
    )
    SELECT id, public_id FROM filed
    """
)


class AppealRepository(RepositoryBase):
    """Filing appeals and reading them back."""

    async def next_sequence(self, name: str) -> int:
        """Atomically increment and return a named counter (row-locked on PostgreSQL)."""
        ins = self._insert(Counter).values(name=name, value=1)
        stmt = ins.on_conflict_do_update(
            index_elements=[Counter.name], set_={"value": Counter.value + 1}
        ).returning(Counter.value)
        return cast(int, (await self.session.execute(stmt)).scalar_one())

    async def appeal_by_draft(self, draft_key: str) -> Appeal | None:
        return await self._first(select(Appeal).where(Appeal.draft_key == draft_key))

    async def appeal_by_public_id(self, public_id: str) -> Appeal | None:
        return await self._first(select(Appeal).where(Appeal.public_id == public_id))

    async def create_appeal(
        self,
        new: NewAppeal,
        ref: ConversationRef,
        *,
        public_id_prefix: str,
        day: str,
        first_response_due_at: datetime,
        resolution_due_at: datetime | None = None,
        to_city: bool = False,
        actor: str | None = None,
        note: str = "居民通过回音提交",
    ) -> tuple[FiledAppeal, bool]:
        """Create the appeal, its first status event and, when it goes to the city's case backend
        (``to_city``), the outbox row that files it there; idempotent on ``draft_key``.

        Returns ``(appeal, created)``; ``created`` is False when the dialog's appeal existed already (then
        nothing is written). ``actor`` and ``note`` are the status event's (default: the reporter,
        through huiyin). The caller commits: all three rows land in one transaction, on PostgreSQL in
        one statement with the day's sequence number (see :data:`_PG_FILE_APPEAL`).
        """
        values = {
            "draft_key": new.draft_key,
            "community_id": ref.community_id,
            "reporter_id": ref.person_id,
            "relayed_by_id": new.relayed_by_id,
            "conversation_id": ref.conversation_id,
            "origin_platform": new.origin_platform,
            "origin_chat": new.origin_chat,
            "origin_chat_type": new.origin_chat_type,
            "description": new.description,
            "building": new.building,
            "unit": new.unit,
            "room": new.room,
            "place": new.place,
            "location": new.location,
            "photos": new.photos,
            "contact_phone": new.contact_phone,
            "category": new.category,
            "kb_matter_id": new.kb_matter_id,
            "responsible_party": new.responsible_party,
            "responsible_sub": new.responsible_sub,
            "urgent": new.urgent,
            "status": AppealStatus.SUBMITTED.value,
            "first_response_due_at": first_response_due_at,
            "resolution_due_at": resolution_due_at,
            "destination": "city" if to_city else "community",
        }
        event = {"actor": actor or f"resident:{ref.person_id}", "note": note}
        if self._dialect() == "postgresql":
            now = utcnow()
            params = {
                **values,
                "location": json.dumps(new.location, ensure_ascii=False),
                "photos": json.dumps(new.photos, ensure_ascii=False),
                **event,
                "counter": f"appeal:{day}",
                # The outbox row's idempotency key, as in queue_city_case.
                "key_prefix": external_key(self.session, ""),
                "create_suffix": ":create",
                "prefix": f"{public_id_prefix}-{day}-",
                "now": now,
                "to_city": to_city,
            }
            row = (
                await self.session.execute(_PG_FILE_APPEAL, params, execution_options=SKIP_PENDING)
            ).first()
            if row is not None:
                return FiledAppeal(row.id, row.public_id), True
            existing = await self.appeal_by_draft(new.draft_key)
            assert existing is not None, "an appeal conflicted on its draft key and is not there"
            return FiledAppeal(existing.id, existing.public_id), False
        existing = await self.appeal_by_draft(new.draft_key)
        if existing is not None:
            return FiledAppeal(existing.id, existing.public_id), False
        seq = await self.next_sequence(f"appeal:{day}")
        appeal = Appeal(public_id=f"{public_id_prefix}-{day}-{seq:04d}", **values)
        self.session.add(appeal)
        await self.session.flush()
        self.session.add(
            AppealEvent(appeal_id=appeal.id, kind="status", status_to=AppealStatus.SUBMITTED.value, **event)
        )
        if to_city:
            self.queue_city_case(appeal.id, appeal.public_id)
        return FiledAppeal(appeal.id, appeal.public_id), True

    def queue_city_case(self, appeal_id: int, public_id: str) -> None:
        """The outbox row that files the appeal with the city's case backend; its key (qualified by the
        deployment's instance id, :func:`external_key`) makes a second one fail (or, on PostgreSQL's
        one-statement filing, never be written)."""
        self.session.add(
            OutboxEntry(
                appeal_id=appeal_id,
                action="create",
                idempotency_key=external_key(self.session, f"{public_id}:create"),
                payload={"public_id": public_id},
            )
        )

    async def appeals_of(self, person_id: int, limit: int = 5) -> list[Appeal]:
        rows = await self.session.execute(
            select(Appeal)
            .where((Appeal.reporter_id == person_id) | (Appeal.relayed_by_id == person_id))
            .order_by(Appeal.id.desc())
            .limit(limit)
        )
        return list(rows.scalars())

    async def latest_event(self, appeal_id: int) -> AppealEvent | None:
        return await self._first(
            select(AppealEvent)
            .where(AppealEvent.appeal_id == appeal_id)
            .order_by(AppealEvent.id.desc())
            .limit(1)
        )

    async def latest_filed_in(self, conversation_id: int, reporter_id: int, *, since: datetime) -> str | None:
        """The id of the latest appeal ``reporter_id`` filed in this conversation since ``since``."""
        return cast(
            str | None,
            await self.session.scalar(
                select(Appeal.public_id)
                .where(
                    Appeal.reporter_id == reporter_id,
                    Appeal.conversation_id == conversation_id,
                    Appeal.created_at >= since,
                )
                .order_by(Appeal.id.desc())
                .limit(1)
            ),
        )
