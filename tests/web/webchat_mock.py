"""A scripted stand-in for the REST channel, for trying the web chat page without the real core.

Not product code and not a model of the real dialog: it answers a fixed appeal script so the page's own
mechanics (speaker switch, mentions, buttons, private replies, unread badges, error lines) can be looked
at and tested while the core is elsewhere. Run it by hand with::

    .venv/bin/python tests/web/webchat_mock.py --port 8099

and open http://127.0.0.1:8099/.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parents[2] / "bot" / "web" / "static"
MAX_TEXT_CHARS = 2000
PHONE = re.compile(r"1[3-9]\d{9}")


def create_app() -> FastAPI:
    """The page mounted the way `huiyin serve` mounts it, plus a scripted webhook."""
    app = FastAPI()
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    steps: dict[str, str] = {}  # sender -> where the scripted appeal stands
    groups: dict[str, str] = {}  # sender -> the group chat their appeal started in
    received: list[dict[str, Any]] = []  # every accepted request body, for tests to inspect
    app.state.received = received

    @app.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.post("/webhooks/rest/webhook")
    async def webhook(request: Request) -> list[dict[str, Any]]:
        try:
            body = await request.json()
        except ValueError as exc:
            raise HTTPException(400, "请求不是合法的 JSON") from exc
        text, sender = body.get("message"), body.get("sender")
        if not isinstance(text, str) or not text.strip() or not isinstance(sender, str):
            raise HTTPException(422, "message 和 sender 必须是非空文本")
        if len(text) > MAX_TEXT_CHARS:
            raise HTTPException(413, f"message: longer than {MAX_TEXT_CHARS} characters")
        received.append(body)
        meta = body.get("metadata") or {}
        in_group = meta.get("chat_type") == "group"
        name = meta.get("user_name") or "您"

        def chat(t: str, buttons: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
            return {
                "recipient_id": sender,
                "text": t,
                "buttons": [{"title": a, "payload": b} for a, b in buttons],
                "target": "chat",
                "chat_id": meta.get("chat_id", sender),
            }

        def private(t: str, buttons: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
            return {**chat(t, buttons), "target": "private", "chat_id": sender}

        step = steps.get(sender, "idle")
        if in_group:
            groups[sender] = meta.get("chat_id", "")
        if in_group and not (meta.get("mentioned") or meta.get("reply_to_bot")) and step == "idle":
            return []  # group chatter: the bot stays silent
        if "找谁" in text:
            return [chat("下水道堵了：户内支管找物业有偿维修，公共立管堵塞由物业负责疏通。")]
        if step == "idle" and re.search(r"坏|堵|漏", text):
            steps[sender] = "photo"
            return [
                chat(
                    f"好的{name}，已记下：{text.replace('@回音', '').strip()}。有现场照片吗？",
                    [("没有照片", "/skip_photo")],
                )
            ]
        if step == "photo":
            steps[sender] = "phone"
            return [
                chat(f"{name}，联系电话我私信问您，群里不显示。"),
                private("请告诉我您的手机号，方便工作人员联系您。"),
            ]
        if step == "phone" and (m := PHONE.search(text)):
            steps[sender] = "confirm"
            masked = m.group()[:3] + "****" + m.group()[-4:]
            return [
                private(
                    f"请核对：楼道灯坏了，3栋2单元，联系电话 {masked}。",
                    [("确认提交", "/confirm"), ("取消", "/cancel")],
                )
            ]
        if step == "confirm" and text == "/confirm":
            steps[sender] = "idle"
            return [
                private("已登记，编号 HY-20261122-0001，处理进展会私信通知您。"),
                {**chat(f"{name}的诉求已登记：HY-20261122-0001。"), "chat_id": groups.get(sender, sender)},
            ]
        if text == "/cancel":
            steps[sender] = "idle"
            return [chat("好的，已取消。")]
        return [chat("没太明白，可以说说遇到了什么问题，比如「3栋2单元楼道灯坏了」。")]

    return app


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8099)
    uvicorn.run(create_app(), host="127.0.0.1", port=parser.parse_args().port)
