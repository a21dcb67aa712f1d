"""Benchmark: one `huiyin serve` process through the REST channel, on real Redis + PostgreSQL.

    .venv/bin/python -m bench.rest_bench [--database-url URL] [--redis-url URL] [--seconds 20]
                                         [--trace turns.csv]

Measures, with the load generator on the same machine (so it competes for the same 2 cores):

1. group chatter the bot ignores: messages per second, closed loop with 32 concurrent senders;
2. dialog turns at a fixed 100 messages/s (open loop): latency p50/p99 of each HTTP round trip; every
   turn is a real step of an appeal dialog (report → photo skipped → no phone → confirm), so the turns
   write transcripts, dialog state and appeals. 200 residents take turns; the warm-up (a whole dialog
   each, so that every kind of turn has run before the measurement) leaves them spread
   evenly over the four steps (as in a real community, where people are at different points of their
   forms), so every second of the measurement has the same mix of turns rather than two seconds of
   nothing but confirmations;
3. the server's resident set size (VmHWM, the peak) at the end.

``--trace`` writes each measured turn (when it was sent, its step, its latency) to a CSV file, to see
whether a slow p99 is a few stalls or a whole stretch of queueing.

Targets: chatter ≥ 500 msg/s; dialog turn p99 ≤ 20 ms at 100 msg/s; RSS ≤ 200 MB.
The database is a fresh one (`huiyin_bench` by default) created if missing; Redis database 14 is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.services import (
    DIALOG_STEPS,
    appeal_request,
    chatter_request,
    client_session,
    count_rows,
    cpu_seconds,
    percentile,
    prepare_real_services,
    rss_mb,
    start_server,
    stop_process,
    wait_ready,
    warmup_waves,
)

URL = "/webhooks/rest/webhook"
RESIDENTS = 200


async def _chatter(client: aiohttp.ClientSession, base: str, total: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def sender() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            async with client.post(base + URL, json=chatter_request(i)) as r:
                body = await r.text()
                assert r.status == 200 and body == "[]", body

    t0 = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(32)))
    return total / (time.perf_counter() - t0)


async def _dialog_turns(
    client: aiohttp.ClientSession, base: str, rate: float, residents: list[int], step: list[int]
) -> list[tuple[float, int, float]]:
    """Open loop: a message every 1/rate s, each the next step of the dialog of the next of ``residents``
    (``step`` counts each resident's messages so far, across calls). Returns, per turn in the order they
    were sent, (seconds from the start until it was sent, its dialog step 0-3, latency in ms).

    In the measurement residents take turns round-robin, enough of them that one resident's previous turn
    has finished before their next one is due (as in a real group, where one person doesn't type 100
    times a second).
    """
    turns: list[tuple[float, int, float]] = [(0.0, 0, 0.0)] * len(residents)
    errors: list[str] = []
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int, s: int, body: dict[str, Any]) -> None:
        t = time.perf_counter()
        async with client.post(base + URL, json=body) as r:
            answer = await r.read()
        turns[i] = (t - start, s, (time.perf_counter() - t) * 1000)
        if r.status != 200:
            errors.append(answer.decode(errors="replace"))

    start = time.perf_counter()
    for i, who in enumerate(residents):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        body = appeal_request(who, step[who])
        tasks.append(asyncio.create_task(one(i, step[who] % DIALOG_STEPS, body)))
        step[who] += 1
    await asyncio.gather(*tasks)
    if errors:
        raise RuntimeError(f"{len(errors)} failed turns, e.g. {errors[0]}")
    return turns


def _write_trace(path: Path, trace: list[tuple[float, int, float]]) -> None:
    rows = "".join(f"{t:.4f},{s},{ms:.3f}\n" for t, s, ms in trace)
    path.write_text("sent_s,step,latency_ms\n" + rows, encoding="utf-8")


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_bench")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    ap.add_argument("--seconds", type=float, default=20.0, help="duration of the 100 msg/s dialog phase")
    ap.add_argument("--chatter", type=int, default=10_000, help="number of chatter messages")
    ap.add_argument("--trace", metavar="CSV", help="write every measured turn (sent at, step, latency) here")
    args = ap.parse_args()

    await prepare_real_services(args.database_url, args.redis_url)
    data_dir = tempfile.mkdtemp(prefix="huiyin-bench-")
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "HUIYIN_DATA_DIR": data_dir,
        "HUIYIN_LOG_LEVEL": "warning",
    }
    server, base = start_server(env)
    try:
        async with httpx.AsyncClient(timeout=30) as probe:
            await wait_ready(probe, base)
        step = [0] * RESIDENTS
        async with client_session() as client:
            # Warm-up: every path a turn takes, confirmation included (without it the measurement began
            # with the server's first confirmations, a backlog of seconds on a slow machine).
            for wave in warmup_waves(RESIDENTS):
                await _dialog_turns(client, base, rate=100, residents=wave, step=step)
        cpu0, own0 = cpu_seconds(server.pid), cpu_seconds(os.getpid())
        async with client_session() as client:
            chatter_rate = await _chatter(client, base, args.chatter)
        cpu1, own1 = cpu_seconds(server.pid), cpu_seconds(os.getpid())
        # The load generator's own pauses would count as the server's latency: no cyclic collection in
        # it while it measures (aiohttp's clean-up of idle connections, fifteen seconds after the chatter,
        # did the same before the chatter got a client of its own).
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            async with client_session() as client:
                turns = [i % RESIDENTS for i in range(int(100 * args.seconds))]
                trace = await _dialog_turns(client, base, rate=100, residents=turns, step=step)
        finally:
            gc.enable()
        cpu2 = cpu_seconds(server.pid)
        rss, peak = rss_mb(server.pid)
    finally:
        stop_process(server)
    confirmed = sum(n // DIALOG_STEPS for n in step)
    appeals = await count_rows(args.database_url, "appeal")

    latencies = [ms for _, _, ms in trace]
    if args.trace:
        _write_trace(Path(args.trace), trace)
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    print(
        "huiyin REST benchmark — one `huiyin serve` process, real PostgreSQL + Redis, load from the same machine"
    )
    print(f"  ignored group chatter:   {chatter_rate:8.0f} msg/s   (target ≥ 500)")
    print(
        f"  dialog turn @100 msg/s:  p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   mean {statistics.mean(latencies):.2f} ms"
        f"   over {len(latencies)} turns   (target p99 ≤ 20 ms)"
    )
    print(f"  server RSS:              {rss:6.1f} MB now, {peak:6.1f} MB peak   (target ≤ 200 MB)")
    print(
        f"  server CPU:              {(cpu1 - cpu0) * 1000 / args.chatter:.2f} ms per ignored message, "
        f"{(cpu2 - cpu1) * 1000 / len(latencies):.2f} ms per dialog turn (user + system; 1000 ms/s is one core)"
    )
    print(
        f"  load generator CPU:      {(own1 - own0) * 1000 / args.chatter:.2f} ms per chatter request (aiohttp)"
    )
    print(f"  appeals filed:           {appeals} of {confirmed} confirmations (every dialog files a new one)")
    ok = chatter_rate >= 500 and p99 <= 20 and peak <= 200 and appeals == confirmed
    print("  result:", "all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
