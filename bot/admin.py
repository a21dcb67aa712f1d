"""``huiyin admin``: communities, staff accounts, invite codes, chat bindings.

Run on the server with the same settings as ``huiyin serve`` (it writes to the configured database).
Passwords are read from a hidden prompt, or from standard input with ``--password-stdin`` for scripts;
they are never accepted as a command-line argument (which would land in the shell history).
"""

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


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
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


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


async def _communities(session: AsyncSession, codes: tuple[str, ...]) -> list[Community]:
    from bot.roles import RoleError, community_by_code

    found: list[Community] = []
    for code in codes:
        community = await community_by_code(session, code)
        if community is None:
            raise RoleError(f"no community {code!r} (create it with `huiyin admin add-community {code}`)")
        found.append(community)
    return found


def _audit_cli(
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


def _audit_staff(session: AsyncSession, action: str, account: StaffAccount, community_id: int | None) -> None:
    """Audit a ``huiyin admin`` change to a staff login (in one community, or ``None``: the login itself)."""
    _audit_cli(
        session,
        action,
        target_type="staff",
        target_id=account.id,
        community_id=community_id,
        username=account.username,
    )


# ``--community CODE``, repeatable, at least once: the communities a staff command is about.
_communities_option = click.option(
    "--community", "communities", multiple=True, required=True, help="Community code (repeatable)."
)


@click.group()
def admin() -> None:
    """Roles and onboarding: communities, staff logins, invite codes, staff chats."""


@admin.command("add-community")
@click.argument("code")
@click.option("--name", default=None, help="Display name (default: the knowledge base profile's, else CODE).")
def add_community(code: str, name: str | None) -> None:
    """Create a community (or rename it). CODE matches a profile in kb/communities/ when there is one."""
    if name is None:
        try:
            from kb import load_knowledge_base

            name = load_knowledge_base().community(code).name
        except KeyError:
            name = code

    async def work(session: AsyncSession) -> str:
        from bot.roles import ensure_community

        community = await ensure_community(session, code, name)
        _audit_cli(
            session,
            "community.create",
            target_type="community",
            target_id=community.id,
            community_id=community.id,
            code=code,
        )
        return f"community {community.code}: {community.name}"

    click.echo(_run(work))


@admin.command("add-staff")
@click.argument("username")
@click.option("--name", "display_name", required=True, help="Name that signs replies, e.g. 李娜.")
@_communities_option
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def add_staff(username: str, display_name: str, communities: tuple[str, ...], password_stdin: bool) -> None:
    """Create a console login for a staff member of one or more communities."""
    password = _password(password_stdin)

    async def work(session: AsyncSession) -> str:
        from bot.roles import create_staff_account

        account = await create_staff_account(
            session, username, password, display_name, await _communities(session, communities)
        )
        for community in await _communities(session, communities):
            _audit_staff(session, "staff.create", account, community.id)
        return f"staff {account.username} ({account.display_name}) serves {', '.join(communities)}"

    click.echo(_run(work))


@admin.command("grant-staff")
@click.argument("username")
@_communities_option
def grant_staff(username: str, communities: tuple[str, ...]) -> None:
    """Let an existing staff member also serve other communities."""

    async def work(session: AsyncSession) -> str:
        from bot.db.models import Role
        from bot.roles import grant

        account = await _account(session, username)
        for community in await _communities(session, communities):
            await grant(session, account.person_id, community.id, Role.STAFF)
            _audit_staff(session, "staff.grant", account, community.id)
        return f"staff {account.username} now also serves {', '.join(communities)}"

    click.echo(_run(work))


@admin.command("revoke-staff")
@click.argument("username")
@_communities_option
def revoke_staff(username: str, communities: tuple[str, ...]) -> None:
    """Take communities away from a staff member. Their console shows only what is left from their next
    request on; with nothing left their open sessions end (at once when the server uses REDIS_URL)."""

    async def work(session: AsyncSession) -> tuple[str, int, bool]:
        from sqlalchemy import select

        from bot.db.models import Role, RoleGrant
        from bot.roles import staff_community_ids

        account = await _account(session, username)
        for community in await _communities(session, communities):
            grants = await session.execute(
                select(RoleGrant).where(
                    RoleGrant.person_id == account.person_id,
                    RoleGrant.community_id == community.id,
                    RoleGrant.role == Role.STAFF.value,
                )
            )
            for row in grants.scalars():
                await session.delete(row)
            _audit_staff(session, "staff.revoke", account, community.id)
        await session.flush()
        left = bool(await staff_community_ids(session, account.person_id))
        return f"staff {account.username} no longer serves {', '.join(communities)}", account.id, left

    message, account_id, left = _run(work)
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


@admin.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def set_password(username: str, password_stdin: bool) -> None:
    """Set a staff member's console password."""
    password = _password(password_stdin)

    async def work(session: AsyncSession) -> str:
        from bot.roles import hash_password

        account = await _account(session, username)
        account.password_hash = hash_password(password)
        _audit_staff(session, "staff.set_password", account, None)
        return f"password of {account.username} changed"

    click.echo(_run(work))


@admin.command("deactivate")
@click.argument("username")
def deactivate(username: str) -> None:
    """Lock a staff member out of the console at once (open sessions stop working)."""
    click.echo(_run(_set_active(username, False)))


@admin.command("activate")
@click.argument("username")
def activate(username: str) -> None:
    """Let a deactivated staff member log in again."""
    click.echo(_run(_set_active(username, True)))


def _set_active(username: str, active: bool) -> Callable[[AsyncSession], Awaitable[str]]:
    async def work(session: AsyncSession) -> str:
        account = await _account(session, username)
        account.active = active
        _audit_staff(session, "staff.activate" if active else "staff.deactivate", account, None)
        return f"{account.username} {'activated' if active else 'deactivated'}"

    return work


@admin.command("invite")
@click.option("--community", "community_code", required=True, help="Community code.")
@click.option(
    "--role", type=click.Choice(["staff", "building_leader"]), required=True, help="The role the code grants."
)
@click.option("--building", "buildings", multiple=True, help="Building a leader looks after (repeatable).")
@click.option("--account", "username", default=None, help="Tie a staff invite to this console login.")
@click.option(
    "--hours", type=int, default=None, help="Valid for this many hours (default HUIYIN_INVITE_TTL_HOURS)."
)
def invite(
    community_code: str, role: str, buildings: tuple[str, ...], username: str | None, hours: int | None
) -> None:
    """Issue a one-time invite code, to be sent to the bot in a private chat (/join CODE).

    \b
    huiyin admin invite --community demo --role building_leader --building 3 --building 5
    huiyin admin invite --community demo --role staff --account lina
    """
    from datetime import timedelta

    ttl = timedelta(hours=hours or Settings().invite_ttl_hours)

    async def work(session: AsyncSession) -> str:
        from bot.db.models import Role
        from bot.roles import issue_invite, parse_buildings

        (community,) = await _communities(session, (community_code,))
        account = await _account(session, username) if username else None
        code = await issue_invite(
            session,
            community,
            Role(role),
            ttl=ttl,
            buildings=parse_buildings(buildings),
            account=account,
            created_by="cli",
        )
        _audit_cli(
            session,
            "invite.issue",
            target_type="community",
            target_id=community.id,
            community_id=community.id,
            role=role,
            buildings=list(buildings),
            account=username,
        )
        return code

    code = _run(work)
    click.echo(code)
    click.echo(f"Send it to the bot in a private chat: /join {code}", err=True)


@admin.command("bind-chat")
@click.option("--platform", required=True, help="telegram, wecom, wechat, rest, web …")
@click.option("--chat", "chat_id", required=True, help="The platform's chat id.")
@click.option("--community", "community_code", required=True, help="Community code.")
@click.option("--staff", "as_staff", is_flag=True, help="Make it the community's staff chat.")
@click.option("--title", default="", help="Chat title, if the bot has not seen the chat yet.")
def bind_chat(platform: str, chat_id: str, community_code: str, as_staff: bool, title: str) -> None:
    """Bind a group chat to a community (a building group, or with --staff the staff group).

    Running servers see the new binding within a minute (they cache a chat's community that long).
    """

    async def work(session: AsyncSession) -> str:
        from sqlalchemy import select, update

        from bot.db.models import Chat, Conversation
        from bot.handoff.notices import STAFF_CHAT

        (community,) = await _communities(session, (community_code,))
        chat = (
            (
                await session.execute(
                    select(Chat).where(Chat.platform == platform, Chat.external_id == chat_id)
                )
            )
            .scalars()
            .first()
        )
        if chat is None:
            chat = Chat(
                platform=platform,
                external_id=chat_id,
                chat_type="group",
                title=title,
                community_id=community.id,
                listen=False,
            )
            session.add(chat)
            await session.flush()
        chat.community_id = community.id
        chat.purpose = STAFF_CHAT if as_staff else "residents"
        await session.execute(
            update(Conversation).where(Conversation.chat_id == chat.id).values(community_id=community.id)
        )
        _audit_cli(
            session,
            "chat.bind_staff" if as_staff else "chat.bind",
            target_type="chat",
            target_id=chat.id,
            community_id=community.id,
            platform=platform,
            chat=chat_id,
        )
        return f"{platform}:{chat_id} → {community.code}{' (staff chat)' if as_staff else ''}"

    click.echo(_run(work))


@admin.command("list")
def list_all() -> None:
    """Communities, staff logins and the roles people hold."""

    async def work(session: AsyncSession) -> list[str]:
        from sqlalchemy import select

        from bot.db.models import Community, Person, Role, RoleGrant, StaffAccount

        lines: list[str] = []
        communities = {
            c.id: c for c in (await session.execute(select(Community).order_by(Community.id))).scalars()
        }
        lines.append("communities:")
        lines += [f"  {c.code}  {c.name}" for c in communities.values()]
        lines.append("staff logins:")
        for account in (await session.execute(select(StaffAccount).order_by(StaffAccount.id))).scalars():
            serves = (
                await session.execute(
                    select(RoleGrant.community_id).where(
                        RoleGrant.person_id == account.person_id, RoleGrant.role == Role.STAFF.value
                    )
                )
            ).scalars()
            codes = ", ".join(communities[c].code for c in serves if c in communities)
            state = "" if account.active else "  (deactivated)"
            lines.append(f"  {account.username}  {account.display_name}  [{codes}]{state}")
        lines.append("roles:")
        rows = await session.execute(
            select(RoleGrant, Person).join(Person, Person.id == RoleGrant.person_id).order_by(RoleGrant.id)
        )
        for role_grant, person in rows.all():
            community = communities.get(role_grant.community_id)
            buildings = (
                f" buildings {','.join(map(str, role_grant.buildings))}" if role_grant.buildings else ""
            )
            lines.append(
                f"  {person.display_name or person.id}  {role_grant.role}  "
                f"{community.code if community else role_grant.community_id}{buildings}"
            )
        return lines

    for line in _run(work):
        click.echo(line)


async def _account(session: AsyncSession, username: str) -> StaffAccount:
    from bot.roles import RoleError, account_by_username

    account = await account_by_username(session, username)
    if account is None:
        raise RoleError(f"no staff login {username!r}")
    return account
