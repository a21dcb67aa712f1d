"""Services a test may break: a Redis server of its own on a free port, and a database URL nobody
answers. Never the shared services of the machine."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from integrations.backend.reference import free_port


def stop_processes(procs: Sequence[subprocess.Popen[Any]], timeout_s: float = 10) -> None:
    """Ask each server a test started to stop, and kill those that have not within ``timeout_s``."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def disposable_redis(workdir: Path, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of the test's own (no persistence) on a free loopback port, or on ``port`` (to
    bring back one the test killed): its URL and its process, to kill when the test wants Redis gone.
    Skips the test where redis-server is missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = port or free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the test's redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def unreachable_database_url() -> str:
    """A PostgreSQL URL on a loopback port where nothing listens: every connection is refused."""
    return f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test"
