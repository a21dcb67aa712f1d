"""The metrics' HTTP side: the request timer middleware and the ``GET /metrics`` scrape endpoint."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.metrics.counters import Metrics

UNMATCHED_ROUTE = "(unmatched)"


class RequestTimer:
    """ASGI middleware: each HTTP request's time into ``huiyin_http_request_duration_seconds``.

    The label is the matched route's path template (``/webhooks/rest/webhook``, ``/staff/appeals/{id}``),
    read from the scope, which routing has filled in by then, with the prefix of the mount it is under;
    requests that match no route share one label. The time runs until the last part of the response
    body is sent; a request whose handler crashes sends nothing here and is not timed (the error
    middleware outside answers 500).

    It wraps ``send`` instead of awaiting the app: a middleware coroutine around the app would be one
    more frame on the stack, resumed at every await of every request (~12 Python calls a turn)."""

    def __init__(self, app: ASGIApp, metrics_of: Callable[[], Metrics | None]) -> None:
        self.app = app
        self.metrics_of = metrics_of

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        metrics = self.metrics_of() if scope["type"] == "http" else None
        if metrics is None:
            return self.app(scope, receive, send)
        root_path = scope.get("root_path", "")  # before the call: a mount extends it
        start = time.perf_counter()

        async def timed_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                metrics.observe_request(route_template(scope, root_path), time.perf_counter() - start)

        return self.app(scope, receive, timed_send)


def route_template(scope: Scope, root_path: str = "") -> str:
    """The path template of the route that served ``scope`` (after the app ran), never the raw path."""
    mount: str = scope.get("root_path", "")[len(root_path) :]
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return mount + path
    if mount:  # a mounted app without routes of its own (static files)
        return mount + "/{path}"
    return UNMATCHED_ROUTE


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus scrape: counters, histograms and the scrape-time gauges, no personal data.

    404 when ``HUIYIN_METRICS=false``; with ``HUIYIN_METRICS_TOKEN`` set, 401 unless the request carries
    ``Authorization: Bearer <token>``."""
    runtime = request.app.state.runtime
    settings = runtime.settings
    if not settings.metrics:
        return Response(status_code=404)
    if settings.metrics_token is not None:
        expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    metrics: Metrics = runtime.metrics
    await metrics.refresh(runtime.db)
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
