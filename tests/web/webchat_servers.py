"""Local servers for the browser tests (web chat page, staff console): the real `huiyin serve`, or the
scripted stand-in. Every server listens on 127.0.0.1 only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest

from integrations.backend.reference import free_port


def wait_healthy(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Polls `url` until it answers 200; fails early if `proc` died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s:.0f} s")


class Served(NamedTuple):
    base: str
    log_path: Path

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def huiyin_command() -> str | None:
    """The `huiyin` console script of the interpreter running the tests, else the one on PATH."""
    beside = Path(sys.executable).with_name("huiyin")
    return str(beside) if beside.exists() else shutil.which("huiyin")


def required_huiyin_command() -> str:
    """:func:`huiyin_command`, failing the test when the project is not installed."""
    command = huiyin_command()
    if command is None:
        pytest.fail("no `huiyin` console script: install the project (pip install -e '.[dev]')")
    return command


def embedded_env(data_dir: Path) -> dict[str, str]:
    """This process's environment for a `huiyin` subprocess on the embedded defaults (SQLite under
    ``data_dir``, fakeredis), whatever the surrounding run configured (CI also runs on real services):
    every ``HUIYIN_*`` variable and the database and Redis URLs are left out."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HUIYIN_") and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    env["HUIYIN_DATA_DIR"] = str(data_dir)
    return env


@contextmanager
def running_huiyin(workdir: Path, env: dict[str, str]) -> Iterator[Served]:
    """`huiyin serve` as a subprocess on a free loopback port, healthy (``/healthz`` answers 200) before
    this yields; stopped (SIGTERM, then SIGKILL after 10 s) on exit.

    It runs in ``workdir``, so a developer's .env in the repository does not leak into the test, and
    writes its output to ``workdir/serve.log``; the test fails with that log when the server exits or
    stays unhealthy for 60 s.
    """
    command = required_huiyin_command()
    port = free_port()
    log_path = workdir / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [command, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", log_path)
    try:
        try:
            wait_healthy(served.base + "/healthz", 60, proc)
        except RuntimeError as exc:
            pytest.fail(f"{exc}\n--- huiyin serve output ---\n{served.log_tail()}")
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
