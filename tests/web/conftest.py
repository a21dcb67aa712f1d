"""Fixtures for the web chat page tests: Debian's Chromium driven by Playwright, and local servers.

The browser is the system's /usr/bin/chromium (:mod:`tests.web.chromium`); without it, or without
Playwright, these tests skip and say why. Every server here listens on 127.0.0.1 only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.chromium import launched_chromium
from tests.web.webchat_servers import Served, embedded_env, free_port, running_huiyin, wait_healthy


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, one per test module: a sync Playwright left running after its module would leave
    its event loop running under whatever async or Playwright test comes next, in any order of modules."""
    with launched_chromium() as chromium:
        yield chromium


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
    with running_huiyin(tmp_path, embedded_env(tmp_path / "data")) as served:
        yield served
