"""The HTTP app: channels' webhooks, the web chat page, and health checks.

``create_app(settings)`` builds a FastAPI app whose lifespan starts the :class:`~bot.runtime.Runtime`.
The input channels (:mod:`integrations.channel`) are mounted here through their contract only: the
routes of every known channel when the app is created, and in the lifespan the channels the settings
configure, built over the :class:`~integrations.core.Core` facade and switched on. The core stays
transport-free.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from bot.metrics import Metrics, RequestTimer
from bot.metrics import router as metrics_router
from bot.runtime import Runtime, settle_heap
from bot.settings import Settings
from bot.staff import create_console, start_staff_jobs
from bot.web.privacy import router as privacy_router
from integrations import backend
from integrations.backend.events import router as backend_events_router
from integrations.channel import configured_channels, switch_on
from integrations.core import Core
from integrations.registry import channel_types
from integrations.rest.inbox import InboxHint
from integrations.rest.inbox import router as inbox_router

STATIC = Path(__file__).with_name("web") / "static"


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """The app. Pass ``runtime`` to share an already started one (tests); otherwise it starts its own."""
    settings = settings or (runtime.settings if runtime else Settings())
    channels = channel_types()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = runtime is None
        app.state.runtime = runtime or await Runtime.start(settings)
        try:
            # Only the channels the settings configure (a platform's token is set) are built.
            core = Core.of(app.state.runtime)
            for channel in await configured_channels(core, channels):
                await switch_on(app, channel, core)
            # After the platforms: their senders are registered when the forwarder starts.
            await backend.setup(app, app.state.runtime)
            # Staff handoff: held conversations back into Redis, notices to staff chats, auto-release.
            await start_staff_jobs(app.state.runtime)
            if own:
                settle_heap()
            yield
        finally:
            if own:
                await app.state.runtime.close()

    app = FastAPI(
        title="huiyin 回音", version="0.1.0", lifespan=lifespan, docs_url="/api/docs", redoc_url=None
    )
    # Every channel's routes, configured or not: one that is off answers 404 naming its setting.
    for channel_type in channels:
        for channel_router in channel_type.routes:
            app.include_router(channel_router)
    app.mount("/staff", create_console(lambda: app.state.runtime))
    app.include_router(inbox_router)
    app.include_router(backend_events_router)
    app.add_middleware(InboxHint)
    app.include_router(metrics_router)
    app.include_router(privacy_router)

    def metrics_of() -> Metrics | None:
        runtime: Runtime | None = getattr(app.state, "runtime", None)
        return runtime.metrics if runtime is not None else None

    app.add_middleware(RequestTimer, metrics_of=metrics_of)  # outermost: times the other middleware too

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: the database and Redis answer; the NLU reports its own state (a fallback is ready)."""
        rt: Runtime = request.app.state.runtime
        checks: dict[str, str] = {}
        ready = True
        try:
            await rt.db.ping()
            checks["database"] = "ok"
        except Exception as exc:  # any failure means not ready; the reason is reported
            checks["database"] = f"error: {exc.__class__.__name__}: {exc}"[:300]
            ready = False
        try:
            await rt.store.ping()
            checks["redis"] = "ok" if rt.settings.redis_url else "ok (in-process)"
        except Exception as exc:
            checks["redis"] = f"error: {exc.__class__.__name__}: {exc}"[:300]
            ready = False
        nlu_problem = await rt.nlu.health()
        checks["nlu"] = f"{rt.nlu.name}: {nlu_problem}" if nlu_problem else f"{rt.nlu.name}: ok"
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

        @app.get("/", include_in_schema=False)
        async def web_chat() -> FileResponse:
            return FileResponse(STATIC / "index.html")

    return app
