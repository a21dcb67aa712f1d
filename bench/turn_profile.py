"""Benchmark: what one dialog turn costs the server in CPU, in-process, without a load generator.

    .venv/bin/python -m bench.turn_profile [--database-url URL] [--redis-url URL] [--turns 2000]
                                           [--pstats FILE] [--top 25]

The ASGI app (the same one `huiyin serve` runs, with its lifespan) is called directly, one request at
a time, with the turns of `bench.rest_bench`'s workload: 200 residents, each turn a step of an appeal
dialog (report → photo skipped → no phone → confirm), every confirmation filing a new appeal. Only
uvicorn's HTTP parsing is left out. It prints, per step of the dialog and overall:

- CPU time of this process per turn (user + system; PostgreSQL and Redis run in their own processes);
- Python function calls per turn, counted by cProfile in a second pass over new turns (a coroutine
  resumed after a wait counts as a call again);
- round trips per turn: to PostgreSQL (transactions begun and ended, statements by their first word;
  a statement "alone" runs outside a transaction, with no BEGIN/COMMIT sent) and Redis commands (a Lua
  script is one).

The call count is the repeatable figure: on this machine the CPU time of the same code varies by up to
half from one run to the next, the number of calls does not. Compare two versions of the code by calls
first, then confirm with `bench.rest_bench`. ``--pstats`` keeps the profile for `python -m pstats`.

The database is a fresh one (`huiyin_bench` by default); Redis database 14 is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from bench.services import DIALOG_STEPS, appeal_request, count_rows, prepare_real_services
from bot.settings import Settings

URL = "/webhooks/rest/webhook"
RESIDENTS = 200
STEP_NAMES = ("report", "skip photo", "no phone", "confirm")


def _request(who: int, step: int) -> bytes:
    """The REST body of resident ``who``'s ``step``-th message, as `bench.rest_bench` sends it."""
    return json.dumps(appeal_request(who, step)).encode()


