"""Logging: structlog for our own events, with the standard library's records routed through it.

Logs hold no resident's words and no phone number. Call sites log ids, counts and lengths, never a
message's text, a description, a summary or a reply (and an exception raised on a resident's text is
logged by its class, not its message, which may quote the text). Behind that, every record passes
:func:`mask_numbers` as it is rendered: phone-like numbers — mainland mobiles, landlines with an area
code, resident ID card numbers — are masked in every string of it, the exception's traceback included,
and the standard library's records (libraries, uvicorn) pass the same masking (:class:`MaskingFormatter`).
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import structlog

# A resident ID card number (18 characters, the last a check digit or X), a mainland mobile (with or
# without +86 and separators), a landline with its area code. Digits right before or after a match make
# it something else (a longer id, a timestamp), and it is left alone.
_ID_CARD = re.compile(r"(?<![0-9A-Za-z])(\d{4})\d{10}(\d{3}[\dXx])(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<![\d+])((?:\+|00)?86[\s-]?)?(1[3-9]\d)[\s-]?\d{4}[\s-]?(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(\(?0\d{2,3}\)?)([\s-]?)\d{3,4}[\s-]?(\d{4})(?!\d)")


def mask_numbers(text: str) -> str:
    """``text`` with phone-like numbers masked (``138****5678``, ``021-****5678``, ``1101**********123X``)."""
    if not any(ch.isdigit() for ch in text):
        return text
    text = _ID_CARD.sub(lambda m: f"{m[1]}{'*' * 10}{m[2]}", text)
    text = _MOBILE.sub(lambda m: f"{m[1] or ''}{m[2]}****{m[3]}", text)
    return _LANDLINE.sub(lambda m: f"{m[1]}{m[2]}****{m[3]}", text)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_numbers(value)
    if isinstance(value, Mapping):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_masked(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return mask_numbers(str(value))  # anything else is rendered as its text anyway


def mask_personal_numbers(
    _logger: Any, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """A structlog processor: :func:`mask_numbers` over every value of the record (after the exception
    is formatted, before rendering)."""
    return {key: _masked(value) for key, value in event_dict.items()}


def crash_fields(exc: BaseException, frames: int = 8) -> dict[str, str]:
    """How to log an exception raised on a resident's message or an outbox row: its class (and its
    causes' classes) and where it was raised, innermost frame first — not its message, which may quote
    the text, the payload or the phone number it failed on."""
    chain, cause = [type(exc).__name__], exc.__cause__ or exc.__context__
    while cause is not None and len(chain) < 4:
        chain.append(type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    stack = traceback.extract_tb(exc.__traceback__)[-frames:]
    where = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(stack))
    return {"error": " from ".join(chain), "where": where}


class MaskingFormatter(logging.Formatter):
    """The standard library's records, formatted as usual and then masked (:func:`mask_numbers`)."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_numbers(super().format(record))


def processors(*, json: bool, colors: bool = False) -> list[structlog.types.Processor]:
    """The processors every record passes, in order, ending in the renderer."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=colors)
    )
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        mask_personal_numbers,
        renderer,
    ]


def configure_logging(
    level: str = "info", *, json: bool = False, stream: TextIO | None = None, cache: bool = True
) -> None:
    """Configure structlog and the standard library's logging, to ``stream`` (default: standard error).
    ``cache`` (the default) binds each logger's configuration on its first use; tests that configure
    logging for a while and then put it back pass False."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    out = stream or sys.stderr
    structlog.configure(
        processors=processors(json=json, colors=stream is None and sys.stderr.isatty()),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=cache,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(MaskingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=max(numeric, logging.WARNING), handlers=[handler])
