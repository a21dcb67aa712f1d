"""The staff console: login, the queue of conversations waiting for a person, taking over, appeals with
filters and CSV export, a dashboard, canned replies and the audit log. Mounted at ``/staff`` by
:func:`bot.app.create_app`; see :mod:`bot.staff.console` and docs/staff.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.staff.console import create_console

if TYPE_CHECKING:
    from bot.runtime import Runtime

__all__ = ["create_console", "start_staff_jobs"]


async def start_staff_jobs(runtime: Runtime) -> None:
    """At start-up of ``huiyin serve``: restore the "held" markers, then run the notice delivery and
    auto-release jobs for the life of the runtime (once per runtime, however many apps share it)."""
    from bot.handoff.notices import deliver_notices

    desk = runtime.dispatcher.handoff
    await desk.restore_markers(runtime.db)
    running = {task.get_name() for task in runtime.tasks if not task.done()}
    if "staff-notices" not in running:
        runtime.spawn("staff-notices", deliver_notices(runtime.store.redis, runtime.outbound))
    if "handoff-auto-release" not in running:
        runtime.spawn("handoff-auto-release", desk.run_auto_release(runtime.db, runtime.outbound))
