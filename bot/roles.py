"""Roles per community, staff console accounts, invite codes, and the audit log.

Who may do what is decided here and nowhere else:

- a **staff** member of a community (a ``role_grant`` with role ``staff``) sees and acts on that
  community's conversations and appeals, in the console and in chat;
- a **building leader** (role ``building_leader`` with a list of buildings) relays appeals for neighbours
  in those buildings and sees those buildings' appeals;
- everyone else is a resident and sees only their own appeals.

Staff log into the console with a user name and password (``huiyin admin add-staff``; only an argon2id
hash is stored). Anyone becomes staff or building leader by redeeming a one-time invite code in a private
chat with the bot; a staff invite tied to a console account links the chat identity to that account, so
the same person acts in the console and in chat.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    AuditEntry,
    Community,
    InviteCode,
    Person,
    PlatformIdentity,
    Role,
    RoleGrant,
    StaffAccount,
    utcnow,
)

# Invite codes: 8 characters from an alphabet without look-alikes (0/O, 1/I/L), shown as ABCD-EFGH.
INVITE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
INVITE_LENGTH = 8
INVITE_RE = re.compile(r"(?<![A-Z0-9])([A-HJ-NP-Z2-9]{4})[-\s]?([A-HJ-NP-Z2-9]{4})(?![A-Z0-9])")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verifying against this keeps a login for an unknown user name as slow as one for a known name."""
    return _hasher.hash(secrets.token_urlsafe(16))


class RoleError(ValueError):
    """A role, account or invite operation was refused; the message says why (shown to the operator)."""


# --- passwords ------------------------------------------------------------------------------------------
def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise RoleError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; constant work whether or not the account exists."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


# --- communities and people -----------------------------------------------------------------------------
async def community_by_code(session: AsyncSession, code: str) -> Community | None:
    return (await session.execute(select(Community).where(Community.code == code))).scalars().first()


async def ensure_community(session: AsyncSession, code: str, name: str | None = None) -> Community:
    community = await community_by_code(session, code)
    if community is None:
        community = Community(code=code, name=name or code)
        session.add(community)
        await session.flush()
    elif name and community.name != name:
        community.name = name
    return community


async def person_by_identity(session: AsyncSession, platform: str, external_id: str) -> Person | None:
    """The person behind a platform identity *now* (a redeemed staff invite may have moved it)."""
    identity = (
        (
            await session.execute(
                select(PlatformIdentity).where(
                    PlatformIdentity.platform == platform, PlatformIdentity.external_id == external_id
                )
            )
        )
        .scalars()
        .first()
    )
    return None if identity is None else await session.get(Person, identity.person_id)


async def grants_of(session: AsyncSession, person_id: int) -> list[RoleGrant]:
    rows = await session.execute(
        select(RoleGrant).where(RoleGrant.person_id == person_id).order_by(RoleGrant.id)
    )
    return list(rows.scalars())


async def staff_community_ids(session: AsyncSession, person_id: int) -> list[int]:
    """The communities ``person_id`` serves as staff: the whole scope of everything they may see."""
    rows = await session.execute(
        select(RoleGrant.community_id)
        .where(RoleGrant.person_id == person_id, RoleGrant.role == Role.STAFF.value)
        .order_by(RoleGrant.community_id)
    )
    return list(rows.scalars())


async def leader_buildings(session: AsyncSession, person_id: int) -> dict[int, list[str]]:
    """Community id → the buildings ``person_id`` looks after as building leader."""
    rows = await session.execute(
        select(RoleGrant).where(
            RoleGrant.person_id == person_id, RoleGrant.role == Role.BUILDING_LEADER.value
        )
    )
    return {g.community_id: [str(b) for b in g.buildings or []] for g in rows.scalars()}


async def grant(
    session: AsyncSession, person_id: int, community_id: int, role: Role, buildings: list[str] | None = None
) -> RoleGrant:
    """Give ``person_id`` a role in a community; a leader's buildings add to those already held."""
    existing = (
        (
            await session.execute(
                select(RoleGrant).where(
                    RoleGrant.person_id == person_id,
                    RoleGrant.community_id == community_id,
                    RoleGrant.role == role.value,
                )
            )
        )
        .scalars()
        .first()
    )
    wanted = [str(b) for b in buildings or []]
    if existing is not None:
        merged = list(dict.fromkeys([*(str(b) for b in existing.buildings or []), *wanted]))
        existing.buildings = merged
        return existing
    row = RoleGrant(person_id=person_id, community_id=community_id, role=role.value, buildings=wanted)
    session.add(row)
    await session.flush()
    return row


# --- staff accounts -------------------------------------------------------------------------------------
async def account_by_username(session: AsyncSession, username: str) -> StaffAccount | None:
    return (
        (await session.execute(select(StaffAccount).where(StaffAccount.username == username.lower())))
        .scalars()
        .first()
    )


async def account_of_person(session: AsyncSession, person_id: int) -> StaffAccount | None:
    return (
        (await session.execute(select(StaffAccount).where(StaffAccount.person_id == person_id)))
        .scalars()
        .first()
    )


