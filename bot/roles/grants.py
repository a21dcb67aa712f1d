"""Communities, the people behind chat identities, their role grants, and the audit log of staff actions.

Who may do what is decided here (see :mod:`bot.roles`): a staff grant scopes everything a staff member may
see, a building leader's grant lists their buildings.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import AuditEntry, Community, Person, PlatformIdentity, Role, RoleGrant, utcnow
from bot.db.repository.roles import RoleRepository


class RoleError(ValueError):
    """A role, account or invite operation was refused; the message says why (shown to the operator)."""


# --- communities and people -----------------------------------------------------------------------------
async def community_by_code(session: AsyncSession, code: str) -> Community | None:
    return await RoleRepository(session).community_by_code(code)


async def ensure_community(session: AsyncSession, code: str, name: str | None = None) -> Community:
    community = await community_by_code(session, code)
    if community is None:
        community = Community(code=code, name=name or code)
        session.add(community)
        await session.flush()
    elif name and community.name != name:
        community.name = name
    return community


async def identity_of(session: AsyncSession, platform: str, external_id: str) -> PlatformIdentity | None:
    """The row of a chat identity (``platform``/``external_id``), if the bot has seen it."""
    return await RoleRepository(session).identity_of(platform, external_id)


async def person_by_identity(session: AsyncSession, platform: str, external_id: str) -> Person | None:
    """The person behind a platform identity *now* (a redeemed staff invite may have moved it)."""
    identity = await identity_of(session, platform, external_id)
    return None if identity is None else await session.get(Person, identity.person_id)


async def grants_of(session: AsyncSession, person_id: int) -> list[RoleGrant]:
    return await RoleRepository(session).grants_of(person_id)


async def staff_community_ids(session: AsyncSession, person_id: int) -> list[int]:
    """The communities ``person_id`` serves as staff: the whole scope of everything they may see."""
    return await RoleRepository(session).staff_community_ids(person_id)


async def leader_buildings(session: AsyncSession, person_id: int) -> dict[int, list[str]]:
    """Community id → the buildings ``person_id`` looks after as building leader."""
    grants = await RoleRepository(session).leader_grants(person_id)
    return {g.community_id: [str(b) for b in g.buildings or []] for g in grants}


async def grant(
    session: AsyncSession, person_id: int, community_id: int, role: Role, buildings: list[str] | None = None
) -> RoleGrant:
    """Give ``person_id`` a role in a community; a leader's buildings add to those already held."""
    existing = await RoleRepository(session).grant_in(person_id, community_id, role)
    wanted = [str(b) for b in buildings or []]
    if existing is not None:
        merged = list(dict.fromkeys([*(str(b) for b in existing.buildings or []), *wanted]))
        existing.buildings = merged
        return existing
    row = RoleGrant(person_id=person_id, community_id=community_id, role=role.value, buildings=wanted)
    session.add(row)
    await session.flush()
    return row


# --- audit ----------------------------------------------------------------------------------------------
def audit(
    session: AsyncSession,
    *,
    actor_person_id: int | None,
    action: str,
    target_type: str,
    target_id: str | int,
    community_id: int | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record one staff action (who, what, when, on which conversation or appeal), in the caller's
    transaction: the action and its audit entry commit together or not at all."""
    session.add(
        AuditEntry(
            actor_person_id=actor_person_id,
            community_id=community_id,
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            detail=detail or {},
            created_at=utcnow(),
        )
    )


def parse_buildings(values: list[str] | tuple[str, ...]) -> list[str]:
    """ "3栋", "三号楼", "3" → "3": buildings as the entity extractor writes them on appeals."""
    from bot.nlu.base import EntityType
    from bot.nlu.entities import extract_entities
    from bot.nlu.normalize import normalize

    out: list[str] = []
    for raw in values:
        raw = raw.strip()
        if not raw:
            continue
        if raw.isdigit():
            out.append(str(int(raw)))
            continue
        text = normalize(raw if raw[-1] in "栋楼幢座号" else raw + "栋")
        found = [e.value for e in extract_entities(text) if e.type is EntityType.BUILDING]
        if not found:
            raise RoleError(f"not a building: {raw!r}")
        out.append(found[0])
    return list(dict.fromkeys(out))
