"""WeCom (企业微信) connector: the self-built app, the intelligent group robot, and staff-group notices.

Importing this package is cheap: :mod:`.routes` (the webhook and the channel type ``WECOM``) loads wechatpy only when
WeCom is configured; ``WeComChannel`` and ``StaffGroupRobot`` are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from integrations.wecom.routes import WECOM, router, setup

if TYPE_CHECKING:
    from integrations.wecom.channel import WeComChannel
    from integrations.wecom.notify import StaffGroupRobot


def __getattr__(name: str) -> Any:
    if name == "WeComChannel":
        from integrations.wecom.channel import WeComChannel

        return WeComChannel
    if name == "StaffGroupRobot":
        from integrations.wecom.notify import StaffGroupRobot

        return StaffGroupRobot
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["WECOM", "StaffGroupRobot", "WeComChannel", "router", "setup"]
