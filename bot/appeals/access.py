"""Who may look up an appeal by its id on a resident's behalf.

Appeal ids are sequential (``HY-20261122-0001``, ``…-0002``), so anyone can guess them. A resident's
command that names an appeal (``/rate``, ``/support``, ``/status``) therefore finds it only when the
resident is connected to it: they reported it, the building leader relayed it, or they joined it as a
supporter. Everyone else learns nothing, not even whether the id exists: callers answer "not found" and
"not yours" with the same words. Staff paths scope by community instead (``bot/staff/queries/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Appeal
from bot.db.repository.appeal_records import AppealRecords
from bot.db.repository.appeals import AppealRepository

PUBLIC_ID_CHARS = 32  # the column's width: a longer "id" cannot exist, and is not looked up


class Role(StrEnum):
    """How a resident is connected to an appeal."""

    REPORTER = "reporter"
    RELAYER = "relayer"  # the building leader who relayed it for a neighbour
    SUPPORTER = "supporter"  # joined it instead of filing the same problem again


@dataclass(frozen=True, slots=True)
class Visible:
    appeal: Appeal
    role: Role


async def visible_appeal(session: AsyncSession, public_id: str, person_id: int) -> Visible | None:
    """The appeal ``public_id`` and how ``person_id`` is connected to it; None when it does not exist or
    they are not connected to it (the two are one answer on purpose)."""
    if not public_id or len(public_id) > PUBLIC_ID_CHARS:
        return None
    appeal = await AppealRepository(session).appeal_by_public_id(public_id)
    if appeal is None:
        return None
    if appeal.reporter_id == person_id:
        return Visible(appeal, Role.REPORTER)
    if appeal.relayed_by_id == person_id:
        return Visible(appeal, Role.RELAYER)
    if await is_supporter(session, appeal.id, person_id):
        return Visible(appeal, Role.SUPPORTER)
    return None


async def is_supporter(session: AsyncSession, appeal_id: int, person_id: int) -> bool:
    """Whether ``person_id`` joined appeal ``appeal_id`` as a supporter."""
    return await AppealRecords(session).is_supporter(appeal_id, person_id)
