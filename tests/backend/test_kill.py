"""`huiyin worker` killed with SIGKILL in the middle of a delivery: after a restart every appeal reaches
the backend exactly once. Real processes, a real backend on loopback; SQLite (both passes) and
PostgreSQL + Redis with two workers after the restart (real pass)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.nlu.base import NLUBackend
from bot.runtime import Runtime
from bot.settings import Settings
from integrations.backend.reference import ReferenceBackend
from tests.backend.conftest import FAST, SECRET, file_many, pending_rows
from tests.conftest import REAL_DATABASE_URL, REAL_REDIS_URL, _reset_real_services

LEASE_S = 1.5


def _worker_env(
    tmp_path: Path, database_url: str, redis_url: str | None, backend: dict[str, str]
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HUIYIN_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "HUIYIN_DATA_DIR": str(tmp_path / "worker-data"),
            "HUIYIN_FORWARDER_LEASE_S": str(LEASE_S),
            "HUIYIN_FORWARDER_BATCH": "4",
            "HUIYIN_FORWARDER_IDLE_S": "0.1",
            "HUIYIN_FORWARDER_BACKOFF_S": "0.1",
            "HUIYIN_FORWARDER_BACKOFF_MAX_S": "0.5",
            "HUIYIN_LOG_LEVEL": "warning",
            **backend,
        }
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def _start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


async def _wait_delivered(rt: Runtime, procs: list[subprocess.Popen[bytes]], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while await pending_rows(rt) > 0:
        for proc in procs:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise AssertionError(f"worker exited with {proc.returncode}: {err[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{await pending_rows(rt)} rows still pending")
        await asyncio.sleep(0.1)


async def _kill_mid_delivery_then_restart(
    rt: Runtime, server: ReferenceBackend, env: dict[str, str], ids: list[str], restart_workers: int
) -> None:
    server.hold_creates_after(5)  # the sixth case is stored, its answer held: the worker is mid-call
    first = _start(env)
    try:
        held = await asyncio.to_thread(server.wait_held, 60)
        assert held, (
            first.stderr.read().decode() if first.poll() is not None and first.stderr else "no delivery"
        )
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
        server.release()
    assert 0 < await pending_rows(rt) < len(ids), "killed half-way: some delivered, some not"

    workers = [_start(env) for _ in range(restart_workers)]
    try:
        await _wait_delivered(rt, workers)
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(20) for proc in workers]
    assert codes == [0] * restart_workers, "workers stop cleanly on SIGTERM"
    assert sorted(server.public_ids()) == sorted(ids), "every appeal arrived, exactly once"
    assert server.replays >= 1, "the call the killed worker never heard back from was sent again"


async def test_sigkill_mid_delivery_sqlite(
    tmp_path: Path, shared_nlu: NLUBackend, reference: Callable[..., ReferenceBackend]
) -> None:
    server = reference(delay_s=0.02)
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'kill.db'}"
    backend = {
        "HUIYIN_BACKEND": "webhook",
        "HUIYIN_BACKEND_WEBHOOK_URL": server.webhook_url,
        "HUIYIN_BACKEND_WEBHOOK_SECRET": SECRET,
    }
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, redis_url=None, **FAST)
    rt = await Runtime.start(settings, nlu=shared_nlu)
    try:
        ids = await file_many(rt, 12)
        env = _worker_env(tmp_path, database_url, None, backend)
        await _kill_mid_delivery_then_restart(rt, server, env, ids, restart_workers=1)
    finally:
        await rt.close()


@pytest.mark.real_services
async def test_sigkill_mid_delivery_postgres_then_two_workers(
    tmp_path: Path, shared_nlu: NLUBackend, reference: Callable[..., ReferenceBackend]
) -> None:
    server = reference(delay_s=0.02)
    backend = {
        "HUIYIN_BACKEND": "open311",
        "HUIYIN_OPEN311_URL": server.open311_url,
        "HUIYIN_OPEN311_API_KEY": "key-1",
    }
    settings = Settings(
        data_dir=tmp_path / "data", database_url=REAL_DATABASE_URL, redis_url=REAL_REDIS_URL, **FAST
    )
    await _reset_real_services(settings)
    rt = await Runtime.start(settings, nlu=shared_nlu)
    try:
        ids = await file_many(rt, 16)
        env = _worker_env(tmp_path, REAL_DATABASE_URL, REAL_REDIS_URL, backend)
        await _kill_mid_delivery_then_restart(rt, server, env, ids, restart_workers=2)
    finally:
        await rt.close()
