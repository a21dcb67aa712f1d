"""WeChat Official Account (公众号) connector, and the pieces the WeCom connector shares with it.

Importing this package is cheap: :mod:`.routes` (the webhook and the channel type ``WECHAT``) loads wechatpy only when
WeChat is configured; ``WeChatChannel`` is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from integrations.wechat.routes import WECHAT, router, setup

if TYPE_CHECKING:
    from integrations.wechat.channel import WeChatChannel


def __getattr__(name: str) -> Any:
    if name == "WeChatChannel":
        from integrations.wechat.channel import WeChatChannel

        return WeChatChannel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["WECHAT", "WeChatChannel", "router", "setup"]
