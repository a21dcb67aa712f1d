"""One-time invite codes that make a chat identity staff or building leader (see :mod:`bot.roles`).

Only a code's hash is kept; a staff invite tied to a console account links the chat identity to that
account's person, so the same person acts in the console and in chat.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Community, InviteCode, Person, PlatformIdentity, Role, StaffAccount, utcnow
from bot.db.repository.roles import RoleRepository
from bot.roles.grants import RoleError, grant, identity_of

# Invite codes: 8 characters from an alphabet without look-alikes (0/O, 1/I/L), shown as ABCD-EFGH.
INVITE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
INVITE_LENGTH = 8
INVITE_RE = re.compile(r"(?<![A-Z0-9])([A-HJ-NP-Z2-9]{4})[-\s]?([A-HJ-NP-Z2-9]{4})(?![A-Z0-9])")


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
    invite = await RoleRepository(session).invite_by_hash(_code_hash(code), for_update=True)
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
    identity = await identity_of(session, platform, external_id)
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
    invite = await RoleRepository(session).invite_by_hash(_code_hash(code))
    if invite is None or invite.redeemed_at is not None or invite.revoked_at is not None:
        return False
    invite.revoked_at = utcnow()
    return True
