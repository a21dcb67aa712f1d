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

The grants, communities and audit log are in :mod:`bot.roles.grants`, the invite codes in
:mod:`bot.roles.invites`; the console accounts and their passwords are here. Every name is importable from
``bot.roles``.
"""

from __future__ import annotations

import re
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Community, Person, Role, StaffAccount
from bot.db.repository.roles import RoleRepository

# The submodules never import from this module (it imports them), so any of them can be imported first.
from bot.roles.grants import (
    RoleError,
    audit,
    community_by_code,
    ensure_community,
    grant,
    grants_of,
    identity_of,
    leader_buildings,
    parse_buildings,
    person_by_identity,
    staff_community_ids,
)
from bot.roles.invites import (
    INVITE_ALPHABET,
    INVITE_LENGTH,
    INVITE_RE,
    Redemption,
    format_invite,
    issue_invite,
    normalize_invite,
    redeem_invite,
    revoke_invite,
)

__all__ = [
    "INVITE_ALPHABET",
    "INVITE_LENGTH",
    "INVITE_RE",
    "MIN_PASSWORD_LENGTH",
    "USERNAME_RE",
    "Redemption",
    "RoleError",
    "account_by_username",
    "account_of_person",
    "audit",
    "community_by_code",
    "create_staff_account",
    "ensure_community",
    "format_invite",
    "grant",
    "grants_of",
    "hash_password",
    "identity_of",
    "issue_invite",
    "leader_buildings",
    "normalize_invite",
    "parse_buildings",
    "person_by_identity",
    "redeem_invite",
    "revoke_invite",
    "staff_community_ids",
    "staff_name",
    "verify_password",
]

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verifying against this keeps a login for an unknown user name as slow as one for a known name."""
    return _hasher.hash(secrets.token_urlsafe(16))


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


# --- staff accounts -------------------------------------------------------------------------------------
async def account_by_username(session: AsyncSession, username: str) -> StaffAccount | None:
    return await RoleRepository(session).account_by_username(username.lower())


async def account_of_person(session: AsyncSession, person_id: int) -> StaffAccount | None:
    return await RoleRepository(session).account_of_person(person_id)


async def create_staff_account(
    session: AsyncSession,
    username: str,
    password: str,
    display_name: str,
    communities: list[Community],
    *,
    handler_login: bool = False,
) -> StaffAccount:
    """A console login for a new staff member who serves ``communities``; with ``handler_login`` a login
    of a handler's person (a property-company clerk…), who serves no community as staff and sees only
    the appeals assigned to their handler."""
    username = username.strip().lower()
    if not USERNAME_RE.match(username):
        raise RoleError("the user name must be 2-64 of a-z 0-9 _ . - (starting with a letter or digit)")
    if not display_name.strip():
        raise RoleError("a display name is needed: it signs the replies residents receive")
    if not communities and not handler_login:
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
