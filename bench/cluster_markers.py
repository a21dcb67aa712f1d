"""Benchmark: what start-up pays on a Redis Cluster for the per-slot 'complete' markers.

    .venv/bin/python -m bench.cluster_markers --redis-url redis+cluster://127.0.0.1:7000 [--runs 3]

Times `StateStore.mark_complete` (one SET per hash slot, 16384, pipelined per node; on one server a
single SET) and, once per process, finding a hash tag for every slot. Writes only the marker keys.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bot.state import DIALOGS_COMPLETE, StateStore, _slot_tags


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    started = time.perf_counter()
    _slot_tags()
    print(f"slot tags: {1000 * (time.perf_counter() - started):.0f} ms (once per process)")
    store = StateStore.from_url(args.redis_url)
    try:
        for _ in range(args.runs):
            started = time.perf_counter()
            await store.mark_complete(DIALOGS_COMPLETE)
            print(
                f"mark_complete: {1000 * (time.perf_counter() - started):.0f} ms (cluster: {store.cluster})"
            )
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
