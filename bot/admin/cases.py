"""``huiyin admin`` commands for the case desk: a community's handlers (分拨对象), their people, and their
chats."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from bot.admin.common import audit_cli, communities_named, read_password, run

if TYPE_CHECKING:  # the heavy modules load when a command runs, so `huiyin --help` stays quick
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.cases.desk import CaseDesk
    from bot.db.models import Handler

KINDS = ("property", "community", "grid", "department")


def _desk() -> CaseDesk:
    from bot.cases.desk import CaseDesk
    from bot.dialog.spec import load_bundle
    from bot.settings import Settings
    from kb import load_knowledge_base

    return CaseDesk(Settings(), load_knowledge_base(), load_bundle().responses)


async def _handler(session: AsyncSession, community_code: str, code: str) -> Handler:
    from bot.roles import RoleError

    (community,) = await communities_named(session, (community_code,))
    await _desk().handlers(session, community.id)  # the profile's handlers exist from here on
    from bot.db.repository.cases import CaseRepository

    handler = await CaseRepository(session).handler_by_code(community.id, code)
    if handler is None:
        raise RoleError(
            f"no handler {code!r} in {community_code} (see `huiyin admin handlers {community_code}`)"
        )
    return handler


@click.command("handlers")
@click.argument("community_code")
def handlers(community_code: str) -> None:
    """List a community's handlers (those of its profile are created on first use), their people and chats."""

    async def work(session: AsyncSession) -> list[str]:
        from bot.db.repository.cases import CaseRepository

        (community,) = await communities_named(session, (community_code,))
        repo = CaseRepository(session)
        lines = []
        for h in await _desk().handlers(session, community.id):
            people = ", ".join(p.display_name or str(p.id) for p in await repo.members(h.id)) or "-"
            chats = ", ".join(f"{c.platform}:{c.external_id}" for c in await repo.handler_chats(h.id)) or "-"
            contact = "" if h.sees_contact else "  (no resident phone)"
            lines.append(f"{h.code}  {h.kind}  {h.name}  people: {people}  chats: {chats}{contact}")
        return lines

    for line in run(work):
        click.echo(line)


@click.command("add-handler")
@click.argument("community_code")
@click.argument("code")
@click.option("--name", required=True, help="Name staff and residents read, e.g. 第一网格 王网格员.")
@click.option("--kind", type=click.Choice(KINDS), required=True)
@click.option("--phone", default=None)
@click.option("--no-contact", is_flag=True, help="Assignments pushed to it carry no resident phone.")
def add_handler(
    community_code: str, code: str, name: str, kind: str, phone: str | None, no_contact: bool
) -> None:
    """Add a handler to a community (or update the one with this code)."""

    async def work(session: AsyncSession) -> str:
        from bot.db.models import Handler
        from bot.db.repository.cases import CaseRepository
        from bot.roles import RoleError

        if not code.replace("-", "").replace("_", "").isalnum() or not code.isascii() or len(code) > 64:
            raise RoleError("a handler code is lower-case ascii letters, digits, - or _")
        (community,) = await communities_named(session, (community_code,))
        await _desk().handlers(session, community.id)
        repo = CaseRepository(session)
        handler = await repo.handler_by_code(community.id, code.lower())
        if handler is None:
            handler = Handler(community_id=community.id, code=code.lower(), name=name, kind=kind)
            session.add(handler)
        handler.name, handler.kind, handler.phone = name, kind, phone
        handler.sees_contact, handler.active = not no_contact, True
        await session.flush()
        audit_cli(
            session,
            "handler.save",
            target_type="handler",
            target_id=handler.id,
            community_id=community.id,
            code=code,
        )
        return f"handler {handler.code} ({handler.name}) in {community.code}"

    click.echo(run(work))


@click.command("add-handler-member")
@click.argument("community_code")
@click.argument("handler_code")
@click.option("--account", "username", default=None, help="An existing console login.")
@click.option("--new-login", "new_login", default=None, help="Create a console login with this user name.")
@click.option("--name", "display_name", default=None, help="Display name of a new login.")
@click.option("--platform", default=None, help="With --user: a chat identity (telegram, wecom …).")
@click.option("--user", "external_id", default=None, help="The platform's user id.")
@click.option("--password-stdin", is_flag=True, help="Read a new login's password from standard input.")
def add_handler_member(
    community_code: str,
    handler_code: str,
    username: str | None,
    new_login: str | None,
    display_name: str | None,
    platform: str | None,
    external_id: str | None,
    password_stdin: bool,
) -> None:
    """Let a person act for a handler: they see and act on only the appeals assigned to it."""
    password = read_password(password_stdin) if new_login else ""

    async def work(session: AsyncSession) -> str:
        from bot.db.repository.cases import CaseRepository
        from bot.roles import RoleError, account_by_username, create_staff_account, person_by_identity

        handler = await _handler(session, community_code, handler_code)
        if new_login:
            account = await create_staff_account(
                session, new_login, password, display_name or new_login, [], handler_login=True
            )
            person_id = account.person_id
        elif username:
            found = await account_by_username(session, username)
            if found is None:
                raise RoleError(f"no console login {username!r}")
            person_id = found.person_id
        elif platform and external_id:
            person = await person_by_identity(session, platform, external_id)
            if person is None:
                raise RoleError(
                    f"nobody known as {platform}:{external_id} (they must write to the bot first)"
                )
            person_id = person.id
        else:
            raise RoleError("name the person: --account, --new-login, or --platform with --user")
        added = await CaseRepository(session).add_member(handler.id, person_id)
        audit_cli(
            session,
            "handler.member_add",
            target_type="handler",
            target_id=handler.id,
            community_id=handler.community_id,
            person_id=person_id,
        )
        return f"person {person_id} {'now acts' if added else 'already acts'} for {handler.code}"

    click.echo(run(work))
