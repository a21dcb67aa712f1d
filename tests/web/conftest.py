"""Fixtures for the web chat page tests: Debian's Chromium driven by Playwright, and local servers.

The browser is the system's /usr/bin/chromium (apt packages `chromium`, `chromium-driver`); Playwright
never downloads its own. Without either, these tests skip and say why. Every server here listens on
127.0.0.1 only.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.webchat_servers import Served, free_port, huiyin_command, wait_healthy

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium (apt-get install chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("needs Python Playwright (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (own storage) that records console errors and uncaught exceptions."""
    context = browser.new_context(viewport={"width": 1100, "height": 760}, locale="zh-CN")
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    pg.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    pg.problems = problems
    yield pg
    context.close()


@pytest.fixture(scope="module")
def mock_server() -> Iterator[tuple[str, Any]]:
    """The scripted stand-in (tests/web/webchat_mock.py) in a background thread: (base URL, its app).

    Shared by a module's tests: each page has its own resident ids, so their scripts never meet.
    """
    import uvicorn

    from tests.web.webchat_mock import create_app

    app = create_app()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base + "/", 10)
    yield base, app
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`huiyin serve` as a subprocess on the embedded defaults (SQLite in a temp dir, fakeredis).

    Shared by a module's tests: each page gets fresh resident ids, so their conversations never meet.
    """
    tmp_path = tmp_path_factory.mktemp("huiyin-serve")
    command = huiyin_command()
    if command is None:
        pytest.fail("no `huiyin` console script: install the project (pip install -e '.[dev]')")
    # Embedded defaults whatever the surrounding run configured (CI also runs on real services).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HUIYIN_") and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    env["HUIYIN_DATA_DIR"] = str(tmp_path / "data")
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        # cwd is the temp dir so a developer's .env in the repository does not leak into the test.
        proc = subprocess.Popen(
            [command, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_healthy(base + "/healthz", 60, proc)
        except RuntimeError as exc:
            pytest.fail(f"{exc}\n--- huiyin serve output ---\n{Served(base, log_path).log_tail()}")
        yield Served(base, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
