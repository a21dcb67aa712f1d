"""Telegram connector (python-telegram-bot): webhook or polling, groups and private chats, buttons.

Importing this package is cheap: :mod:`.webhook` (the route and the channel type ``TELEGRAM``) loads python-telegram-bot only
when ``HUIYIN_TELEGRAM_TOKEN`` is set; ``TelegramConnector`` is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from integrations.telegram.webhook import TELEGRAM, router, setup

if TYPE_CHECKING:
    from integrations.telegram.connector import TelegramConnector


def __getattr__(name: str) -> Any:
    if name == "TelegramConnector":
        from integrations.telegram.connector import TelegramConnector

        return TelegramConnector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TELEGRAM", "TelegramConnector", "router", "setup"]
