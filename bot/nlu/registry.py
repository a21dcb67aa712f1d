"""Understanding backends are registered by name and built from settings.

A backend module exposes an async factory ``create(settings) -> NLUBackend``. The registry maps the
``HUIYIN_NLU`` setting to that factory by import path, so that heavy or optional dependencies of one
backend are imported only when it is chosen.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import cast

from bot.nlu.base import NLUBackend
from bot.settings import Settings

Factory = Callable[[Settings], Awaitable[NLUBackend]]

BACKENDS: dict[str, str] = {
    "embedded": "bot.nlu.embedded:create",
    "rasa": "integrations.rasa.adapter:create",
}


def register(name: str, factory_path: str) -> None:
    """Register another backend, ``factory_path`` being ``"package.module:function"``."""
    BACKENDS[name] = factory_path


async def build_nlu(settings: Settings) -> NLUBackend:
    try:
        path = BACKENDS[settings.nlu]
    except KeyError:
        raise ValueError(f"unknown NLU backend {settings.nlu!r}; known: {sorted(BACKENDS)}") from None
    module_name, _, attr = path.partition(":")
    factory = cast(Factory, getattr(importlib.import_module(module_name), attr))
    return await factory(settings)
