"""The HTTP app mounts the platform webhooks and, in its lifespan, switches on the configured platforms."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import bot.app
from bot.app import create_app
from bot.message import Platform
from bot.runtime import Runtime
from integrations.telegram import TelegramConnector
from integrations.wechat import WeChatChannel
from integrations.wecom import WeComChannel
from tests.platforms.fake_api import FakeAPI


async def test_lifespan_switches_on_every_configured_platform(
    runtime: Runtime, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the platforms are under test here: the lifespan's other jobs (backend forwarder, staff jobs)
    # have their own tests and are left out.
    async def not_under_test(*args: object, **kwargs: object) -> None:
        return None

    for other in ("start_staff_jobs",):
        monkeypatch.setattr(bot.app, other, not_under_test, raising=False)
    if hasattr(bot.app, "backend"):
        monkeypatch.setattr(bot.app.backend, "setup", not_under_test)
    app = create_app(runtime=runtime)
    async with app.router.lifespan_context(app):
        assert isinstance(app.state.telegram, TelegramConnector)
        assert isinstance(app.state.wechat, WeChatChannel)
        assert isinstance(app.state.wecom, WeComChannel)
        assert {Platform.TELEGRAM, Platform.WECHAT, Platform.WECOM} <= set(runtime.outbound.platforms())
        assert fake_api.to("/getMe"), "the bot was met at start-up"


async def test_webhooks_of_platforms_that_are_not_switched_on_answer_404(runtime: Runtime) -> None:
    app = create_app(runtime=runtime)
    app.state.runtime = runtime  # no lifespan: nothing switched on
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://huiyin.test"
    ) as client:
        for url in ("/webhooks/telegram/webhook", "/webhooks/wechat/webhook", "/webhooks/wecom/webhook"):
            r = await client.post(url, content=b"{}", params={"signature": "x", "msg_signature": "x"})
            assert r.status_code == 404, url
            assert "configured" in r.json()["detail"] or "off" in r.json()["detail"]


def test_a_server_without_platforms_does_not_load_their_libraries() -> None:
    # Memory: python-telegram-bot and wechatpy would add ~27 MB to the server's resident set
    # (python -m bench.heap_bench; the target is ≤ 200 MB); a deployment that configures neither must
    # not pay for them. A fresh interpreter, since this test session has imported them already.
    import subprocess
    import sys

    probe = (
        "import sys, bot.app, bot.cli; "
        "print(sorted(m for m in ('telegram', 'wechatpy', 'alembic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


async def test_a_server_that_starts_its_own_runtime_freezes_its_start_up_heap(tmp_path: Path) -> None:
    # A full garbage collection over the start-up objects stalls every turn in flight (python -m bench.heap_bench); the
    # server exempts them once it is ready. Shared runtimes (tests) are left alone.
    import gc

    from bot.runtime import FULL_COLLECTION_EVERY
    from tests.conftest import make_settings

    gc.unfreeze()
    thresholds = gc.get_threshold()
    app = create_app(make_settings(tmp_path))
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 10_000
            assert gc.get_threshold()[2] == FULL_COLLECTION_EVERY != thresholds[2]
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
