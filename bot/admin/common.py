"""What the ``huiyin admin`` commands share: one committed transaction per command, password input,
look-ups by community code and user name, and the audit entries of command-line actions."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import click

from bot.settings import Settings

if TYPE_CHECKING:  # the heavy modules load when a command runs, so `huiyin --help` stays quick
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.db.models import Community, StaffAccount

T = TypeVar("T")


def run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one committed transaction on the configured database; RoleError → exit 1."""

    from bot.db.session import Database
    from bot.roles import RoleError

    async def go() -> T:
        settings = Settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.effective_database_url)
        try:
            if settings.auto_migrate:
                await db.migrate()
            await db.identify(settings.instance_id)  # a case sent to the city from here carries it
            async with db.unit_of_work() as uow:
                result = await work(uow.session)
                await uow.commit()
                return result
        finally:
            await db.dispose()

    try:
        return asyncio.run(go())
    except RoleError as exc:
        raise click.ClickException(str(exc)) from None


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


async def communities_named(session: AsyncSession, codes: tuple[str, ...]) -> list[Community]:
    from bot.roles import RoleError, community_by_code

    found: list[Community] = []
    for code in codes:
        community = await community_by_code(session, code)
        if community is None:
            raise RoleError(f"no community {code!r} (create it with `huiyin admin add-community {code}`)")
        found.append(community)
    return found


def audit_cli(
    session: AsyncSession,
    action: str,
    *,
    target_type: str,
    target_id: str | int,
    community_id: int | None,
    **detail: object,
) -> None:
    """Audit an action taken with ``huiyin admin``: no acting person, ``{"via": "cli", **detail}``."""
    from bot.roles import audit

    audit(
        session,
        actor_person_id=None,
        action=action,
        target_type=target_type,
        target_id=target_id,
        community_id=community_id,
        detail={"via": "cli", **detail},
    )


def audit_community(session: AsyncSession, action: str, community: Community, **detail: object) -> None:
    """Audit a ``huiyin admin`` action on a community."""
    audit_cli(
        session, action, target_type="community", target_id=community.id, community_id=community.id, **detail
    )


def audit_staff(session: AsyncSession, action: str, account: StaffAccount, community_id: int | None) -> None:
    """Audit a ``huiyin admin`` change to a staff login (in one community, or ``None``: the login itself)."""
    audit_cli(
        session,
        action,
        target_type="staff",
        target_id=account.id,
        community_id=community_id,
        username=account.username,
    )


# ``--community CODE``, repeatable, at least once: the communities a staff command is about.
communities_option = click.option(
    "--community", "communities", multiple=True, required=True, help="Community code (repeatable)."
)


def staff_communities_command(name: str) -> Callable[[Callable[..., None]], click.Command]:
    """A command on a staff login's USERNAME and one or more ``--community`` codes, in that order."""

    def decorate(command: Callable[..., None]) -> click.Command:
        return click.command(name)(click.argument("username")(communities_option(command)))

    return decorate


async def account_named(session: AsyncSession, username: str) -> StaffAccount:
    from bot.roles import RoleError, account_by_username

    account = await account_by_username(session, username)
    if account is None:
        raise RoleError(f"no staff login {username!r}")
    return account
