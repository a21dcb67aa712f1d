"""Who may see and act on an appeal at the case desk.

A community's **staff** see and act on every appeal of the community: accept, assign, progress, finish,
return (不予受理). A **handler's person** (a property-company clerk, a grid worker, a department's
contact) sees and acts on only the appeals assigned to their handler, and cannot assign: when an appeal
is not theirs they hand it back (退回) to the community. Anyone else is answered as if the appeal did not
exist, so an appeal id reveals nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Appeal
from bot.db.repository.cases import CaseRepository
from bot.db.repository.roles import RoleRepository


@dataclass(frozen=True, slots=True)
class CaseActor:
    person_id: int
    name: str
    staff_of: frozenset[int]  # community ids
    handler_ids: frozenset[int]
    via: str = "chat"  # chat | console

    def label_for(self, appeal: Appeal) -> str:
        """The actor of an event of ``appeal``: ``staff:<person id>`` for the community's staff,
        ``handler:<person id>`` for a handler's person (the console reads "处理单位 周师傅")."""
        return f"{'staff' if self.is_staff_for(appeal) else 'handler'}:{self.person_id}"

    @property
    def anyone(self) -> bool:
        """Whether this person works at the case desk at all."""
        return bool(self.staff_of or self.handler_ids)

    def is_staff_for(self, appeal: Appeal) -> bool:
        return appeal.community_id in self.staff_of

    def handles(self, appeal: Appeal) -> bool:
        return appeal.handler_id is not None and appeal.handler_id in self.handler_ids

    def may_see(self, appeal: Appeal) -> bool:
        return self.is_staff_for(appeal) or self.handles(appeal)


async def case_actor(session: AsyncSession, person_id: int, name: str, *, via: str) -> CaseActor:
    """The case-desk rights of ``person_id``: the communities they are staff of, the handlers they act for."""
    staff_of = await RoleRepository(session).staff_community_ids(person_id)
    handler_ids = await CaseRepository(session).handler_ids_of(person_id)
    return CaseActor(person_id, name, frozenset(staff_of), frozenset(handler_ids), via)
