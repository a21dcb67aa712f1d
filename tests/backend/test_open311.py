"""Open311 GeoReport v2: discovery and service codes, form-encoded filing, ids and tokens, status polling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs

from bot.db.models import AppealEvent, AppealStatus, OutboxEntry
from bot.db.session import Database
from bot.runtime import Runtime
from integrations.backend.base import BackendRejected, BackendUnavailable, CaseRecord, status_from_text
from integrations.backend.forwarder import Forwarder
from integrations.backend.open311 import Open311Backend
from integrations.backend.reference import ReferenceBackend
from integrations.backend.registry import Backends, profile_services
from kb.loader import KB_ROOT
from kb.model import Category, Open311Services
from tests.backend.conftest import appeal, file_appeal, open311_settings, private, run_until
from tests.conftest import make_settings

MakeRuntime = Callable[..., Awaitable[Runtime]]


def client_for(server: ReferenceBackend, **kw: object) -> Open311Backend:
    options: dict[str, object] = {
        "name": "t",
        "url": server.open311_url,
        "api_key": "key-1",
        "jurisdiction": "demo-city",
        "services": Open311Services(),
        "updates": True,
        "timeout_s": 3.0,
        "max_connections": 4,
    }
    options.update(kw)
    return Open311Backend(**options)  # type: ignore[arg-type]


def case(category: str | None = "repairs", **kw: object) -> CaseRecord:
    values: dict[str, object] = {
        "public_id": "HY-20261122-0001",
        "community_code": "demo",
        "community_name": "幸福里社区",
        "description": "3栋2单元楼道灯坏了",
        "address": "幸福里社区 3栋2单元",
        "category": category,
        "kb_matter_id": None,
        "responsible_party": "property",
        "responsible_sub": None,
        "urgent": False,
        "supporters": 1,
        "reporter_name": "王阿姨",
        "contact_phone": "13812345678",
        "latitude": 22.5431,
        "longitude": 114.0579,
        "media_urls": ("http://127.0.0.1/photo.jpg",),
        "created_at": datetime.now(UTC),
        "origin_platform": "rest",
    }
    values.update(kw)
    return CaseRecord(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("open", AppealStatus.ACCEPTED),
        ("OPEN", AppealStatus.ACCEPTED),
        ("in progress", AppealStatus.IN_PROGRESS),
        ("ACTION_SCHEDULED", AppealStatus.IN_PROGRESS),
        ("closed", AppealStatus.RESOLVED),
        ("FIXED", AppealStatus.RESOLVED),
        ("not_responsible", AppealStatus.REJECTED),
        ("made-up", None),
    ],
)
def test_status_words(word: str, status: AppealStatus | None) -> None:
    assert status_from_text(word) is status


MAPPING = Open311Services(
    by_matter={"lift_broken": "003", "fire_lane_blocked": "777"},
    by_category={Category.REPAIRS: "001", Category.SAFETY: "002"},
    default="099",
)


async def test_service_codes_by_matter_then_category_then_the_communitys_default(
    reference: Callable[..., ReferenceBackend],
) -> None:
    server = reference()
    backend = client_for(server, community_services={"demo": MAPPING})
    try:
        code = backend.service_code
        assert await code(case("repairs", kb_matter_id="lift_broken")) == "003", "the matter's code first"
        assert await code(case("repairs", kb_matter_id="corridor_light_broken")) == "001", (
            "then the category's"
        )
        assert await code(case("pets")) == "099", "then the community's default"
        assert await code(case(None)) == "099"
        with capture_logs() as logs:
            chosen = await code(case("safety", kb_matter_id="fire_lane_blocked"))
        assert chosen == "002", "a code the server does not offer is passed over"
        assert any("does not offer" in e["event"] and e["service_code"] == "777" for e in logs), logs
        discovery = [c for c in server.calls if c.path.endswith("services.json")]
        assert len(discovery) == 1, "services.json is cached"
    finally:
        await backend.close()


async def test_only_without_any_mapping_is_the_code_guessed_from_the_names_and_that_is_logged(
    reference: Callable[..., ReferenceBackend],
) -> None:
    server = reference()
    backend = client_for(server, community_services={"laoyuan": MAPPING})
    try:
        with capture_logs() as logs:
            assert await backend.service_code(case("environment")) == "002", "matched by name/keywords"
            assert await backend.service_code(case("pets")) == "001", "nothing matches: the first service"
        guesses = [e for e in logs if "guessed" in e["event"]]
        assert [e["category"] for e in guesses] == ["environment", "pets"], logs
        mapped = await backend.service_code(case("pets", community_code="laoyuan"))
        assert mapped == "099", "another community's mapping is its own"
    finally:
        await backend.close()


async def test_mapped_codes_the_server_does_not_offer_are_reported_at_start(
    reference: Callable[..., ReferenceBackend], tmp_path: Path
) -> None:
    server = reference()
    settings = make_settings(
        tmp_path,
        **open311_settings(server.open311_url, open311_service_codes={"parking": "555"}),
        backend_communities={
            "laoyuan": {"kind": "open311", "services": {"by_category": {"noise": "404"}, "default": "099"}}
        },
    )
    backends = Backends(settings, profiles={"demo": MAPPING})
    forwarder = Forwarder(Database("sqlite+aiosqlite:///:memory:"), settings, backends=backends)
    try:
        stop = asyncio.Event()
        stop.set()  # start, check, stop
        with capture_logs() as logs:
            await forwarder.run(stop)
        problems = [str(e["problem"]) for e in logs if "does not offer" in e["event"]]
        assert len(problems) == 4, problems  # 555 twice (the global backend, laoyuan's), 777, 404
        assert any("'demo'" in p and "by_matter.fire_lane_blocked is '777'" in p for p in problems)
        assert any("laoyuan" in p and "by_category.noise is '404'" in p for p in problems)
        assert any("every community" in p and "by_category.parking is '555'" in p for p in problems)
        server.stop()
        unreachable = Backends(settings, profiles={})
        with capture_logs() as logs:
            assert await Forwarder(forwarder.db, settings, backends=unreachable).check_services() == []
        assert any("not checked" in e["event"] for e in logs), logs
        await unreachable.close()
    finally:
        await backends.close()
        await forwarder.db.dispose()


async def test_the_settings_entry_wins_over_the_profile_and_the_profile_over_the_global_settings(
    reference: Callable[..., ReferenceBackend], tmp_path: Path
) -> None:
    server = reference()
    root = tmp_path / "kb"
    (root / "communities").mkdir(parents=True)
    for code in ("demo", "laoyuan"):
        text = (KB_ROOT / "communities" / f"{code}.yml").read_text(encoding="utf-8")
        text += '\nopen311:\n  services:\n    by_category:\n      repairs: "002"\n      parking: "002"\n'
        (root / "communities" / f"{code}.yml").write_text(text, encoding="utf-8")
    profiles = profile_services(root)
    assert set(profiles) == {"demo", "laoyuan"}
    settings = make_settings(
        tmp_path,
        **open311_settings(
            server.open311_url,
            open311_service_codes={"repairs": "001", "environment": "001"},
            open311_default_service_code="099",
        ),
        backend_communities={"laoyuan": {"kind": "open311", "services": {"by_category": {"parking": "003"}}}},
    )
    backends = Backends(settings, profiles=profiles)
    demo, laoyuan = backends.for_community("demo"), backends.for_community("laoyuan")
    assert isinstance(demo, Open311Backend) and isinstance(laoyuan, Open311Backend)
    try:
        assert await demo.service_code(case("repairs")) == "002", "the profile over the global settings"
        assert await demo.service_code(case("environment")) == "001", "the global settings fill in"
        assert await demo.service_code(case("pets")) == "099"
        on_laoyuan = {"community_code": "laoyuan"}
        assert await laoyuan.service_code(case("parking", **on_laoyuan)) == "003", "the entry wins"
        assert await laoyuan.service_code(case("repairs", **on_laoyuan)) == "002"
        assert await laoyuan.service_code(case("pets", **on_laoyuan)) == "099"
    finally:
        await backends.close()


async def test_filing_is_form_encoded_with_the_api_key_and_honours_the_key(
    reference: Callable[..., ReferenceBackend],
) -> None:
    server = reference()
    backend = client_for(server)
    try:
        filed = await backend.file(case(), "HY-20261122-0001:create")
        again = await backend.file(case(), "HY-20261122-0001:create")
        assert filed.backend_id and again.backend_id == filed.backend_id and server.replays == 1
        [stored] = server.cases.values()
        data = stored.data
        assert data["api_key"] == "key-1" and data["jurisdiction_id"] == "demo-city"
        assert data["service_code"] == "001" and data["address_string"] == "幸福里社区 3栋2单元"
        assert data["phone"] == "13812345678" and data["first_name"] == "王阿姨"
        assert data["lat"] == "22.5431" and data["media_url"] == "http://127.0.0.1/photo.jpg"
        assert "回音编号 HY-20261122-0001" in data["description"]

        server.set_status("HY-20261122-0001", "closed", "已更换灯泡")
        [remote] = await backend.poll([str(filed.backend_id), "no-such-id"])
        assert remote.status is AppealStatus.RESOLVED and remote.notes == "已更换灯泡"
    finally:
        await backend.close()


async def test_errors_are_sorted_into_retry_and_refuse(reference: Callable[..., ReferenceBackend]) -> None:
    server = reference()
    wrong_key = client_for(server, api_key="nope")
    flaky = client_for(server)
    try:
        with pytest.raises(BackendRejected, match="403"):
            await wrong_key.file(case(), "k1")
        server.fail_next(1, 503)
        with pytest.raises(BackendUnavailable, match="503"):
            await flaky.file(case(), "k2")
    finally:
        await wrong_key.close()
        await flaky.close()
    server.stop()
    down = client_for(server)
    try:
        with pytest.raises(BackendUnavailable):
            await down.file(case(), "k3")
    finally:
        await down.close()


async def test_token_answers_then_polled_status_close_the_loop(
    make_runtime: MakeRuntime, reference: Callable[..., ReferenceBackend]
) -> None:
    server = reference(tokens=True, token_polls=2)
    rt = await make_runtime(**open311_settings(server.open311_url))
    public_id = await file_appeal(rt, "7栋3单元楼道灯坏了", who="zhou", name="周阿姨")
    forwarder = Forwarder(rt.db, rt.settings, outbound=rt.outbound)

    async def has_id() -> bool:
        return (await appeal(rt, public_id)).backend_id is not None

    await run_until(forwarder, has_id)
    a = await appeal(rt, public_id)
    assert a.backend_token and a.backend_id == server.case_of(public_id).backend_id

    async def status_is(status: str) -> bool:
        return (await appeal(rt, public_id)).status == status

    await run_until(forwarder, lambda: status_is("accepted"))  # Open311 "open": the city has it
    server.set_status(public_id, "closed", "已更换灯泡")
    await run_until(forwarder, lambda: status_is("resolved"))
    a = await appeal(rt, public_id)
    assert a.next_poll_at is None, "a finished case is no longer polled"
    assert a.backend_state["notes"] == "已更换灯泡"
    # What was polled is a status change like any other: its event, and the reporter's notification.
    async with rt.db.unit_of_work() as uow:
        events = (
            await uow.session.execute(select(AppealEvent).where(AppealEvent.appeal_id == a.id))
        ).scalars()
        changes = [(e.status_to, e.actor, e.note) for e in events if e.kind == "status"]
        told = await uow.session.scalar(
            select(func.count())
            .select_from(OutboxEntry)
            .where(OutboxEntry.appeal_id == a.id, OutboxEntry.action == "notify")
        )
    assert changes[-2:] == [("accepted", "backend", ""), ("resolved", "backend", "已更换灯泡")], changes
    assert told == 2, "the reporter heard of both"

    # 不满意 reopens; the backend hears it through the update extension, and polling resumes.
    replies = await rt.dispatcher.handle(private("不满意", who="zhou", name="周阿姨"))
    assert "重新打开" in replies[0].text
    await run_until(forwarder, lambda: _updated(server))
    [update] = server.updates
    assert update["status"] == "OPEN" and update["update_id"].startswith(
        f"{rt.db.instance_id}:{public_id}:rating:"
    )
    await run_until(forwarder, lambda: status_is("accepted"))  # the city reopened it


async def _updated(server: ReferenceBackend) -> bool:
    return bool(server.updates)


async def test_a_configured_default_beats_a_service_whose_name_happens_to_match(
    reference: Callable[..., ReferenceBackend], tmp_path: Path
) -> None:
    # 消防与安全隐患 shares "消防" with the parking service's keyword 消防通道: picking the first service
    # whose words match files a fire-safety appeal as a parking one, although a default is configured.
    server = reference()
    settings = make_settings(
        tmp_path, **open311_settings(server.open311_url, open311_default_service_code="099")
    )
    backends = Backends(settings)
    backend = backends.for_community("demo")
    assert isinstance(backend, Open311Backend)
    try:
        assert await backend.service_code(case("safety")) == "099"
    finally:
        await backends.close()


async def _resolved_and_rated(
    rt: Runtime, server: ReferenceBackend, forwarder: Forwarder, who: str, name: str
) -> str:
    """An appeal filed, filed with the server, closed there, polled, and rated 满意 with a comment."""
    public_id = await file_appeal(rt, "7栋3单元楼道灯坏了", who=who, name=name)

    async def has_id() -> bool:
        return (await appeal(rt, public_id)).backend_id is not None

    await run_until(forwarder, has_id)
    server.set_status(public_id, "closed", "已更换灯泡")

    async def resolved() -> bool:
        return (await appeal(rt, public_id)).status == AppealStatus.RESOLVED.value

    await run_until(forwarder, resolved)
    await rt.dispatcher.handle(private("满意", who=who, name=name))
    await forwarder.drain(10)
    return public_id


async def _kept_notes(rt: Runtime, public_id: str) -> list[str]:
    a = await appeal(rt, public_id)
    async with rt.db.unit_of_work() as uow:
        events = (
            await uow.session.execute(
                select(AppealEvent).where(AppealEvent.appeal_id == a.id).order_by(AppealEvent.id)
            )
        ).scalars()
        return [e.note for e in events if e.payload.get("reason") == "backend_takes_no_updates"]


async def _update_rows(rt: Runtime) -> list[OutboxEntry]:
    async with rt.db.unit_of_work() as uow:
        rows = await uow.session.execute(
            select(OutboxEntry).where(OutboxEntry.action.in_(["rating", "comment"])).order_by(OutboxEntry.id)
        )
        return list(rows.scalars())


@pytest.mark.parametrize("answer", [404, 405, 501])
async def test_a_server_without_updates_gets_asked_once_and_the_rating_is_kept_here(
    answer: int, make_runtime: MakeRuntime, reference: Callable[..., ReferenceBackend]
) -> None:
    server = reference(updates=False, updates_status=answer)
    rt = await make_runtime(**open311_settings(server.open311_url))
    forwarder = Forwarder(rt.db, rt.settings, outbound=rt.outbound)
    public_id = await _resolved_and_rated(rt, server, forwarder, "zhou", "周阿姨")
    [rating] = await _update_rows(rt)
    assert rating.delivered_at is not None and rating.attempts == 1, "not retried"
    assert "takes no updates" in (rating.last_error or "")
    assert await _kept_notes(rt, public_id) == ["市平台不接收评价回传，已在本系统记录"]
    assert (await appeal(rt, public_id)).flagged_at is None, "nothing for staff to fix"

    # Remembered: the comment that follows is not even tried.
    await rt.dispatcher.handle(private("师傅来得很快，谢谢", who="zhou", name="周阿姨"))
    await forwarder.drain(10)
    [_, comment] = await _update_rows(rt)
    assert comment.delivered_at is not None and comment.attempts == 1
    assert await _kept_notes(rt, public_id) == [
        "市平台不接收评价回传，已在本系统记录",
        "市平台不接收居民意见回传，已在本系统记录",
    ]
    tried = [c for c in server.calls if c.path.endswith("servicerequestupdates.json")]
    assert len(tried) == 1 and server.updates == []


async def test_updates_switched_off_for_a_community_are_not_sent_and_kept_here(
    make_runtime: MakeRuntime, reference: Callable[..., ReferenceBackend]
) -> None:
    server = reference()  # it would take them
    rt = await make_runtime(
        **open311_settings(server.open311_url),
        backend_communities={"demo": {"kind": "open311", "updates": False}},
    )
    forwarder = Forwarder(rt.db, rt.settings, outbound=rt.outbound)
    public_id = await _resolved_and_rated(rt, server, forwarder, "zhou", "周阿姨")
    assert await _kept_notes(rt, public_id) == ["市平台不接收评价回传，已在本系统记录"]
    assert not [c for c in server.calls if c.path.endswith("servicerequestupdates.json")]
    [rating] = await _update_rows(rt)
    assert rating.delivered_at is not None


async def test_a_server_with_updates_still_gets_them(
    make_runtime: MakeRuntime, reference: Callable[..., ReferenceBackend]
) -> None:
    server = reference()
    rt = await make_runtime(**open311_settings(server.open311_url))
    forwarder = Forwarder(rt.db, rt.settings, outbound=rt.outbound)
    public_id = await _resolved_and_rated(rt, server, forwarder, "zhou", "周阿姨")
    [update] = server.updates
    assert update["status"] == "CLOSED" and update["update_id"].startswith(
        f"{rt.db.instance_id}:{public_id}:rating:"
    )
    assert await _kept_notes(rt, public_id) == []
