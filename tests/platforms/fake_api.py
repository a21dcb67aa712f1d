"""A real HTTP server on 127.0.0.1 standing in for the platforms' APIs (Bot API, WeChat, WeCom).

Started by the test in its own event loop (uvicorn), it records every request (method, path, query,
parsed body, arrival time) and answers from handlers registered per path; tests then assert what the
connector sent. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    data: dict[str, Any] = field(default_factory=dict)  # the JSON object or the form fields
    at: float = field(default_factory=time.perf_counter)

    def json_field(self, name: str) -> Any:
        """A form field that PTB sends JSON-encoded (reply_markup, reply_parameters)."""
        value = self.data.get(name)
        return json.loads(value) if isinstance(value, str) else value


Handler = Callable[[Call], Response | dict[str, Any] | bytes]


class FakeAPI:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.handlers: dict[str, Handler] = {}
        self.fallback: Handler = lambda call: {"ok": True, "result": True}
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.url = ""

    def on(self, path: str, handler: Handler) -> None:
        self.handlers[path] = handler

    def to(self, path_suffix: str) -> list[Call]:
        return [c for c in self.calls if c.path.endswith(path_suffix)]

    async def wait_for(self, path_suffix: str, count: int = 1, within_s: float = 5.0) -> list[Call]:
        """The calls to ``path_suffix`` once there are at least ``count`` of them."""
        loop = asyncio.get_running_loop()
        until = loop.time() + within_s
        while len(found := self.to(path_suffix)) < count:
            remaining = until - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{len(found)} calls to {path_suffix}, expected {count}: {self.paths()}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=remaining)
            except TimeoutError:
                pass
        return found

    def paths(self) -> list[str]:
        return [c.path for c in self.calls]

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        call = Call(request.method, request.url.path, dict(request.query_params), body)
        kind = request.headers.get("content-type", "")
        if "json" in kind and body:
            call.data = json.loads(body)
        elif "form-urlencoded" in kind:
            call.data = dict(parse_qsl(body.decode()))
        elif "multipart" in kind:
            form = await request.form()
            call.data = {k: v for k, v in form.items() if isinstance(v, str)}
        self.calls.append(call)
        self._changed.set()
        handler = self.handlers.get(call.path, self.fallback)
        answer = handler(call)
        if isinstance(answer, Response):
            return answer
        if isinstance(answer, bytes):
            return Response(answer, media_type="application/octet-stream")
        return JSONResponse(answer)

    async def start(self) -> None:
        app = Starlette(routes=[Route("/{path:path}", self._endpoint, methods=["GET", "POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.005)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
