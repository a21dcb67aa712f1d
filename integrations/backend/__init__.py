"""The city's case backend: Open311 GeoReport v2 (``open311``), a signed JSON webhook (``webhook``), and
the forwarder that delivers appeals to them and brings their answers back (``forwarder``).

:func:`setup` wires it into ``huiyin serve`` (and :mod:`integrations.backend.events` is the inbound
endpoint it mounts): the REST/web-chat mailboxes become those platforms' senders,
and the in-process forwarder starts unless ``HUIYIN_FORWARDER=false``. See docs/backend.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bot.runtime import Runtime

__all__ = ["setup"]

FORWARDER_JOB = "forwarder"


async def setup(app: FastAPI, runtime: Runtime) -> None:
    """Register the mailbox senders and start the in-process forwarder (once per runtime)."""
    from integrations.backend.forwarder import Forwarder
    from integrations.rest.inbox import register_inbox

    register_inbox(runtime.outbound, runtime.store.redis)
    if not runtime.settings.forwarder:
        return
    if any(t.get_name() == FORWARDER_JOB and not t.done() for t in runtime.tasks):
        return
    forwarder = Forwarder(
        runtime.db, runtime.settings, outbound=runtime.outbound, metrics=runtime.metrics, kb=runtime.kb
    )
    runtime.spawn(FORWARDER_JOB, forwarder.run())
