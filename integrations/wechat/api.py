"""Calling the WeChat-family HTTP APIs: access tokens cached in Redis, JSON calls, their error codes.

WeChat (``api.weixin.qq.com``) and WeCom (``qyapi.weixin.qq.com``) share the shape: an ``access_token``
valid for ~2 hours, JSON bodies that must be sent as UTF-8 without ``\\u`` escapes, and answers carrying
``errcode``/``errmsg``. wechatpy's own clients are synchronous (requests); in an asyncio server they would
block every conversation while one call waits, so the calls go through httpx here and wechatpy is used
for what it does best: signatures, crypto, parsing and rendering.

The token lives in Redis (``Keys.channels.wechat_token``, ``Keys.channels.wecom_token``) so that every process shares one and a
restart does not fetch a new one. A call answered with "token invalid or expired" drops it and retries
once with a fresh one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import redis.asyncio as aioredis
import structlog

from bot.outbound import DeliveryError

log = structlog.get_logger(__name__)

# 40001 invalid credential, 40014 invalid access_token, 42001 access_token expired.
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
# A token is refreshed this long before WeChat says it expires.
TOKEN_MARGIN_S = 300


class APIError(DeliveryError):
    """The platform answered with a non-zero ``errcode`` (or not with JSON at all)."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


def json_body(payload: dict[str, Any]) -> bytes:
    """UTF-8 JSON without ``\\u`` escapes: WeChat shows escaped Chinese literally in some APIs."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise APIError(-1, f"HTTP {response.status_code}, not JSON") from None
    if not isinstance(data, dict):
        raise APIError(-1, f"HTTP {response.status_code}, unexpected JSON")
    code = int(data.get("errcode") or 0)
    if code != 0:
        raise APIError(code, str(data.get("errmsg", "")))
    return data


TokenFetch = Callable[[httpx.AsyncClient], Awaitable[tuple[str, int]]]


class AccessToken:
    """One platform account's access token: fetched when missing, shared through Redis."""

    def __init__(self, redis: aioredis.Redis, key: str, fetch: TokenFetch) -> None:
        self._redis = redis
        self._key = key
        self._fetch = fetch
        self._lock = asyncio.Lock()

    async def get(self, http: httpx.AsyncClient) -> str:
        token = await self._redis.get(self._key)
        if token:
            return str(token)
        async with self._lock:  # one fetch per process, not one per waiting message
            token = await self._redis.get(self._key)
            if token:
                return str(token)
            value, expires_in = await self._fetch(http)
            await self._redis.set(self._key, value, ex=max(60, expires_in - TOKEN_MARGIN_S))
            log.info("access token fetched", key=self._key, expires_in=expires_in)
            return value

    async def drop(self, token: str) -> None:
        """Forget ``token`` (unless another process already replaced it)."""
        if await self._redis.get(self._key) == token:
            await self._redis.delete(self._key)


async def post_json(
    http: httpx.AsyncClient, token: AccessToken, url: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """POST ``payload`` to ``url?access_token=...``; a stale token is replaced and the call retried once.

    Raises :class:`APIError` for an error answer and :class:`~bot.outbound.DeliveryError` when the
    platform cannot be reached.
    """
    body = json_body(payload)
    for attempt in (1, 2):
        value = await token.get(http)
        try:
            response = await http.post(
                url,
                params={"access_token": value},
                content=body,
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
            return _answer(response)
        except APIError as exc:
            if exc.errcode in TOKEN_ERRORS and attempt == 1:
                await token.drop(value)
                continue
            raise
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{url.split('?')[0]}: {exc.__class__.__name__}: {exc}") from exc
    raise AssertionError("unreachable")


async def fetch_json(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
    """One plain API call (no access token), its answer checked for ``errcode``."""
    try:
        response = await http.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{url.split('?')[0]}: {exc.__class__.__name__}: {exc}") from exc
    return _answer(response)
