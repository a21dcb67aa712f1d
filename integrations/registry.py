"""Every input channel a server can connect to (the contract is :mod:`integrations.channel`). Apart from
the contract so that the channels import the contract and this module imports the channels, one way."""

from __future__ import annotations

from integrations import telegram, wechat, wecom
from integrations.channel import ChannelType
from integrations.rest.channel import REST


def channel_types() -> list[ChannelType]:
    """Every platform a server can connect to, REST first. Cheap: no platform library is imported."""
    return [REST, telegram.TELEGRAM, wechat.WECHAT, wecom.WECOM]
