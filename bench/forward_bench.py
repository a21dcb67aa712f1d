"""Benchmark: appeals created through the REST channel, then delivered to a local case backend by
`huiyin worker`, on real PostgreSQL + Redis.

    .venv/bin/python -m bench.forward_bench [--appeals 600] [--workers 1] [--backend webhook|open311]
                                            [--database-url URL] [--redis-url URL]

1. A fresh database (``huiyin_forward_bench``, created if missing) and Redis database 13 (flushed).
2. ``huiyin serve`` with its in-process forwarder off; residents file appeals through
   ``POST /webhooks/rest/webhook`` (32 at a time, each a real four-turn dialog in a private chat:
   problem + place → no photo → no phone → confirm). Each appeal's outbox row is written with it.
3. ``--workers`` ``huiyin worker`` processes start against the backlog and the reference backend
   (:mod:`integrations.backend.reference`, in this process, on loopback). Delivery rate = appeals / time
   from the backend's first call to the database showing every row delivered (worker start-up is
   reported separately).
4. Checks: every appeal delivered (outbox), every appeal one case at the backend, no create sent twice.

Target: ≥ 100 appeals/s per worker, none lost, none duplicated. The load generator, the
server, the workers, the backend and PostgreSQL share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import tempfile
import time

import httpx
from sqlalchemy import func, select

from bench.services import (
    cpu_seconds,
    prepare_real_services,
    spawn_huiyin,
    start_server,
    stop_process,
    wait_ready,
)
from bot.db.models import Appeal, OutboxEntry
from bot.db.session import Database
from integrations.backend.reference import ReferenceBackend

URL = "/webhooks/rest/webhook"
SECRET = "forward-bench-secret"
DIALOG = ["{b}栋{u}单元电梯坏了，困了好几次", "跳过", "不留", "/confirm"]


def _env(args: argparse.Namespace, backend: ReferenceBackend, data_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUIYIN_")}
    env.update(
        {
            "DATABASE_URL": args.database_url,
            "REDIS_URL": args.redis_url,
            "HUIYIN_DATA_DIR": data_dir,
            "HUIYIN_LOG_LEVEL": "warning",
            "HUIYIN_FORWARDER": "false",  # `serve` only takes appeals; the workers deliver them
        }
    )
    if args.backend == "open311":
        env.update(
            {
                "HUIYIN_BACKEND": "open311",
                "HUIYIN_OPEN311_URL": backend.open311_url,
                "HUIYIN_OPEN311_API_KEY": "bench",
            }
        )
    else:
        env.update(
            {
                "HUIYIN_BACKEND": "webhook",
                "HUIYIN_BACKEND_WEBHOOK_URL": backend.webhook_url,
                "HUIYIN_BACKEND_WEBHOOK_SECRET": SECRET,
            }
        )
    return env


async def _file_appeals(base: str, count: int, concurrency: int = 32) -> float:
    """File ``count`` appeals through the REST channel; returns appeals per second."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    errors: list[str] = []

    async def resident(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            sender = f"bench-{i}"
            for step, template in enumerate(DIALOG):
                text = template.format(b=i + 1, u=i % 4 + 1)
                r = await client.post(
                    base + URL,
                    json={"sender": sender, "message": text, "metadata": {"message_id": f"{i}-{step}"}},
                )
                if r.status_code != 200:
                    errors.append(r.text)
                    return
            if "HY-" not in r.text:
                errors.append(f"{sender}: no appeal id in {r.text[:200]}")

    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        await asyncio.gather(*(resident(client) for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} appeals failed, e.g. {errors[0]}")
    return count / elapsed


async def _counts(db: Database) -> tuple[int, int, int]:
    async with db.unit_of_work() as uow:
        s = uow.session
        appeals = int(await s.scalar(select(func.count()).select_from(Appeal)) or 0)
        rows = int(
            await s.scalar(
                select(func.count()).select_from(OutboxEntry).where(OutboxEntry.platform.is_(None))
            )
            or 0
        )
        delivered = int(
            await s.scalar(
                select(func.count())
                .select_from(OutboxEntry)
                .where(OutboxEntry.platform.is_(None), OutboxEntry.delivered_at.is_not(None))
            )
            or 0
        )
    return appeals, rows, delivered


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_forward_bench"
    )
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    ap.add_argument("--appeals", type=int, default=600)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--backend", choices=["webhook", "open311"], default="webhook")
    args = ap.parse_args()

    await prepare_real_services(args.database_url, args.redis_url)
    backend = ReferenceBackend(api_key="bench", secret=SECRET.encode()).start()
    data_dir = tempfile.mkdtemp(prefix="huiyin-forward-bench-")
    env = _env(args, backend, data_dir)
    server, base = start_server(env)
    db = Database(args.database_url)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            await wait_ready(client, base)
        create_rate = await _file_appeals(base, args.appeals)
        appeals, rows, delivered = await _counts(db)
        assert appeals == rows == args.appeals and delivered == 0, (appeals, rows, delivered)
        assert backend.calls == [], "nothing is sent while the workers are off"

        load_before = os.getloadavg()[0]
        started = time.time()
        workers = [spawn_huiyin(["worker"], env) for _ in range(args.workers)]
        cpu_at_first_call: float | None = None
        while True:
            if cpu_at_first_call is None and backend.calls:
                cpu_at_first_call = sum(cpu_seconds(p.pid) for p in workers)
            _appeals, _rows, delivered = await _counts(db)
            if delivered >= rows:
                done = time.time()
                cpu_used = sum(cpu_seconds(p.pid) for p in workers) - (cpu_at_first_call or 0.0)
                break
            if time.time() - started > 600:
                raise RuntimeError(f"only {delivered}/{rows} delivered after 10 minutes")
            await asyncio.sleep(0.02)
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        for proc in workers:
            proc.wait(timeout=30)
        stop_process(server)
        await db.dispose()
        backend.stop()

    cases = backend.public_ids()
    distinct = len(set(cases))
    duplicated = len(cases) - distinct
    lost = args.appeals - distinct
    sent = backend.creates_sent()
    # Delivery time: from the first call the backend received to the moment the database shows every
    # row delivered (so it includes recording the answers). Start-up: the worker processes starting,
    # migrating and claiming their first rows.
    first_call = min(c.at for c in backend.calls)
    span = max(done - first_call, 1e-9)
    steady = args.appeals / span
    overall = args.appeals / (done - started)
    print(
        f"huiyin forwarding benchmark — {args.appeals} appeals, {args.workers} `huiyin worker`, "
        f"{args.backend} backend on loopback, real PostgreSQL + Redis, everything on this machine"
    )
    print(f"  filed through REST:  {create_rate:7.1f} appeals/s  (4 dialog turns each, 32 residents at once)")
    print(
        f"  delivered:           {steady:7.1f} appeals/s  = {steady / args.workers:.1f} per worker (target ≥ 100), "
        f"first backend call to all recorded in {span:.2f} s"
    )
    print(
        f"                       {overall:7.1f} appeals/s  counting {first_call - started:.2f} s of worker start-up "
        f"({done - started:.2f} s in all)"
    )
    print(
        f"  at the backend:      {distinct} distinct cases, {duplicated} duplicated, {lost} lost; "
        f"{sent} create calls sent, {backend.replays} answered as repeats"
    )
    per_appeal_ms = cpu_used / args.appeals * 1000
    print(
        f"  worker CPU:          {per_appeal_ms:7.2f} ms per appeal (user + system, all workers) — "
        f"{1000 / per_appeal_ms:.0f} appeals/s for a worker with a core to itself"
    )
    print(
        f"  machine load:        {load_before:.2f} (1-minute load average when the workers started; 2 cores)"
    )
    ok = lost == 0 and duplicated == 0 and sent == args.appeals and steady / args.workers >= 100
    print("  result:", "all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
