"""Roles and onboarding: password hashing, staff accounts, invite codes, and `huiyin admin`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.db.models import InviteCode, Role, RoleGrant, StaffAccount, utcnow
from bot.roles import (
    RoleError,
    create_staff_account,
    hash_password,
    issue_invite,
    normalize_invite,
    parse_buildings,
    redeem_invite,
    verify_password,
)
from tests.staff.conftest import World


def test_passwords_are_hashed_with_argon2id() -> None:
    hashed = hash_password("a long enough password")
    assert hashed.startswith("$argon2id$") and "a long enough password" not in hashed
    assert verify_password(hashed, "a long enough password")
    assert not verify_password(hashed, "a long enough passwor")
    assert not verify_password(None, "anything at all")
    assert not verify_password("not a hash", "anything at all")
    with pytest.raises(RoleError):
        hash_password("short")


def test_invite_codes_and_buildings_are_read_leniently() -> None:
    assert normalize_invite("abcd-efgh") == "ABCDEFGH"
    assert normalize_invite("邀请码ABCD EFGH") == "ABCDEFGH"
    assert normalize_invite("ABCD-EFGHJ") is None
    assert parse_buildings(["3", "五号楼", "12栋", "3"]) == ["3", "5", "12"]
    with pytest.raises(RoleError):
        parse_buildings(["东门"])


async def test_staff_account_rules(world: World) -> None:
    async with world.rt.db.unit_of_work() as uow:
        for username, name, communities in (("lina", "李娜2", [world.demo]), ("x", "X", [world.demo]),
                                             ("ok-name", " ", [world.demo]), ("ok-name", "名字", [])):  # fmt: skip
            with pytest.raises(RoleError):
                await create_staff_account(uow.session, username, "a long enough password", name, communities)


async def test_invites_are_single_use_and_expire(world: World) -> None:
    async with world.rt.db.unit_of_work() as uow:
        code = await issue_invite(
            uow.session, world.demo, Role.BUILDING_LEADER, ttl=timedelta(hours=1), buildings=["3"]
        )
        old = await issue_invite(uow.session, world.demo, Role.STAFF, ttl=timedelta(hours=1))
        with pytest.raises(RoleError):
            await issue_invite(uow.session, world.demo, Role.BUILDING_LEADER, ttl=timedelta(hours=1))
        await uow.commit()
    async with world.rt.db.unit_of_work() as uow:
        stored = list((await uow.session.execute(select(InviteCode.code_hash))).scalars())
        assert normalize_invite(code) not in stored  # only hashes are kept
        first = await redeem_invite(
            uow.session, normalize_invite(code) or "", platform="rest", external_id="a", display_name="甲"
        )
        second = await redeem_invite(
            uow.session, normalize_invite(code) or "", platform="rest", external_id="b", display_name="乙"
        )
        assert first is not None and first.role is Role.BUILDING_LEADER and first.buildings == ("3",)
        assert second is None
        await uow.session.execute(update(InviteCode).values(expires_at=utcnow() - timedelta(seconds=1)))
        assert (
            await redeem_invite(
                uow.session, normalize_invite(old) or "", platform="rest", external_id="c", display_name="丙"
            )
            is None
        )
        await uow.commit()


class _Done:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _huiyin(tmp_path: Path, *args: str, stdin: str | None = None) -> _Done:
    """`huiyin admin ...` in this process (click's runner), on a SQLite file of its own."""
    from click.testing import CliRunner

    from bot.cli import main

    env = {"HUIYIN_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": None, "REDIS_URL": None}
    result = CliRunner().invoke(main, ["admin", *args], input=stdin, env=env)
    return _Done(result.exit_code, result.stdout, result.stderr)


def test_huiyin_admin_onboards_a_community(tmp_path: Path) -> None:
    assert _huiyin(tmp_path, "add-community", "demo").returncode == 0
    made = _huiyin(tmp_path, "add-staff", "lina", "--name", "李娜", "--community", "demo", "--password-stdin",
                   stdin="correct horse battery\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    refused = _huiyin(tmp_path, "add-staff", "lina", "--name", "李娜", "--community", "demo", "--password-stdin",
                      stdin="correct horse battery\n")  # fmt: skip
    assert refused.returncode == 1 and "taken" in refused.stderr
    unknown = _huiyin(
        tmp_path,
        "add-staff",
        "wu",
        "--name",
        "吴",
        "--community",
        "nowhere",
        "--password-stdin",
        stdin="x" * 12,
    )
    assert unknown.returncode == 1 and "no community" in unknown.stderr
    invite = _huiyin(
        tmp_path, "invite", "--community", "demo", "--role", "building_leader", "--building", "3"
    )
    assert invite.returncode == 0 and normalize_invite(invite.stdout.strip())
    assert (
        _huiyin(
            tmp_path,
            "bind-chat",
            "--platform",
            "telegram",
            "--chat",
            "-100",
            "--community",
            "demo",
            "--staff",
        ).returncode
        == 0
    )
    assert _huiyin(tmp_path, "deactivate", "lina").returncode == 0
    listing = _huiyin(tmp_path, "list").stdout
    assert "lina  李娜  [demo]  (deactivated)" in listing and "demo" in listing


async def test_a_person_holds_roles_per_community(world: World) -> None:
    async with world.rt.db.unit_of_work() as uow:
        grants = list(
            (await uow.session.execute(select(RoleGrant).where(RoleGrant.role == "staff"))).scalars()
        )
        accounts = {
            a.person_id: a.username for a in (await uow.session.execute(select(StaffAccount))).scalars()
        }
    by_person = {accounts[g.person_id]: g.community_id for g in grants}
    assert by_person == {"lina": world.demo.id, "zhao": world.other.id}
