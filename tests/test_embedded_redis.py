"""Without ``REDIS_URL`` the state store runs on fakeredis, which comes with the ``embedded`` extra: an
installation without it says what to install instead of failing on a bare import error."""

from __future__ import annotations

import sys

import pytest

from bot.state import StateStore


async def test_the_embedded_redis_serves_without_a_url() -> None:
    store = StateStore.from_url(None)
    try:
        assert await store.ping()
    finally:
        await store.close()


def test_without_fakeredis_the_embedded_default_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fakeredis", None)  # import fakeredis raises ImportError
    with pytest.raises(RuntimeError, match=r"huiyin\[embedded\].*REDIS_URL"):
        StateStore.from_url(None)


async def test_a_redis_url_needs_no_fakeredis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fakeredis", None)
    store = StateStore.from_url("redis://127.0.0.1:1/0")  # connects lazily: nothing is sent here
    try:
        assert not store.cluster
    finally:
        await store.close()