async def create_staff_account(
    session: AsyncSession, username: str, password: str, display_name: str, communities: list[Community]
) -> StaffAccount:
    """A console login for a new staff member who serves ``communities``."""
    username = username.strip().lower()
    if not USERNAME_RE.match(username):
        raise RoleError("the user name must be 2-64 of a-z 0-9 _ . - (starting with a letter or digit)")
    if not display_name.strip():
        raise RoleError("a display name is needed: it signs the replies residents receive")
    if not communities:
        raise RoleError("a staff member serves at least one community")
    if await account_by_username(session, username) is not None:
        raise RoleError(f"the user name {username!r} is taken")
    person = Person(display_name=display_name.strip())
    session.add(person)
    await session.flush()
    account = StaffAccount(
        person_id=person.id,
        username=username,
        password_hash=hash_password(password),
        display_name=display_name.strip(),
        active=True,
    )
    session.add(account)
    for community in communities:
        await grant(session, person.id, community.id, Role.STAFF)
    await session.flush()
    return account


async def staff_name(session: AsyncSession, person_id: int) -> str:
    """The name that signs a staff member's replies: the account's display name, else the person's."""
    account = await account_of_person(session, person_id)
    if account is not None:
        return account.display_name
    person = await session.get(Person, person_id)
    return (person.display_name if person else "") or "工作人员"


# --- invite codes ---------------------------------------------------------------------------------------
def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalize_invite(text: str) -> str | None:
    """The invite code in ``text`` ("abcd-efgh", "ABCD EFGH", "ABCDEFGH"), upper-cased, or None."""
    match = INVITE_RE.search(text.upper())
    return f"{match.group(1)}{match.group(2)}" if match else None


def format_invite(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


async def issue_invite(
    session: AsyncSession,
    community: Community,
    role: Role,
    *,
    ttl: timedelta,
    buildings: list[str] | None = None,
    account: StaffAccount | None = None,
    created_by: str = "cli",
) -> str:
    """Create an invite and return the code (shown once: only its hash is kept)."""
    if role is Role.RESIDENT:
        raise RoleError("invites are for staff and building leaders")
    if role is Role.BUILDING_LEADER and not buildings:
        raise RoleError("a building leader invite names the buildings (e.g. --building 3 --building 5)")
    if account is not None and role is not Role.STAFF:
        raise RoleError("only a staff invite can be tied to a console account")
    code = "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_LENGTH))
    session.add(
        InviteCode(
            code_hash=_code_hash(code),
            community_id=community.id,
            role=role.value,
            buildings=[str(b) for b in buildings or []],
            staff_account_id=account.id if account else None,
            created_by=created_by,
            expires_at=utcnow() + ttl,
        )
    )
    await session.flush()
    return format_invite(code)


@dataclass(frozen=True, slots=True)
class Redemption:
    """What redeeming an invite did. ``person_id`` is who holds the role now (see the module doc)."""

    role: Role
    community: Community
    buildings: tuple[str, ...]
    person_id: int
    account_username: str | None


async def redeem_invite(
    session: AsyncSession, code: str, *, platform: str, external_id: str, display_name: str
) -> Redemption | None:
    """Redeem ``code`` for the chat identity ``platform``/``external_id``. None: unknown, used, expired.

    The caller limits the rate of failed tries; a code is 8 characters from 31, so guessing is hopeless
    at any rate the bot lets through.
    """
    invite = (
        (
            await session.execute(
                select(InviteCode).where(InviteCode.code_hash == _code_hash(code)).with_for_update()
            )
        )
        .scalars()
        .first()
    )
    now = utcnow()
    if (
        invite is None
        or invite.redeemed_at is not None
        or invite.revoked_at is not None
        or invite.expires_at <= now
    ):
        return None
    community = await session.get(Community, invite.community_id)
    assert community is not None
    identity = (
        (
            await session.execute(
                select(PlatformIdentity).where(
                    PlatformIdentity.platform == platform, PlatformIdentity.external_id == external_id
                )
            )
        )
        .scalars()
        .first()
    )
    account = await session.get(StaffAccount, invite.staff_account_id) if invite.staff_account_id else None
    if account is not None:
        # The chat identity joins the console account's person: one staff member, one person.
        if identity is None:
            session.add(
                PlatformIdentity(
                    person_id=account.person_id,
                    platform=platform,
                    external_id=external_id,
                    display_name=display_name,
                )
            )
        else:
            identity.person_id = account.person_id
        person_id = account.person_id
    else:
        if identity is None:
            person = Person(display_name=display_name)
            session.add(person)
            await session.flush()
            session.add(
                PlatformIdentity(
                    person_id=person.id, platform=platform, external_id=external_id, display_name=display_name
                )
            )
            person_id = person.id
        else:
            person_id = identity.person_id
    role = Role(invite.role)
    await grant(session, person_id, community.id, role, [str(b) for b in invite.buildings or []])
    invite.redeemed_at = now
    invite.redeemed_by_id = person_id
    await session.flush()
    return Redemption(
        role=role,
        community=community,
        buildings=tuple(str(b) for b in invite.buildings or []),
        person_id=person_id,
        account_username=account.username if account else None,
    )


async def revoke_invite(session: AsyncSession, code: str) -> bool:
    """Burn a code (e.g. one posted in a group by mistake). True if it was still redeemable."""
    invite = (
        (await session.execute(select(InviteCode).where(InviteCode.code_hash == _code_hash(code))))
        .scalars()
        .first()
    )
    if invite is None or invite.redeemed_at is not None or invite.revoked_at is not None:
        return False
    invite.revoked_at = utcnow()
    return True


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
