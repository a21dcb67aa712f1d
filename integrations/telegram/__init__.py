"""Telegram connector (python-telegram-bot): webhook or polling, groups and private chats, buttons."""

from integrations.telegram.connector import TelegramConnector
from integrations.telegram.webhook import router, setup

__all__ = ["TelegramConnector", "router", "setup"]
