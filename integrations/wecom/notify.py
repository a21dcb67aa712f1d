"""Notifications into a WeCom staff group through a group robot webhook (群机器人 / 消息推送).

A group robot is added in a WeCom group's settings and gets a webhook URL
``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...``; anything posted there appears in that group.
Huiyin uses it to tell the community's staff about things that need a person (a new appeal, an urgent
one, a resident asking for a human). The key in the URL is the only credential: keep it secret.
"""

from __future__ import annotations

import httpx

from integrations.wechat.api import fetch_json

# WeCom refuses text messages longer than 2048 bytes on this webhook.
MAX_TEXT_BYTES = 2048


class StaffGroupRobot:
    """Posts text into the staff group. Raises :class:`~bot.outbound.DeliveryError` on failure."""

    def __init__(self, webhook_url: str, http: httpx.AsyncClient) -> None:
        self._url = webhook_url
        self._http = http

    async def notify(self, text: str, *, mention_all: bool = False) -> None:
        """Post ``text`` (cut to WeCom's limit); ``mention_all`` @-mentions everyone in the group."""
        body = text.encode("utf-8")[:MAX_TEXT_BYTES].decode("utf-8", errors="ignore")
        message: dict[str, object] = {"content": body}
        if mention_all:
            message["mentioned_list"] = ["@all"]
        await fetch_json(self._http, "POST", self._url, json={"msgtype": "text", "text": message})
