"""Identifiers that never collide across deployments: two deployments (two databases) both number their
first appeal of the day HY-YYYYMMDD-0001; what a shared city backend sees — the reference, the
idempotency keys — carries each deployment's instance id, so it opens two cases, not one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from bot.db.models import InstanceSetting, OutboxEntry
from bot.db.session import Database
from bot.settings import Settings
from integrations.backend.forwarder import Forwarder
from tests.backend.conftest import file_appeal, open311_settings, webhook_settings
from tests.backend.test_forwarder import MakeReference, MakeRuntime


def backend_settings(kind: str, port: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    return (
        open311_settings(f"{base}/open311/v2") if kind == "open311" else webhook_settings(f"{base}/webhook")
    )


@pytest.mark.parametrize("kind", ["webhook", "open311"])
async def test_two_deployments_first_appeals_of_a_day_are_two_cases(
    kind: str, make_runtime: MakeRuntime, reference: MakeReference, tmp_path: Path
) -> None:
    server = reference()
    one = await make_runtime(**backend_settings(kind, server.port))
    # The other deployment: its own data folder, its own (embedded) database and Redis.
    other = await make_runtime(
        **backend_settings(kind, server.port),
        data_dir=tmp_path / "other-deployment",
        database_url=None,
        redis_url=None,
    )
    assert one.db.url != other.db.url
    first = await file_appeal(one, "3栋2单元楼道灯坏了", who="a1")
    second = await file_appeal(other, "3栋2单元楼道灯坏了", who="a1")
    assert first == second, "each deployment numbers its own appeals: the public ids are the same"

    for rt in (one, other):
        await Forwarder(rt.db, rt.settings, outbound=rt.outbound).drain(10)
    assert len(server.cases) == 2, "the backend opened two cases"
    keys = [c.key for c in server.calls if c.key]
    assert len(keys) == 2 and keys[0] != keys[1], keys
    assert sorted(keys) == sorted(f"{rt.db.instance_id}:{first}:create" for rt in (one, other))
    assert server.replays == 0, "neither call was answered as a repeat of the other"
    if kind == "webhook":
        references = sorted(c.data["reference"] for c in server.cases.values())
        assert references == sorted(f"{rt.db.instance_id}:{first}" for rt in (one, other))
    else:
        descriptions = [c.data["description"] for c in server.cases.values()]
        assert {rt.db.instance_id for rt in (one, other)} == {
            d.rsplit("实例 ", 1)[1].rstrip("）") for d in descriptions
        }


async def test_a_restart_keeps_the_instance_id(make_runtime: MakeRuntime) -> None:
    rt = await make_runtime()
    chosen = rt.db.instance_id
    assert chosen and len(chosen) == 10
    await rt.close()
    again = await make_runtime()
    assert again.db.instance_id == chosen
    async with again.db.unit_of_work() as uow:
        stored = (await uow.session.execute(select(InstanceSetting))).scalars().all()
    assert [(s.name, s.value) for s in stored] == [("instance_id", chosen)]


async def test_processes_starting_at_once_agree_on_one_id(make_runtime: MakeRuntime) -> None:
    rt = await make_runtime()
    async with rt.db.unit_of_work() as uow:
        await uow.session.execute(InstanceSetting.__table__.delete())
        await uow.commit()
    dbs = [Database(rt.settings.effective_database_url) for _ in range(4)]
    try:
        ids = await asyncio.gather(*(db.identify() for db in dbs))
    finally:
        for db in dbs:
            await db.dispose()
    assert len(set(ids)) == 1, ids


async def test_a_configured_instance_id_wins(make_runtime: MakeRuntime, reference: MakeReference) -> None:
    server = reference()
    rt = await make_runtime(**backend_settings("webhook", server.port), instance_id="city-a-01")
    assert rt.db.instance_id == "city-a-01"
    public_id = await file_appeal(rt, "3栋2单元楼道灯坏了")
    await Forwarder(rt.db, rt.settings, outbound=rt.outbound).drain(10)
    [case] = server.cases.values()
    assert case.data["reference"] == f"city-a-01:{public_id}" and case.data["instance_id"] == "city-a-01"
    assert [c.key for c in server.calls if c.key] == [f"city-a-01:{public_id}:create"]


async def test_an_outbox_row_queued_before_instance_ids_keeps_its_key(
    make_runtime: MakeRuntime, reference: MakeReference
) -> None:
    """A row queued by an older version may have been sent already (then lost its answer): it must be
    sent again with the key it had, or the backend would open the case twice."""
    server = reference()
    rt = await make_runtime(**backend_settings("webhook", server.port))
    public_id = await file_appeal(rt, "3栋2单元楼道灯坏了")
    async with rt.db.unit_of_work() as uow:
        await uow.session.execute(update(OutboxEntry).values(idempotency_key=f"{public_id}:create"))
        await uow.commit()
    await Forwarder(rt.db, rt.settings, outbound=rt.outbound).drain(10)
    assert [c.key for c in server.calls if c.key] == [f"{public_id}:create"]
    assert len(server.cases) == 1


@pytest.mark.parametrize("bad", ["", "has space", "semi:colon", "x" * 33, "中文"])
def test_an_instance_id_is_short_and_plain(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, instance_id=bad)
    assert Settings(data_dir=tmp_path, instance_id="City-A-9").instance_id == "City-A-9"