async def _post(app: Any, body: bytes) -> None:
    """One request through the ASGI app; raises unless it answers 200."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": URL,
        "raw_path": URL.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # a client that stays connected
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    if status != 200:
        raise RuntimeError(f"answered {status}: {body.decode()}")


def _turns(step: list[int], count: int) -> Iterator[tuple[int, int]]:
    """The next ``count`` turns as (resident, step), residents round-robin; advances ``step``."""
    for i in range(count):
        who = i % RESIDENTS
        yield who, step[who]
        step[who] += 1


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_bench")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    ap.add_argument(
        "--turns", type=int, default=2000, help="turns per pass (a multiple of 200 keeps the mix)"
    )
    ap.add_argument("--pstats", metavar="FILE", help="write the profile of the counting pass here")
    ap.add_argument("--top", type=int, default=0, help="print the N functions of most cumulative time")
    ap.add_argument("--sql", action="store_true", help="count statements by their first 90 characters")
    ap.add_argument(
        "--profile-step",
        type=int,
        choices=range(DIALOG_STEPS),
        help="keep in the profile (--pstats, --top) only the turns of this step (0 report … 3 confirm)",
    )
    args = ap.parse_args()

    await prepare_real_services(args.database_url, args.redis_url)
    os.environ.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        HUIYIN_DATA_DIR=tempfile.mkdtemp(prefix="huiyin-bench-"),
        HUIYIN_LOG_LEVEL="warning",
    )
    from bot.app import create_app
    from bot.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    app = create_app(settings)
    step = [0] * RESIDENTS
    async with app.router.lifespan_context(app):
        # Warm-up as in bench.rest_bench: one whole dialog each, then resident r left at step r % 4.
        for k in range(1, 2 * DIALOG_STEPS):
            for who in range(RESIDENTS):
                if DIALOG_STEPS + who % DIALOG_STEPS >= k:
                    await _post(app, _request(who, step[who]))
                    step[who] += 1
        gc.collect()

        cpu = {s: 0.0 for s in range(DIALOG_STEPS)}
        n = {s: 0 for s in range(DIALOG_STEPS)}
        for who, st in _turns(step, args.turns):
            body = _request(who, st)
            t = time.process_time()
            await _post(app, body)
            cpu[st % DIALOG_STEPS] += time.process_time() - t
            n[st % DIALOG_STEPS] += 1

        calls = {s: 0 for s in range(DIALOG_STEPS)}
        trips: dict[int, Counter[str]] = {s: Counter() for s in range(DIALOG_STEPS)}
        seen: Counter[str] = Counter()
        _count_round_trips(app.state.runtime, seen, 90 if args.sql else 0)
        profile = cProfile.Profile()
        for who, st in _turns(step, args.turns):
            body = _request(who, st)
            before = _total_calls(profile)
            seen.clear()
            keep = args.profile_step in (None, st % DIALOG_STEPS)
            if keep:
                profile.enable()
            await _post(app, body)
            profile.disable()
            calls[st % DIALOG_STEPS] += _total_calls(profile) - before
            trips[st % DIALOG_STEPS].update(seen)
    confirmed = sum(s // DIALOG_STEPS for s in step)
    appeals = await count_rows(args.database_url, "appeal")

    print("huiyin turn profile — the ASGI app in-process, real PostgreSQL + Redis, one request at a time")
    for s in range(DIALOG_STEPS):
        print(
            f"  {STEP_NAMES[s]:<11} CPU {cpu[s] * 1000 / n[s]:6.2f} ms/turn   "
            f"{calls[s] / n[s]:8.0f} Python calls/turn   ({n[s]} turns)"
        )
    total = sum(n.values())
    print(
        f"  all steps   CPU {sum(cpu.values()) * 1000 / total:6.2f} ms/turn   "
        f"{sum(calls.values()) / total:8.0f} Python calls/turn   ({total} turns)"
    )
    for s in range(DIALOG_STEPS):
        sep = "\n      " if args.sql else ", "
        per_turn = sep.join(f"{k} {v / n[s]:.2f}" for k, v in sorted(trips[s].items()))
        print(f"  {STEP_NAMES[s]:<11} round trips/turn:{sep if args.sql else ' '}{per_turn}")
    print(f"  appeals filed: {appeals} of {confirmed} confirmations")
    if args.pstats:
        profile.dump_stats(args.pstats)
    if args.top:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    return 0 if appeals == confirmed else 1


def _count_round_trips(runtime: Any, seen: Counter[str], sql_chars: int) -> None:
    """Count into ``seen`` what goes to PostgreSQL and Redis: "pg BEGIN"/"pg COMMIT"/"pg ROLLBACK",
    "pg <first word of a statement>" (or its first ``sql_chars`` characters; "(alone)" when it runs
    outside a transaction), "redis <command>"."""
    from sqlalchemy import event

    engine = runtime.db.engine.sync_engine

    def alone(conn: Any) -> bool:
        return bool(conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT")

    for name in ("begin", "commit", "rollback"):
        # With AUTOCOMMIT, SQLAlchemy still marks a transaction, but the driver sends nothing.
        event.listen(
            engine, name, lambda conn, name=name: None if alone(conn) else seen.update([f"pg {name.upper()}"])
        )

    def statement(conn: Any, cursor: Any, sql: str, *rest: Any) -> None:
        shown = " ".join(sql.split())[:sql_chars] if sql_chars else sql.split(None, 1)[0].upper()
        seen.update([f"pg {shown}" + (" (alone)" if alone(conn) else "")])

    event.listen(engine, "before_cursor_execute", statement)
    redis = runtime.store.redis
    original = redis.execute_command

    async def execute_command(*args: Any, **options: Any) -> Any:
        seen.update([f"redis {str(args[0]).upper()}"])
        return await original(*args, **options)

    redis.execute_command = execute_command


def _total_calls(profile: cProfile.Profile) -> int:
    """Function calls (primitive and recursive) recorded in ``profile`` so far."""
    return sum(entry.callcount for entry in profile.getstats())


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
