"""What every repository shares: its session, and race-safe get-or-insert."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Base

T = TypeVar("T")
M = TypeVar("M", bound=Base)


class RepositoryBase:
    """Reads and writes over one session; the caller's unit of work commits.

    Get-or-create is race-safe across processes: it inserts with ``ON CONFLICT DO NOTHING`` and reads
    back, so two processes meeting the same new resident at once both end with the same row.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _dialect(self) -> str:
        bind = self.session.bind
        return bind.dialect.name if bind is not None else ""

    def _insert(self, model: type[Base]) -> Any:
        return (postgresql.insert if self._dialect() == "postgresql" else sqlite.insert)(model)

    async def _first(self, stmt: Select[T]) -> T | None:
        return (await self.session.execute(stmt)).scalars().first()

    async def _get_or_insert(self, model: type[M], lookup: Select[M], values: dict[str, Any]) -> M:
        found = await self._first(lookup)
        if found is not None:
            return found
        await self.session.execute(self._insert(model).values(**values).on_conflict_do_nothing())
        found = await self._first(lookup)
        assert found is not None, f"{model.__name__} vanished right after insert"
        return found
