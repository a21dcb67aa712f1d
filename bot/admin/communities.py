"""``huiyin admin`` commands for communities and their chats: create, invite codes, chat bindings, list."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from bot.admin.common import account_named, audit_cli, audit_community, communities_named, run
from bot.settings import Settings

if TYPE_CHECKING:  # the heavy modules load when a command runs, so `huiyin --help` stays quick
    from sqlalchemy.ext.asyncio import AsyncSession


@click.command("add-community")
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
        audit_community(session, "community.create", community, code=code)
        return f"community {community.code}: {community.name}"

    click.echo(run(work))


@click.command("invite")
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

        (community,) = await communities_named(session, (community_code,))
        account = await account_named(session, username) if username else None
        code = await issue_invite(
            session,
            community,
            Role(role),
            ttl=ttl,
            buildings=parse_buildings(buildings),
            account=account,
            created_by="cli",
        )
        audit_community(
            session,
            "invite.issue",
            community,
            role=role,
            buildings=list(buildings),
            account=username,
        )
        return code

    code = run(work)
    click.echo(code)
    click.echo(f"Send it to the bot in a private chat: /join {code}", err=True)


@click.command("bind-chat")
@click.option("--platform", required=True, help="telegram, wecom, wechat, rest, web …")
@click.option("--chat", "chat_id", required=True, help="The platform's chat id.")
@click.option("--community", "community_code", required=True, help="Community code.")
@click.option("--staff", "as_staff", is_flag=True, help="Make it the community's staff chat.")
@click.option(
    "--handler", "handler_code", default=None, help="Make it the chat of this handler (see `handlers`)."
)
@click.option("--title", default="", help="Chat title, if the bot has not seen the chat yet.")
def bind_chat(
    platform: str, chat_id: str, community_code: str, as_staff: bool, handler_code: str | None, title: str
) -> None:
    """Bind a group chat to a community (a building group; with --staff the staff group; with --handler
    the chat of a property company, grid worker or department, where its assignments are pushed).

    Running servers see the new binding within a minute (they cache a chat's community that long).
    """

    async def work(session: AsyncSession) -> str:
        from bot.db.models import Chat
        from bot.db.repository.admin import AdminRepository
        from bot.handoff.notices import STAFF_CHAT

        (community,) = await communities_named(session, (community_code,))
        admin = AdminRepository(session)
        chat = await admin.chat(platform, chat_id)
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
        chat.handler_id = None
        suffix = " (staff chat)" if as_staff else ""
        if handler_code and not as_staff:
            from bot.admin.cases import _handler
            from bot.db.repository.cases import HANDLER_CHAT

            handler = await _handler(session, community.code, handler_code)
            chat.purpose, chat.handler_id = HANDLER_CHAT, handler.id
            suffix = f" (chat of {handler.code})"
        await admin.move_conversations(chat.id, community.id)
        audit_cli(
            session,
            "chat.bind_staff" if as_staff else ("chat.bind_handler" if chat.handler_id else "chat.bind"),
            target_type="chat",
            target_id=chat.id,
            community_id=community.id,
            platform=platform,
            chat=chat_id,
        )
        return f"{platform}:{chat_id} → {community.code}{suffix}"

    click.echo(run(work))


@click.command("list")
def list_all() -> None:
    """Communities, staff logins and the roles people hold."""

    async def work(session: AsyncSession) -> list[str]:
        from bot.db.repository.admin import AdminRepository

        admin = AdminRepository(session)
        lines: list[str] = []
        communities = {c.id: c for c in await admin.communities()}
        lines.append("communities:")
        lines += [f"  {c.code}  {c.name}" for c in communities.values()]
        lines.append("staff logins:")
        for account in await admin.staff_accounts():
            serves = await admin.staff_community_ids(account.person_id)
            codes = ", ".join(communities[c].code for c in serves if c in communities)
            state = "" if account.active else "  (deactivated)"
            lines.append(f"  {account.username}  {account.display_name}  [{codes}]{state}")
        lines.append("roles:")
        for role_grant, person in await admin.grants_with_people():
            community = communities.get(role_grant.community_id)
            buildings = (
                f" buildings {','.join(map(str, role_grant.buildings))}" if role_grant.buildings else ""
            )
            lines.append(
                f"  {person.display_name or person.id}  {role_grant.role}  "
                f"{community.code if community else role_grant.community_id}{buildings}"
            )
        return lines

    for line in run(work):
        click.echo(line)
