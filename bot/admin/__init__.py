"""``huiyin admin``: communities, staff accounts, invite codes, chat bindings, handlers, and residents'
requests about their data made by telephone.

Run on the server with the same settings as ``huiyin serve`` (it writes to the configured database).
Passwords are read from a hidden prompt, or from standard input with ``--password-stdin`` for scripts;
they are never accepted as a command-line argument (which would land in the shell history).
"""

from __future__ import annotations

import click

from bot.admin.cases import add_handler, add_handler_member, handlers
from bot.admin.communities import add_community, bind_chat, invite, list_all
from bot.admin.privacy import erase_person, resident_data, withdraw
from bot.admin.staff import activate, add_staff, deactivate, grant_staff, revoke_staff, set_password


@click.group()
def admin() -> None:
    """Roles and onboarding: communities, staff logins, invite codes, staff chats, handlers; residents'
    data requests (resident-data, withdraw, erase-person)."""


for _command in (
    add_community,
    add_staff,
    grant_staff,
    revoke_staff,
    set_password,
    deactivate,
    activate,
    invite,
    bind_chat,
    list_all,
    handlers,
    add_handler,
    add_handler_member,
    resident_data,
    withdraw,
    erase_person,
):
    admin.add_command(_command)
