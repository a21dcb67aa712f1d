"""Wiring: builds the long-lived parts (database, state store, NLU, knowledge base, dialogs, dispatcher)
from settings, and tears them down. Every process (`serve`, `chat`, tests) starts through here."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog

from bot.db.session import Database
from bot.dialog.spec import load_bundle
from bot.metrics import Metrics
from bot.nlu.base import NLUBackend
from bot.nlu.registry import build_nlu
from bot.outbound import Outbound
from bot.settings import Settings
from bot.state import DIALOGS_COMPLETE, StateStore
from bot.turn import TurnPipeline
from kb import KnowledgeBase, load_knowledge_base

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Runtime:
    settings: Settings
    db: Database
    store: StateStore
    nlu: NLUBackend
    kb: KnowledgeBase
    dispatcher: TurnPipeline
    owns_nlu: bool = True
    metrics: Metrics = field(default_factory=Metrics)  # GET /metrics (bot/metrics/); one per runtime
    outbound: Outbound = field(default_factory=Outbound)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a background job (a poller, a forwarder) for the life of the runtime; it is cancelled and
        awaited on :meth:`close`. A job that crashes is logged, not silently lost."""
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_log_crash)
        self.tasks.append(task)
        return task

    @classmethod
    async def start(cls, settings: Settings, *, nlu: NLUBackend | None = None) -> Runtime:
        """Start everything ``settings`` describe. ``nlu`` may be passed to share a trained backend."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.effective_database_url)
        if settings.auto_migrate:
            await db.migrate()
        await db.identify(settings.instance_id)
        store = StateStore.from_url(
            settings.redis_url, lock_timeout_s=settings.lock_timeout_s, lock_wait_s=settings.lock_wait_s
        )
        kb = load_knowledge_base()
        owns_nlu = nlu is None
        nlu = nlu or await build_nlu(settings)
        dialogs = load_bundle()
        metrics = Metrics()
        metrics.watch_database(db)
        metrics.watch_redis(store.redis)
        metrics.watch_nlu(nlu)
        dispatcher = TurnPipeline(
            settings=settings, store=store, db=db, nlu=nlu, kb=kb, dialogs=dialogs, metrics=metrics
        )
        runtime = cls(settings, db, store, nlu, kb, dispatcher, owns_nlu, metrics=metrics)
        await runtime.restore_dialogs()
        log.info(
            "huiyin ready",
            database=db.engine.url.render_as_string(hide_password=True),
            redis=settings.redis_url or "in-process",
            nlu=nlu.name,
            instance=db.instance_id,
        )
        return runtime

    async def restore_dialogs(self) -> int:
        """Put half-finished dialogs back into Redis when it lost them (in-process Redis after a restart,
        or a Redis server that keeps nothing on disk). The database holds a durable copy of each."""
        restored = 0
        async with self.db.unit_of_work() as uow:
            for key, state in await uow.conversations.dialog_states():
                if state and await self.store.restore_state(key, state):
                    restored += 1
        await self.store.mark_complete(DIALOGS_COMPLETE)
        if restored:
            log.info("restored half-finished dialogs from the database", count=restored)
        return restored

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        closer = getattr(self.nlu, "close", None)
        if closer is not None and self.owns_nlu:
            await closer()
        await self.store.close()
        await self.db.dispose()


FULL_COLLECTION_EVERY = 100
"""Collections of the middle generation per full one once the server is ready (CPython's default: 10)."""


def settle_heap() -> None:
    """Exempt everything loaded at start-up (knowledge base, NLU vocabulary, ORM mappings, libraries:
    ~140k objects) from the cyclic garbage collector, once a server is ready, and make full collections
    rarer.

    A full collection walks every tracked object, tens of milliseconds on the 2-core target
    (``python -m bench.heap_bench``), a stall of every turn in flight whenever it runs. Start-up objects
    live as long as the process, so collecting them is wasted work; ``gc.freeze`` moves them out of the
    collector's generations (they are still freed by reference counting). What a running server keeps
    (caches of statements, understandings, conversation ids) still made full collections frequent under
    load, each a stall; the cyclic garbage of turns dies young and is collected with the younger
    generations, so full collections are made ten times rarer. Call once, from a process's own start-up,
    not from tests that start many runtimes.
    """
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background job crashed", job=task.get_name(), error=repr(task.exception()))
