"""HTTP plumbing shared by the backends: one client per backend, and answers sorted into retry or refuse."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from bot.dialog.slots import mask_personal
from integrations.backend.base import BackendRejected, BackendUnavailable

T = TypeVar("T")

# 4xx answers that say "not now" rather than "never": retried like a 5xx.
RETRYABLE_4XX = frozenset({408, 409, 423, 425, 429})


def make_client(timeout_s: float, max_connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        headers={"User-Agent": "huiyin-forwarder/0.1"},
        trust_env=False,  # a backend on the LAN must not go through a developer's proxy settings
    )


class PooledClient:
    """Base of a backend that talks HTTP: its one pooled client (:func:`make_client`), made on first use
    of :attr:`client` — constructing a backend opens nothing — and closed by :meth:`close`, after
    which the next use makes a new one."""

    def __init__(self, *, timeout_s: float, max_connections: int) -> None:
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = make_client(self._timeout_s, self._max_connections)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def answer_excerpt(text: str, chars: int = 300) -> str:
    """The start of a backend's answer, for an error (kept in the outbox row, logged): a backend that
    quotes the case back quotes the resident's phone and room, so those are masked."""
    return mask_personal(text[:chars].strip())


def check_answer(response: httpx.Response, what: str) -> None:
    """Raise for a failed answer: :class:`BackendUnavailable` (retry) or :class:`BackendRejected`."""
    code = response.status_code
    if 200 <= code < 300:
        return
    detail = answer_excerpt(response.text)
    message = f"{what}: HTTP {code}" + (f": {detail}" if detail else "")
    if code >= 500 or code in RETRYABLE_4XX:
        raise BackendUnavailable(message)
    raise BackendRejected(message)


async def guarded(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call``, turning transport failures into :class:`BackendUnavailable`."""
    try:
        return await call()
    except httpx.TimeoutException as exc:
        raise BackendUnavailable(f"{what}: timed out ({exc.__class__.__name__})") from exc
    except httpx.TransportError as exc:
        raise BackendUnavailable(f"{what}: {exc.__class__.__name__}: {exc}") from exc
