"""What the server's start-up costs in memory and in garbage-collection pauses: ``python -m bench.heap_bench``.

1. Resident set size of a fresh interpreter after importing the server (``bot.app``, ``bot.cli``), and
   how much each optional library would add if it were imported as well (the server imports them only
   when configured or migrating).
2. A runtime started on the embedded defaults (temporary data directory): how many objects the cyclic
   garbage collector tracks, how long one full collection takes, and how long it takes after
   ``gc.freeze()`` (what ``huiyin serve`` does once ready, see bot.runtime.settle_heap).
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import time

OPTIONAL = {
    "python-telegram-bot": "telegram.ext",
    "wechatpy": "wechatpy, wechatpy.enterprise, wechatpy.crypto",
    "alembic": "alembic.command, alembic.config, alembic.runtime.migration",
}


def _rss_after(imports: str) -> float:
    probe = (
        f"import {imports}\n"
        "print([l for l in open('/proc/self/status').read().splitlines() if l.startswith('VmRSS')][0].split()[1])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) / 1024


async def _gc_pauses() -> tuple[int, float, float]:
    os.environ["HUIYIN_DATA_DIR"] = tempfile.mkdtemp(prefix="huiyin-heap-bench-")
    from bot.runtime import Runtime
    from bot.settings import Settings

    runtime = await Runtime.start(Settings(database_url=None, redis_url=None))
    try:
        tracked = len(gc.get_objects())
        t = time.perf_counter()
        gc.collect()
        full_ms = (time.perf_counter() - t) * 1000
        gc.freeze()
        t = time.perf_counter()
        gc.collect()
        frozen_ms = (time.perf_counter() - t) * 1000
        gc.unfreeze()
    finally:
        await runtime.close()
    return tracked, full_ms, frozen_ms


def main() -> None:
    base = _rss_after("bot.app, bot.cli")
    print(f"server imports (bot.app, bot.cli): RSS {base:.1f} MB")
    for name, modules in OPTIONAL.items():
        print(f"  + {name:<20} {_rss_after('bot.app, bot.cli, ' + modules) - base:+6.1f} MB if imported too")
    tracked, full_ms, frozen_ms = asyncio.run(_gc_pauses())
    print(f"runtime started (embedded defaults): {tracked} objects tracked by the garbage collector")
    print(f"  one full collection: {full_ms:.1f} ms; after gc.freeze(): {frozen_ms:.2f} ms")


if __name__ == "__main__":
    main()
