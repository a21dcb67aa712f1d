"""``huiyin admin`` commands for a resident's request made by telephone or at the community office: find
them, show what is held, withdraw an appeal, erase their data — the same operations as the chat
commands (:mod:`bot.privacy.rights`), audited as command-line actions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from bot.admin.common import audit_cli, run

if TYPE_CHECKING:  # the heavy modules load when a command runs, so `huiyin --help` stays quick
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.privacy.rights import PrivacyRights


def _rights() -> PrivacyRights:
    from bot.dialog.spec import load_bundle
    from bot.privacy.rights import PrivacyRights
    from bot.settings import Settings

    return PrivacyRights(Settings(), load_bundle().responses)


async def _person(session: AsyncSession, phone: str | None, public_id: str | None) -> int:
    from bot.db.repository.privacy import PrivacyRepository
    from bot.roles import RoleError

    repo = PrivacyRepository(session)
    if public_id:
        appeal = await repo.appeal_by_public_id(public_id)
        if appeal is None:
            raise RoleError(f"no appeal {public_id}")
        return appeal.reporter_id
    if not phone:
        raise RoleError("give --phone or --appeal")
    people = await repo.person_by_phone(phone.strip())
    if not people:
        raise RoleError("nobody with this phone number")
    if len(people) > 1:
        raise RoleError(f"{len(people)} people gave this number: name one by --appeal HY-…")
    return people[0]


_phone = click.option("--phone", default=None, help="The phone number the resident gave.")
_appeal = click.option("--appeal", "public_id", default=None, help="An appeal the resident filed (HY-…).")


@click.command("resident-data")
@_phone
@_appeal
def resident_data(phone: str | None, public_id: str | None) -> None:
    """Show what is held about a resident (to read out to them, or to send them)."""

    async def work(session: AsyncSession) -> str:
        rights = _rights()
        person_id = await _person(session, phone, public_id)
        held = await rights.held(session, person_id)
        audit_cli(session, "person.export", target_type="person", target_id=person_id, community_id=None)
        return rights.held_text(held)

    click.echo(run(work))


@click.command("withdraw")
@click.argument("public_id")
def withdraw(public_id: str) -> None:
    """Withdraw an appeal at its reporter's request (its handler and the city backend are told)."""

    async def work(session: AsyncSession) -> str:
        from bot.privacy.rights import Finished, Shared
        from bot.roles import RoleError

        person_id = await _person(session, None, public_id)
        try:
            done = await _rights().withdraw(session, person_id, public_id, actor="cli")
        except Finished as finished:
            raise RoleError(f"{public_id} is {finished.appeal.status}: nothing to withdraw") from None
        except Shared as shared:
            raise RoleError(
                f"{public_id} was joined by {shared.appeal.supporters - 1} neighbours: it stays open for them"
            ) from None
        audit_cli(
            session, "appeal.withdraw", target_type="appeal", target_id=done.public_id, community_id=None
        )
        return f"withdrawn: {done.public_id}"

    click.echo(run(work))


@click.command("erase-person")
@_phone
@_appeal
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase_person(phone: str | None, public_id: str | None, yes: bool) -> None:
    """Erase a resident's personal data (phone, names, transcripts; their appeals are anonymised and kept
    for statistics, open ones withdrawn). Cannot be undone."""
    if not yes:
        click.confirm("Erase this resident's personal data? This cannot be undone", abort=True)

    async def work(session: AsyncSession) -> str:
        from bot.db.repository.privacy import PrivacyRepository
        from bot.roles import RoleError
        from bot.settings import Settings
        from bot.state import StateStore

        person_id = await _person(session, phone, public_id)
        if await PrivacyRepository(session).is_staff(person_id):
            raise RoleError("this person is staff or a building leader: revoke their roles first")
        settings = Settings()
        store = StateStore.from_url(settings.redis_url) if settings.redis_url else None
        try:
            erased = await _rights().erase(session, store, person_id, actor="cli")
        finally:
            if store is not None:
                await store.close()
        audit_cli(
            session,
            "person.erase",
            target_type="person",
            target_id=person_id,
            community_id=None,
            appeals=erased.appeals,
            messages=erased.messages,
        )
        return f"erased person {person_id}: {erased.appeals} appeals anonymised, {erased.messages} messages deleted"

    click.echo(run(work))
