"""``huiyin admin`` commands for staff logins: create, grant and revoke communities, passwords, activation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import click

from bot.admin.common import (
    account_named,
    audit_staff,
    communities_named,
    communities_option,
    read_password,
    run,
    staff_communities_command,
)
from bot.settings import Settings

if TYPE_CHECKING:  # the heavy modules load when a command runs, so `huiyin --help` stays quick
    from sqlalchemy.ext.asyncio import AsyncSession


@click.command("add-staff")
@click.argument("username")
@click.option("--name", "display_name", required=True, help="Name that signs replies, e.g. 李娜.")
@communities_option
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def add_staff(username: str, display_name: str, communities: tuple[str, ...], password_stdin: bool) -> None:
    """Create a console login for a staff member of one or more communities."""
    password = read_password(password_stdin)

    async def work(session: AsyncSession) -> str:
        from bot.roles import create_staff_account

        account = await create_staff_account(
            session, username, password, display_name, await communities_named(session, communities)
        )
        for community in await communities_named(session, communities):
            audit_staff(session, "staff.create", account, community.id)
        return f"staff {account.username} ({account.display_name}) serves {', '.join(communities)}"

    click.echo(run(work))


@staff_communities_command("grant-staff")
def grant_staff(username: str, communities: tuple[str, ...]) -> None:
    """Let an existing staff member also serve other communities."""

    async def work(session: AsyncSession) -> str:
        from bot.db.models import Role
        from bot.roles import grant

        account = await account_named(session, username)
        for community in await communities_named(session, communities):
            await grant(session, account.person_id, community.id, Role.STAFF)
            audit_staff(session, "staff.grant", account, community.id)
        return f"staff {account.username} now also serves {', '.join(communities)}"

    click.echo(run(work))


@staff_communities_command("revoke-staff")
def revoke_staff(username: str, communities: tuple[str, ...]) -> None:
    """Take communities away from a staff member. Their console shows only what is left from their next
    request on; with nothing left their open sessions end (at once when the server uses REDIS_URL)."""

    async def work(session: AsyncSession) -> tuple[str, int, bool]:
        from bot.db.repository.admin import AdminRepository
        from bot.roles import staff_community_ids

        account = await account_named(session, username)
        for community in await communities_named(session, communities):
            for row in await AdminRepository(session).staff_grants(account.person_id, community.id):
                await session.delete(row)
            audit_staff(session, "staff.revoke", account, community.id)
        await session.flush()
        left = bool(await staff_community_ids(session, account.person_id))
        return f"staff {account.username} no longer serves {', '.join(communities)}", account.id, left

    message, account_id, left = run(work)
    click.echo(message)
    if not left:
        ended = _end_console_sessions(account_id)
        if ended is not None:
            click.echo(f"{ended} open console session(s) ended")


def _end_console_sessions(account_id: int) -> int | None:
    """End the account's console sessions in the configured Redis, after the revocation committed (a
    request in between re-reads the database and is refused anyway). None with the embedded in-process
    Redis, which only the server itself can reach: there the session ends on its next request."""
    url = Settings().redis_url
    if not url:
        return None

    async def go() -> int:
        from bot.staff.auth import end_sessions_of
        from bot.state import connect

        redis = connect(url)  # one server, or a cluster (redis+cluster://)
        try:
            return await end_sessions_of(redis, account_id)
        finally:
            await redis.aclose()

    return asyncio.run(go())


@click.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def set_password(username: str, password_stdin: bool) -> None:
    """Set a staff member's console password."""
    password = read_password(password_stdin)

    async def work(session: AsyncSession) -> str:
        from bot.roles import hash_password

        account = await account_named(session, username)
        account.password_hash = hash_password(password)
        audit_staff(session, "staff.set_password", account, None)
        return f"password of {account.username} changed"

    click.echo(run(work))


@click.command("deactivate")
@click.argument("username")
def deactivate(username: str) -> None:
    """Lock a staff member out of the console at once (open sessions stop working)."""
    click.echo(run(_set_active(username, False)))


@click.command("activate")
@click.argument("username")
def activate(username: str) -> None:
    """Let a deactivated staff member log in again."""
    click.echo(run(_set_active(username, True)))


def _set_active(username: str, active: bool) -> Callable[[AsyncSession], Awaitable[str]]:
    async def work(session: AsyncSession) -> str:
        account = await account_named(session, username)
        account.active = active
        audit_staff(session, "staff.activate" if active else "staff.deactivate", account, None)
        return f"{account.username} {'activated' if active else 'deactivated'}"

    return work
