"""What every webhook does with a JSON body before trusting it, and how it answers an outage.

- :func:`loads_bounded`: JSON parsed only once its nesting is known to stay within a small depth (a body
  of ``[[[[…`` makes Python's parser raise RecursionError, and the libraries that walk the result recurse
  too), with lone UTF-16 surrogates (``"\\ud800"``, valid JSON escapes but not text: no database can store
  them, and the message would be lost on the way) replaced by U+FFFD so the message is still handled.
  Bodies are already capped in size by the caller (``read_limited_body``), so the scan is bounded too.
- :func:`lone_surrogate_path`: where a body the REST channel refused holds a lone surrogate, so that it
  can say so (422) instead of calling the body invalid JSON.
- :func:`outages_answered`: a platform endpoint answers 503 with ``Retry-After`` when the message could
  not be durably handled (:mod:`bot.outage`), so that the platform delivers it again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from fastapi import HTTPException

from bot.outage import RETRY_AFTER_S, is_outage

log = structlog.get_logger(__name__)

MAX_JSON_DEPTH = 32
"""Deepest nesting accepted in a webhook's JSON. A Telegram Update is about 8 deep (update → message →
reply_to_message → reply_markup → inline_keyboard → row → button → …), a WeCom robot callback 5."""

# A JSON string (escapes included); what is between quotes cannot open or close anything.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# The escape of a UTF-16 surrogate, paired or not; only a body that has one needs the walk below.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# Once parsed, a valid pair is one code point: any surrogate left in a string stood alone.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class BadJSON(ValueError):
    """The body is not JSON, or nests deeper than allowed (a 400 with this short reason)."""


def nests_deeper(body: bytes, max_depth: int) -> bool:
    """Whether ``body``'s arrays and objects nest deeper than ``max_depth`` (brackets inside strings do
    not count)."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False  # the common case, at C speed: too few brackets to nest that deep, strings or not
    depth = 0
    for byte in _STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        if byte in b"[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def loads_bounded(body: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``body`` parsed as JSON, refused with :class:`BadJSON` when it is not JSON or nests deeper than
    ``max_depth``; lone surrogates in its strings (keys too) become U+FFFD."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if nests_deeper(data, max_depth):
        raise BadJSON(f"the JSON nests deeper than {max_depth} levels")
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise BadJSON("the body is not valid JSON") from None
    if _SURROGATE_ESCAPE.search(data):
        parsed = _without_lone_surrogates(parsed)
    return parsed


def _without_lone_surrogates(value: Any) -> Any:
    # Recursion is bounded: the value nests at most max_depth deep.
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value


def lone_surrogate_path(body: bytes) -> str | None:
    """The dotted path (``message``, ``metadata.user_name``) of the first string in ``body`` that holds a
    lone surrogate, or None when there is none (or ``body`` is not JSON at all)."""
    if not _SURROGATE_ESCAPE.search(body) or nests_deeper(body, MAX_JSON_DEPTH):
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return _surrogate_path(parsed, "")


def _surrogate_path(value: Any, where: str) -> str | None:
    if isinstance(value, str):
        return (where or "body") if _LONE_SURROGATE.search(value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        name = f"{where}.{key}" if where else str(key)
        if isinstance(key, str) and _LONE_SURROGATE.search(key):
            return name
        if (found := _surrogate_path(item, name)) is not None:
            return found
    return None


@contextmanager
def outages_answered() -> Iterator[None]:
    """Turn what an outage raises inside the block (Redis or the database out, the conversation locked:
    :func:`bot.outage.is_outage`) into a 503 with ``Retry-After``: the message was not durably handled,
    and every platform delivers again what it was not answered success for. Anything else passes."""
    try:
        yield
    except Exception as exc:
        if not is_outage(exc):
            raise
        log.warning("message not handled: a service is unavailable; asking for redelivery", error=repr(exc))
        raise HTTPException(
            503,
            "the message could not be stored now (a service is unavailable); deliver it again",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from exc


__all__ = [
    "MAX_JSON_DEPTH",
    "BadJSON",
    "loads_bounded",
    "lone_surrogate_path",
    "nests_deeper",
    "outages_answered",
]
