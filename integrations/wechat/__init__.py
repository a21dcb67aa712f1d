"""WeChat Official Account (公众号) connector, and the pieces the WeCom connector shares with it."""

from integrations.wechat.channel import WeChatChannel, router, setup

__all__ = ["WeChatChannel", "router", "setup"]
