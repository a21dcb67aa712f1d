"""Open311 GeoReport v2: discovery and service codes, form-encoded filing, ids and tokens, status polling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from bot.db.models import AppealStatus
from bot.runtime import Runtime
from integrations.backend.base import BackendRejected, BackendUnavailable, CaseRecord, status_from_text
from integrations.backend.forwarder import Forwarder
from integrations.backend.open311 import Open311Backend
from integrations.backend.reference import ReferenceBackend
from tests.backend.conftest import appeal, file_appeal, open311_settings, private, run_until

MakeRuntime = Callable[..., Awaitable[Runtime]]


def client_for(server: ReferenceBackend, **kw: object) -> Open311Backend:
    options: dict[str, object] = {
        "name": "t",
        "url": server.open311_url,
        "api_key": "key-1",
        "jurisdiction": "demo-city",
        "service_codes": {},
        "default_service_code": None,
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


async def test_service_codes_come_from_settings_then_discovery_then_the_default(
    reference: Callable[..., ReferenceBackend],
) -> None:
    server = reference()
    backend = client_for(server, service_codes={"parking": "099"}, default_service_code="099")
    try:
        assert await backend.service_code(case("repairs")) == "001", "matched by the service's group"
        assert await backend.service_code(case("environment")) == "002", "matched by name/keywords"
        assert await backend.service_code(case("parking")) == "099", "the configured mapping wins"
        assert await backend.service_code(case("pets")) == "099", "nothing matches: the default"
        assert await backend.service_code(case(None)) == "099"
        discovery = [c for c in server.calls if c.path.endswith("services.json")]
        assert len(discovery) == 1, "services.json is cached"
    finally:
        await backend.close()


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

    # 不满意 reopens; the backend hears it through the update extension, and polling resumes.
    replies = await rt.dispatcher.handle(private("不满意", who="zhou", name="周阿姨"))
    assert "重新打开" in replies[0].text
    await run_until(forwarder, lambda: _updated(server))
    [update] = server.updates
    assert update["status"] == "OPEN" and update["update_id"].startswith(f"{public_id}:rating:")
    await run_until(forwarder, lambda: status_is("accepted"))  # the city reopened it


async def _updated(server: ReferenceBackend) -> bool:
    return bool(server.updates)
