"""WeCom (企业微信) connector: the self-built app, the intelligent group robot, and staff-group notices."""

from integrations.wecom.channel import WeComChannel, router, setup
from integrations.wecom.notify import StaffGroupRobot

__all__ = ["StaffGroupRobot", "WeComChannel", "router", "setup"]
